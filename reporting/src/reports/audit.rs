//! `audit.csv`: the audit trail, filtered, with each event's amount and currency in columns
//! of their own beside the payload.

use axum::response::Response;
use chrono::Utc;
use platform::{ApiError, Capability, RequestContext};
use serde_json::json;
use uuid::Uuid;

use super::{Frame, Params, batch, csv_response, instant, rename_field};
use crate::{queries, state::ReportingState};
use platform::access_log::query_names;

/// The header row of `audit.csv`. `amount` is a movement's change to the balance (credits
/// > 0, debits < 0) or what a hold event reserves or frees; empty for other events.
pub const AUDIT_HEADER: &str = "position,recorded_at,event_id,account_id,event_type,event_version,stream_version,actor,correlation_id,idempotency_key,amount,currency,payload,hash,previous_hash\r\n";

/// `audit.csv` for `request` with query parameters `params`: `accountId`, `actor`,
/// `eventType` (repeated or comma-separated), `correlationId`, `from`, `to`, `tz`,
/// `atLeast`, `bom`; stopping after `rows_max` rows.
pub async fn audit_report(
    state: &ReportingState,
    request: &RequestContext,
    params: &[(String, String)],
    rows_max: usize,
) -> Result<Response, ApiError> {
    let gate = state
        .gate(request, query_names::AUDIT_CSV, Capability::ReadAuditTrail)
        .await?;
    let params = Params::parse(
        params,
        &[
            "accountId",
            "actor",
            "eventType",
            "correlationId",
            "from",
            "to",
            "tz",
            "atLeast",
            "bom",
        ],
    )?;
    let account_id = params
        .single("accountId")?
        .map(|id| {
            id.parse::<Uuid>()
                .map_err(|_| ApiError::validation("accountId", "must be a UUID"))
        })
        .transpose()?;
    let event_types: Vec<String> = params
        .all("eventType")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let zone = params.zone()?;
    let filter = queries::AuditFilter::parse(
        account_id,
        params.single("actor")?,
        (!event_types.is_empty()).then_some(event_types.as_slice()),
        params.single("correlationId")?,
        params.moment("from", zone, false)?,
        params.moment("to", zone, true)?,
    )
    .map_err(|e| rename_field(e, "eventTypes", "eventType"))?;
    let at_least = params.position("atLeast")?;
    let bom = params.flag("bom")?;
    let arguments = json!({
        "accountId": filter.account_id, "actor": filter.actor, "eventTypes": filter.event_types,
        "correlationId": filter.correlation_id, "from": filter.from, "to": filter.to,
        "tz": zone.name(), "atLeast": at_least.map(|p| p.value().to_string()),
    });
    gate.admit(arguments, at_least, None).await?;

    let pool = state.pool.clone();
    let fetch = move |after: Option<queries::PositionKey>, limit: usize| {
        let pool = pool.clone();
        let filter = filter.clone();
        async move {
            let page = queries::audit_trail(&pool, &filter, limit, after).await?;
            Ok(batch(page, queries::AuditEntry::key, |e, csv| {
                csv.field(&e.position.to_string());
                csv.field(&instant(e.recorded_at));
                csv.field(&e.event_id.to_string());
                csv.field(&e.account_id.to_string());
                csv.field(&e.event_type);
                csv.field(&e.event_version.to_string());
                csv.field(&e.stream_version.to_string());
                csv.text(&e.actor);
                csv.text(e.correlation_id.as_deref().unwrap_or(""));
                csv.text(e.idempotency_key.as_deref().unwrap_or(""));
                let amount = e.amount();
                csv.field(&amount.map(|a| a.to_string()).unwrap_or_default());
                csv.field(amount.and(e.currency).map(|c| c.code()).unwrap_or_default());
                csv.field(&e.payload.to_string());
                csv.field(&e.hash.to_hex());
                csv.field(&e.previous_hash.map(|h| h.to_hex()).unwrap_or_default());
            }))
        }
    };
    let filename = format!("audit-trail-{}.csv", Utc::now().format("%Y%m%dT%H%M%SZ"));
    let frame = Frame {
        bom,
        ..Frame::default()
    };
    csv_response(&filename, AUDIT_HEADER, frame, rows_max, fetch).await
}
