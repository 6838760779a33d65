//! CSV reports for spreadsheets: `GET /reports/balances.csv` (every account's balance as of
//! an instant) and `GET /reports/audit.csv` (the audit trail, filtered), with the same
//! authentication and roles as the GraphQL queries, and recorded in the access log.
//!
//! Rows are streamed in keyset batches of [`REPORT_BATCH_ROWS`], so a report never
//! holds more than one batch in memory nor a database connection between batches;
//! a report stops at [`REPORT_ROWS_MAX`] rows and then says so in a final comment
//! line. Fields are quoted as RFC 4180 says, and free-text fields that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return
//! first) are prefixed with `'`.

use std::{collections::BTreeMap, future::Future, io};

use axum::{
    Extension, Router,
    body::{Body, Bytes},
    extract::Query,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, stream};
use ledger::ErrorCode;
use platform::{ApiError, RequestContext, graphql::CORRELATION_ID_HEADER};
use serde_json::json;
use uuid::Uuid;

use crate::{
    access_log::{Access, query_names},
    graphql::READERS,
    queries::{self, Page, Position, QueryError},
    state::ReportingState,
};

/// The most rows one report holds; beyond it the report ends with a line saying it was truncated.
pub const REPORT_ROWS_MAX: usize = 1_000_000;
/// Rows read from the database per query while a report streams.
pub const REPORT_BATCH_ROWS: usize = 1_000;
/// How much of an unknown parameter's name an error message repeats.
const PARAMETER_NAME_SHOWN_MAX: usize = 64;
/// The header row of `balances.csv`.
pub const BALANCES_HEADER: &str = "account_id,holder,currency,balance,version,last_change_at\r\n";
/// The header row of `audit.csv`.
pub const AUDIT_HEADER: &str = "position,recorded_at,account_id,event_type,stream_version,actor,correlation_id,idempotency_key,payload,hash\r\n";

/// The report routes; needs `Extension<ReportingState>` and `Extension<Arc<TokenKeys>>` layers.
pub fn routes() -> Router {
    Router::new()
        .route("/reports/balances.csv", get(balances_csv))
        .route("/reports/audit.csv", get(audit_csv))
}

async fn balances_csv(
    request: RequestContext,
    Extension(state): Extension<ReportingState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let response = balances_report(&state, &request, &params, REPORT_ROWS_MAX).await;
    with_correlation_id(response.unwrap_or_else(error_response), &request)
}

async fn audit_csv(
    request: RequestContext,
    Extension(state): Extension<ReportingState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let response = audit_report(&state, &request, &params, REPORT_ROWS_MAX).await;
    with_correlation_id(response.unwrap_or_else(error_response), &request)
}

/// `balances.csv` for `request` with query parameters `params` (`asOf`, a value date,
/// default now; `asKnownAt`, a booking instant, default now; `currency`; `atLeast`),
/// stopping after `rows_max` rows.
pub async fn balances_report(
    state: &ReportingState,
    request: &RequestContext,
    params: &[(String, String)],
    rows_max: usize,
) -> Result<Response, ApiError> {
    authorize(request)?;
    let params = Params::parse(params, &["asOf", "asKnownAt", "currency", "atLeast"])?;
    let as_of = params.instant("asOf")?.unwrap_or_else(Utc::now);
    let as_known_at = params.instant("asKnownAt")?;
    let currency = params
        .single("currency")?
        .map(|c| queries::parse_currency("currency", c))
        .transpose()?;
    let at_least = params.position("atLeast")?;
    state.consistent(at_least).await?;
    let axes = queries::TwoAxes {
        as_of,
        known_at: state.known_at(as_known_at).await?,
    };
    let arguments = json!({
        "asOf": as_of, "asKnownAt": as_known_at, "currency": currency.map(|c| c.code()),
        "atLeast": at_least.map(|p| p.value().to_string()),
    });
    state
        .access_log
        .record(Access::of(request, query_names::BALANCES_CSV, arguments))
        .await?;

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
    csv_response(&filename, BALANCES_HEADER, rows_max, fetch).await
}

