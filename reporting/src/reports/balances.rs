//! `balances.csv`: every account's balance at a value date as known at a booking instant,
//! then one total row per currency.

use axum::response::Response;
use chrono::Utc;
use platform::{ApiError, Capability, RequestContext, access_log::query_names};
use serde_json::json;

use super::{Csv, Frame, Params, batch, csv_response, instant};
use crate::{
    queries::{self, TwoAxes},
    state::ReportingState,
};

/// The header row of `balances.csv`.
pub const BALANCES_HEADER: &str = "account_id,holder,currency,balance,version,last_change_at\r\n";

/// `balances.csv` for `request` with query parameters `params`: `asOf` (a value date, an
/// instant or a day's end in `tz`; default now), `asKnownAt` (a booking instant; default
/// now), `currency`, `atLeast`, `tz`, `bom`; stopping after `rows_max` rows. The total rows
/// name their account count in the holder column and leave the id empty.
pub async fn balances_report(
    state: &ReportingState,
    request: &RequestContext,
    params: &[(String, String)],
    rows_max: usize,
) -> Result<Response, ApiError> {
    let gate = state
        .gate(request, query_names::BALANCES_CSV, Capability::ReadReports)
        .await?;
    let params = Params::parse(
        params,
        &["asOf", "asKnownAt", "tz", "currency", "atLeast", "bom"],
    )?;
    let zone = params.zone()?;
    let as_of = params.moment("asOf", zone, true)?.unwrap_or_else(Utc::now);
    let as_known_at = params.moment("asKnownAt", zone, true)?;
    let currency = params
        .single("currency")?
        .map(|c| queries::parse_currency("currency", c))
        .transpose()?;
    let at_least = params.position("atLeast")?;
    let bom = params.flag("bom")?;
    let arguments = json!({
        "asOf": as_of, "asKnownAt": as_known_at, "tz": zone.name(), "currency": currency.map(|c| c.code()),
        "atLeast": at_least.map(|p| p.value().to_string()),
    });
    let admitted = gate.admit(arguments, at_least, as_known_at).await?;
    let axes = TwoAxes {
        as_of,
        known_at: admitted.known_at,
    };
    let totals = queries::balances_as_of(&state.pool, axes, currency, 0, None, true)
        .await?
        .totals
        .unwrap_or_default();
    let mut trailing = Csv::default();
    for total in &totals {
        trailing.field("");
        trailing.field(&format!(
            "Total {} ({} account{})",
            total.currency.code(),
            total.accounts,
            if total.accounts == 1 { "" } else { "s" }
        ));
        trailing.field(total.currency.code());
        trailing.field(&total.total.to_string());
        trailing.field("");
        trailing.field("");
        trailing.end_row();
    }

    let pool = state.pool.clone();
    let fetch = move |after: Option<queries::AccountKey>, limit: usize| {
        let pool = pool.clone();
        async move {
            let found = queries::balances_as_of(&pool, axes, currency, limit, after, false).await?;
            Ok(batch(
                found.page,
                queries::HistoricalBalance::key,
                |b, csv| {
                    csv.field(&b.account_id.to_string());
                    csv.text(&b.holder);
                    csv.field(b.currency.code());
                    csv.field(&b.balance.to_string());
                    csv.field(&b.version.to_string());
                    csv.field(&instant(b.last_change_at));
                },
            ))
        }
    };
    let filename = format!("balances-as-of-{}.csv", as_of.format("%Y%m%dT%H%M%SZ"));
    let frame = Frame {
        bom,
        trailing: trailing.into_string(),
        ..Frame::default()
    };
    csv_response(&filename, BALANCES_HEADER, frame, rows_max, fetch).await
}
