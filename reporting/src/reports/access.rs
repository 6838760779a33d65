//! `access.csv`: who looked at what, when (auditors).

use axum::response::Response;
use chrono::Utc;
use platform::{ApiError, Capability, RequestContext};
use serde_json::json;

use super::{Frame, Params, batch, csv_response, instant};
use crate::{queries, state::ReportingState};
use platform::access_log::{Outcome, query_names};

/// The header row of `access.csv`.
pub const ACCESS_HEADER: &str = "id,accessed_at,actor,roles,query,arguments,correlation_id,client_addr,outcome,refusal_code,refusal_reason\r\n";

/// `access.csv` for `request` with query parameters `params`: `actor`, `query`,
/// `accountId`, `correlationId`, `outcome` (GRANTED or REFUSED), `from`, `to`, `tz`, `bom`; newest first, stopping after `rows_max` rows.
pub async fn access_report(
    state: &ReportingState,
    request: &RequestContext,
    params: &[(String, String)],
    rows_max: usize,
) -> Result<Response, ApiError> {
    let gate = state
        .gate(request, query_names::ACCESS_CSV, Capability::ReadAccessLog)
        .await?;
    let params = Params::parse(
        params,
        &[
            "actor",
            "query",
            "accountId",
            "correlationId",
            "outcome",
            "from",
            "to",
            "tz",
            "bom",
        ],
    )?;
    let zone = params.zone()?;
    let account_id = params
        .single("accountId")?
        .map(|id| {
            id.parse::<uuid::Uuid>()
                .map_err(|_| ApiError::validation("accountId", "must be a UUID"))
        })
        .transpose()?;
    let outcome = params
        .single("outcome")?
        .map(|text| {
            Outcome::parse(text)
                .ok_or_else(|| ApiError::validation("outcome", "must be GRANTED or REFUSED"))
        })
        .transpose()?;
    let filter = queries::AccessLogFilter::parse(
        queries::AccessCriteria {
            actor: params.single("actor")?,
            query: params.single("query")?,
            account_id,
            correlation_id: params.single("correlationId")?,
            outcome,
        },
        params.moment("from", zone, false)?,
        params.moment("to", zone, true)?,
    )?;
    let bom = params.flag("bom")?;
    let arguments = json!({
        "actor": filter.actor, "query": filter.query, "accountId": filter.account_id,
        "correlationId": filter.correlation_id, "outcome": filter.outcome,
        "from": filter.from, "to": filter.to,
        "tz": zone.name(),
    });
    gate.admit(arguments, None, None).await?;

    let pool = state.pool.clone();
    let fetch = move |after: Option<queries::AccessKey>, limit: usize| {
        let pool = pool.clone();
        let filter = filter.clone();
        async move {
            let page = queries::access_log(&pool, &filter, limit, after).await?;
            Ok(batch(page, queries::AccessLogEntry::key, |a, csv| {
                csv.field(&a.id.to_string());
                csv.field(&instant(a.accessed_at));
                csv.text(&a.actor);
                csv.field(&a.roles.join(" "));
                csv.text(&a.query);
                csv.field(&a.arguments.to_string());
                csv.text(a.correlation_id.as_deref().unwrap_or(""));
                csv.field(a.client_addr.as_deref().unwrap_or(""));
                csv.field(a.outcome.as_str());
                csv.field(a.refusal_code.as_deref().unwrap_or(""));
                csv.text(a.refusal_reason.as_deref().unwrap_or(""));
            }))
        }
    };
    let filename = format!("access-log-{}.csv", Utc::now().format("%Y%m%dT%H%M%SZ"));
    let frame = Frame {
        bom,
        ..Frame::default()
    };
    csv_response(&filename, ACCESS_HEADER, frame, rows_max, fetch).await
}