/// `audit.csv` for `request` with query parameters `params` (`accountId`, `actor`,
/// `eventType` (repeated or comma-separated), `correlationId`, `from`, `to`, `atLeast`),
/// stopping after `rows_max` rows.
pub async fn audit_report(
    state: &ReportingState,
    request: &RequestContext,
    params: &[(String, String)],
    rows_max: usize,
) -> Result<Response, ApiError> {
    authorize(request)?;
    let params = Params::parse(
        params,
        &[
            "accountId",
            "actor",
            "eventType",
            "correlationId",
            "from",
            "to",
            "atLeast",
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
    let filter = queries::AuditFilter::parse(
        account_id,
        params.single("actor")?,
        (!event_types.is_empty()).then_some(event_types.as_slice()),
        params.single("correlationId")?,
        params.instant("from")?,
        params.instant("to")?,
    )
    .map_err(|e| rename_field(e, "eventTypes", "eventType"))?;
    let at_least = params.position("atLeast")?;
    state.consistent(at_least).await?;
    let arguments = json!({
        "accountId": filter.account_id, "actor": filter.actor, "eventTypes": filter.event_types,
        "correlationId": filter.correlation_id, "from": filter.from, "to": filter.to,
        "atLeast": at_least.map(|p| p.value().to_string()),
    });
    state
        .access_log
        .record(Access::of(request, query_names::AUDIT_CSV, arguments))
        .await?;

    let pool = state.pool.clone();
    let fetch = move |after: Option<queries::PositionKey>, limit: usize| {
        let pool = pool.clone();
        let filter = filter.clone();
        async move {
            let page = queries::audit_trail(&pool, &filter, limit, after).await?;
            Ok(batch(page, queries::AuditEntry::key, |e, csv| {
                csv.field(&e.position.to_string());
                csv.field(&instant(e.recorded_at));
                csv.field(&e.account_id.to_string());
                csv.field(&e.event_type);
                csv.field(&e.stream_version.to_string());
                csv.text(&e.actor);
                csv.text(e.correlation_id.as_deref().unwrap_or(""));
                csv.text(e.idempotency_key.as_deref().unwrap_or(""));
                csv.field(&e.payload.to_string());
                csv.field(&e.hash.to_hex());
            }))
        }
    };
    let filename = format!("audit-trail-{}.csv", Utc::now().format("%Y%m%dT%H%M%SZ"));
    csv_response(&filename, AUDIT_HEADER, rows_max, fetch).await
}

fn authorize(request: &RequestContext) -> Result<(), ApiError> {
    if request.principal.has_any(READERS) {
        Ok(())
    } else {
        Err(ApiError::forbidden(READERS))
    }
}

/// A GraphQL-shaped error body, so clients read reports' errors as they read the API's.
fn error_response(error: ApiError) -> Response {
    let status = match error.code {
        ErrorCode::Validation => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::AccountNotFound => StatusCode::NOT_FOUND,
        ErrorCode::StaleRead | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = platform::graphql::error_response(status, &error);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn with_correlation_id(mut response: Response, request: &RequestContext) -> Response {
    if let Ok(value) = request.correlation_id.parse() {
        response.headers_mut().insert(CORRELATION_ID_HEADER, value);
    }
    response
}

/// A refusal of the query layer naming `from` renamed to the report's parameter `to`.
fn rename_field(error: QueryError, from: &'static str, to: &'static str) -> ApiError {
    match error {
        QueryError::Invalid { field, rule } if field == from => ApiError::validation(to, rule),
        other => other.into(),
    }
}

/// The query parameters of a report: only the known ones, each at most once unless repeatable.
struct Params<'a> {
    values: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Params<'a> {
    fn parse(pairs: &'a [(String, String)], known: &[&str]) -> Result<Self, ApiError> {
        let mut values: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, value) in pairs {
            if !known.contains(&name.as_str()) {
                let shown: String = name.chars().take(PARAMETER_NAME_SHOWN_MAX).collect();
                return Err(ApiError::validation(
                    &shown,
                    format!(
                        "is not a parameter of this report; use {}",
                        known.join(", ")
                    ),
                ));
            }
            // An empty value (`currency=`) is the same as leaving the parameter out.
            if !value.trim().is_empty() {
                values.entry(name.as_str()).or_default().push(value.trim());
            }
        }
        Ok(Self { values })
    }

    fn all(&self, name: &str) -> &[&'a str] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    fn single(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.all(name) {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(ApiError::validation(name, "must be given at most once")),
        }
    }

    fn instant(&self, name: &'static str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(text) = self.single(name)? else {
            return Ok(None);
        };
        // An unencoded `+` in a query string arrives as a space: `...T10:00:00 02:00`.
        DateTime::parse_from_rfc3339(text)
            .or_else(|e| match text.contains(' ') {
                true => DateTime::parse_from_rfc3339(&text.replace(' ', "+")),
                false => Err(e),
            })
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                ApiError::validation(
                    name,
                    "must be an RFC 3339 instant such as 2026-01-31T23:59:59Z",
                )
            })
    }

    fn position(&self, name: &'static str) -> Result<Option<Position>, ApiError> {
        Ok(self
            .single(name)?
            .map(|text| Position::parse(name, text))
            .transpose()?)
    }
}

/// Rows of a report read in one query, and where the next batch starts (`None`: the end).
struct Batch<K> {
    csv: String,
    rows: usize,
    next: Option<K>,
}

fn batch<T, K>(page: Page<T>, key: impl Fn(&T) -> K, row: impl Fn(&T, &mut Csv)) -> Batch<K> {
    let mut csv = Csv::default();
    for item in &page.items {
        row(item, &mut csv);
        csv.end_row();
    }
    Batch {
        csv: csv.out,
        rows: page.items.len(),
        next: if page.has_next_page {
            page.items.last().map(key)
        } else {
            None
        },
    }
}

