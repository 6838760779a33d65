//! `statement.csv`: one account's movements valued in a range, between its opening and
//! closing balance rows.

use axum::response::Response;
use ledger::AccountId;
use platform::{ApiError, Capability, RequestContext, access_log::query_names};
use serde_json::json;

use super::{Csv, Frame, Params, batch, csv_response, instant};
use crate::{
    queries::{self, Page},
    state::ReportingState,
};

/// The header row of `statement.csv`.
pub const STATEMENT_HEADER: &str = "value_date,recorded_at,kind,amount,currency,balance_after,reference,counterparty_account_id,transfer_id,event_id,reverses_event_id,reversed_by_event_id\r\n";

/// `statement.csv` for `request` with query parameters `params`: `accountId`, `from` and
/// `to` (value dates: instants, or days in `tz`, `from` at its start and `to` at its end),
/// `asKnownAt`, `atLeast`, `tz`, `bom`; stopping after `rows_max` movement rows. The first
/// row is the OPENING_BALANCE (valued just before `from`), the last the CLOSING_BALANCE.
pub async fn statement_report(
    state: &ReportingState,
    request: &RequestContext,
    params: &[(String, String)],
    rows_max: usize,
) -> Result<Response, ApiError> {
    let gate = state
        .gate(request, query_names::STATEMENT_CSV, Capability::ReadReports)
        .await?;
    let params = Params::parse(
        params,
        &[
            "accountId",
            "from",
            "to",
            "asKnownAt",
            "tz",
            "atLeast",
            "bom",
        ],
    )?;
    let account_id = params
        .single("accountId")?
        .ok_or_else(|| ApiError::validation("accountId", "is required"))?
        .parse::<uuid::Uuid>()
        .map(AccountId::from_uuid)
        .map_err(|_| ApiError::validation("accountId", "must be a UUID"))?;
    let zone = params.zone()?;
    let from = params
        .moment("from", zone, false)?
        .ok_or_else(|| ApiError::validation("from", "is required"))?;
    let to = params
        .moment("to", zone, true)?
        .ok_or_else(|| ApiError::validation("to", "is required"))?;
    if from > to {
        return Err(ApiError::validation("from", "must not be later than to"));
    }
    let as_known_at = params.moment("asKnownAt", zone, true)?;
    let at_least = params.position("atLeast")?;
    let bom = params.flag("bom")?;
    let arguments = json!({
        "accountId": account_id, "from": from, "to": to, "asKnownAt": as_known_at, "tz": zone.name(),
        "atLeast": at_least.map(|p| p.value().to_string()),
    });
    let known_at = gate.admit(arguments, at_least, as_known_at).await?.known_at;
    let whole = queries::statement(&state.pool, account_id, from, to, known_at, 0, None).await?;
    let scope = whole.scope();
    let currency = whole.currency;
    let balance_row = |kind: &str, at, balance: rust_decimal::Decimal| {
        let mut csv = Csv::default();
        csv.field(&instant(at));
        csv.field("");
        csv.field(kind);
        csv.field("");
        csv.field(currency.code());
        csv.field(&balance.to_string());
        for _ in 0..6 {
            csv.field("");
        }
        csv.end_row();
        csv.into_string()
    };
    let frame = Frame {
        bom,
        leading: balance_row("OPENING_BALANCE", from, whole.opening_balance),
        trailing: balance_row("CLOSING_BALANCE", to, whole.closing_balance),
    };

    let pool = state.pool.clone();
    let fetch = move |after: Option<queries::EntryKey>, limit: usize| {
        let pool = pool.clone();
        async move {
            let page = queries::statement(&pool, account_id, from, to, known_at, limit, after)
                .await?
                .entries;
            Ok(batch(
                Page {
                    items: page.items,
                    has_next_page: page.has_next_page,
                },
                |e| e.key_in(&scope),
                |e, csv| {
                    let id = |id: Option<String>| id.unwrap_or_default();
                    csv.field(&instant(e.value_date));
                    csv.field(&instant(e.recorded_at));
                    csv.field(e.kind.as_str());
                    csv.field(&e.amount.to_string());
                    csv.field(currency.code());
                    csv.field(&e.balance_after.to_string());
                    csv.text(e.reference.as_deref().unwrap_or(""));
                    csv.field(&id(e.counterparty_account_id.map(|a| a.to_string())));
                    csv.field(&id(e.transfer_id.map(|t| t.to_string())));
                    csv.field(&e.event_id.to_string());
                    csv.field(&id(e.reverses_event_id.map(|r| r.to_string())));
                    csv.field(&id(e.reversed_by_event_id.map(|r| r.to_string())));
                },
            ))
        }
    };
    let filename = format!(
        "statement-{account_id}-{}-{}.csv",
        from.format("%Y%m%d"),
        to.format("%Y%m%d")
    );
    csv_response(&filename, STATEMENT_HEADER, frame, rows_max, fetch).await
}