/// The report's response: the header row and the first batch are read before answering
/// (so a failing database is a clean error), the rest streams batch by batch.
async fn csv_response<K, F, Fut>(
    filename: &str,
    header_row: &str,
    rows_max: usize,
    mut fetch: F,
) -> Result<Response, ApiError>
where
    K: Send + 'static,
    F: FnMut(Option<K>, usize) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Batch<K>, QueryError>> + Send + 'static,
{
    let first = fetch(None, REPORT_BATCH_ROWS.min(rows_max)).await?;
    let written = first.rows;
    let opening = Bytes::from(format!("{header_row}{}", first.csv));
    let rest = stream::unfold(
        Some((first.next, written, fetch)),
        move |state| async move {
            let (next, written, mut fetch) = state?;
            let after = next?;
            if written >= rows_max {
                let line = format!(
                    "# truncated: this report stops at {rows_max} rows; narrow it with its parameters\r\n"
                );
                return Some((Ok(Bytes::from(line)), None));
            }
            match fetch(Some(after), REPORT_BATCH_ROWS.min(rows_max - written)).await {
                Ok(batch) => {
                    let written = written + batch.rows;
                    Some((
                        Ok(Bytes::from(batch.csv)),
                        Some((batch.next, written, fetch)),
                    ))
                }
                Err(error) => {
                    // The status line is gone: end the body abnormally so the client sees a failed download.
                    tracing::error!(%error, "report interrupted");
                    Some((
                        Err(io::Error::other("the report could not be completed")),
                        None,
                    ))
                }
            }
        },
    );
    let body =
        Body::from_stream(stream::once(async move { Ok::<_, io::Error>(opening) }).chain(rest));
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ),
        (header::CACHE_CONTROL, "no-store".to_string()),
    ];
    Ok((headers, body).into_response())
}

/// RFC 3339 with microseconds (what PostgreSQL stores), in UTC.
fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Writes CSV rows: fields separated by commas, rows by CRLF, quoted when needed.
#[derive(Default)]
pub struct Csv {
    out: String,
    row_started: bool,
}

impl Csv {
    /// A field written as it is (quoted if needed).
    pub fn field(&mut self, value: &str) {
        if self.row_started {
            self.out.push(',');
        }
        self.row_started = true;
        let needs_quotes = value.contains([',', '"', '\r', '\n'])
            || value.starts_with(' ')
            || value.ends_with(' ');
        if needs_quotes {
            self.out.push('"');
            self.out.push_str(&value.replace('"', "\"\""));
            self.out.push('"');
        } else {
            self.out.push_str(value);
        }
    }

    /// A free-text field, defused if a spreadsheet would read it as a formula.
    pub fn text(&mut self, value: &str) {
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            self.field(&format!("'{value}"));
        } else {
            self.field(value);
        }
    }

    pub fn end_row(&mut self) {
        self.out.push_str("\r\n");
        self.row_started = false;
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_when_they_must_be() {
        let mut csv = Csv::default();
        csv.field("plain");
        csv.field("with, comma");
        csv.field("say \"hi\"");
        csv.field("two\nlines");
        csv.field("");
        csv.end_row();
        csv.field("-12.50");
        csv.end_row();
        assert_eq!(
            csv.into_string(),
            "plain,\"with, comma\",\"say \"\"hi\"\"\",\"two\nlines\",\r\n-12.50\r\n"
        );
    }

    #[test]
    fn free_text_that_looks_like_a_formula_is_defused() {
        let mut csv = Csv::default();
        csv.text("=HYPERLINK(\"http://x\")");
        csv.text("@SUM(A1)");
        csv.text("Ada Lovelace");
        csv.end_row();
        assert_eq!(
            csv.into_string(),
            "\"'=HYPERLINK(\"\"http://x\"\")\",'@SUM(A1),Ada Lovelace\r\n"
        );
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused_by_name() {
        let pairs = vec![("asof".to_string(), "2026-01-01T00:00:00Z".to_string())];
        let Err(error) = Params::parse(&pairs, &["asOf"]) else {
            panic!("an unknown parameter was accepted");
        };
        assert_eq!(error.field.as_deref(), Some("asof"));
        assert!(
            error.client_message().starts_with("asof: "),
            "{}",
            error.message
        );

        let pairs = vec![
            ("currency".to_string(), "USD".to_string()),
            ("currency".to_string(), "EUR".to_string()),
        ];
        let params = Params::parse(&pairs, &["currency"]).expect("known parameters");
        let Err(error) = params.single("currency") else {
            panic!("a repeated parameter was accepted");
        };
        assert_eq!(error.field.as_deref(), Some("currency"));
    }

    #[test]
    fn instants_accept_an_unencoded_plus() {
        let pairs = vec![("asOf".to_string(), "2026-01-01T10:00:00 02:00".to_string())];
        let params = Params::parse(&pairs, &["asOf"]).expect("known parameter");
        let at = params.instant("asOf").expect("an instant").expect("given");
        assert_eq!(instant(at), "2026-01-01T08:00:00.000000Z");
    }
}
