//! CSV reports for spreadsheets, with the same authentication, roles and access log as the
//! GraphQL queries (they read through [`crate::gate`]):
//!
//! - `GET /reports/balances.csv`: every account's balance at a value date, as known at a
//!   booking instant, then one total row per currency;
//! - `GET /reports/statement.csv`: one account's statement for a range of value dates,
//!   between an opening and a closing balance row;
//! - `GET /reports/audit.csv`: the audit trail, filtered, with each event's amount and
//!   currency in columns of their own;
//! - `GET /reports/access.csv`: who looked at what (auditors).
//!
//! Instants are RFC 3339, or a date (`2026-03-31`) read in the time zone `tz` (IANA name,
//! default UTC): the start of that day for `from`, its end for `asOf` and `to`. `bom=true`
//! starts the file with a UTF-8 byte-order mark, so Excel reads "José" as written.
//!
//! Rows are streamed in keyset batches of [`REPORT_BATCH_ROWS`], so a report never
//! holds more than one batch in memory nor a database connection between batches;
//! a report stops at [`REPORT_ROWS_MAX`] rows and then says so in a final comment
//! line. Fields are quoted as RFC 4180 says, and free-text fields that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return
//! first) are prefixed with `'`.

mod access;
mod audit;
mod balances;
mod statement;

pub use access::{ACCESS_HEADER, access_report};
pub use audit::{AUDIT_HEADER, audit_report};
pub use balances::{BALANCES_HEADER, balances_report};
pub use statement::{STATEMENT_HEADER, statement_report};

use std::{collections::BTreeMap, future::Future, io};

use axum::{
    Extension, Router,
    body::{Body, Bytes},
    extract::Query,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use futures::{StreamExt, stream};
use ledger::ErrorCode;
use platform::{ApiError, RequestContext, graphql::CORRELATION_ID_HEADER};

use crate::{
    queries::{Page, Position, QueryError},
    state::ReportingState,
};

/// The most rows one report holds; beyond it the report ends with a line saying it was truncated.
pub const REPORT_ROWS_MAX: usize = 1_000_000;
/// Rows read from the database per query while a report streams.
pub const REPORT_BATCH_ROWS: usize = 1_000;
/// How much of an unknown parameter's name an error message repeats.
const PARAMETER_NAME_SHOWN_MAX: usize = 64;
/// The byte-order mark `bom=true` puts first.
const UTF8_BOM: &str = "\u{feff}";

/// The report routes; needs `Extension<ReportingState>` and `Extension<Arc<TokenKeys>>` layers.
pub fn routes() -> Router {
    Router::new()
        .route("/reports/balances.csv", get(balances_csv))
        .route("/reports/statement.csv", get(statement_csv))
        .route("/reports/audit.csv", get(audit_csv))
        .route("/reports/access.csv", get(access_csv))
}

/// The signature every report shares: the state, who asks, the query parameters, a row limit.
macro_rules! handler {
    ($name:ident, $report:path) => {
        async fn $name(
            request: RequestContext,
            Extension(state): Extension<ReportingState>,
            Query(params): Query<Vec<(String, String)>>,
        ) -> Response {
            let response = $report(&state, &request, &params, REPORT_ROWS_MAX).await;
            with_correlation_id(response.unwrap_or_else(error_response), &request)
        }
    };
}

handler!(balances_csv, balances_report);
handler!(statement_csv, statement_report);
handler!(audit_csv, audit_report);
handler!(access_csv, access_report);

/// A GraphQL-shaped error body, so clients read reports' errors as they read the API's.
pub fn error_response(error: ApiError) -> Response {
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

/// The response with the request's correlation id, and who asked for the request log.
pub fn with_correlation_id(mut response: Response, request: &RequestContext) -> Response {
    if let Ok(value) = request.correlation_id.parse() {
        response.headers_mut().insert(CORRELATION_ID_HEADER, value);
    }
    response
        .extensions_mut()
        .insert(platform::observability::RequestFacts {
            actor: Some(request.principal.actor.clone()),
            operation: None,
        });
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
                    "must be an RFC 3339 instant such as 2026-01-31T23:59:59Z, or a date such as 2026-01-31",
                )
            })
    }

    /// The time zone dates are read in: `tz` (an IANA name such as Europe/Madrid), or UTC.
    fn zone(&self) -> Result<Tz, ApiError> {
        match self.single("tz")? {
            None => Ok(Tz::UTC),
            Some(name) => name.parse::<Tz>().map_err(|_| {
                ApiError::validation(
                    "tz",
                    format!("{name:?} is not an IANA time zone such as Europe/Madrid or America/New_York"),
                )
            }),
        }
    }

    /// `name` as an instant: RFC 3339, or a date (`2026-03-31`) in `zone`, taken at the
    /// start of that day (`end`: false) or its last microsecond (`end`: true).
    fn moment(
        &self,
        name: &'static str,
        zone: Tz,
        end: bool,
    ) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(text) = self.single(name)? else {
            return Ok(None);
        };
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return day_bound(date, zone, end).map(Some).ok_or_else(|| {
                ApiError::validation(name, format!("{date} has no such day in {zone}"))
            });
        }
        self.instant(name)
    }

    /// A yes/no parameter: `true` or `false` (absent: false).
    fn flag(&self, name: &'static str) -> Result<bool, ApiError> {
        match self.single(name)? {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::validation(name, "must be true or false")),
        }
    }

    fn position(&self, name: &'static str) -> Result<Option<Position>, ApiError> {
        Ok(self
            .single(name)?
            .map(|text| Position::parse(name, text))
            .transpose()?)
    }
}

/// The first instant of `date` in `zone` (`end`: the last microsecond of it), in UTC.
pub fn day_bound(date: NaiveDate, zone: Tz, end: bool) -> Option<DateTime<Utc>> {
    let day = if end { date.succ_opt()? } else { date };
    // Midnight may not exist (a DST gap); the earliest instant of the day is then the first
    // that does.
    let start = (0..=3).find_map(|hour| {
        zone.from_local_datetime(&day.and_hms_opt(hour, 0, 0)?)
            .earliest()
    })?;
    let start = start.with_timezone(&Utc);
    Some(if end {
        start - Duration::microseconds(1)
    } else {
        start
    })
}

/// What a report starts and ends with besides its rows.
#[derive(Default)]
struct Frame {
    /// A UTF-8 byte-order mark first (`bom=true`).
    bom: bool,
    /// Rows after the header, before the first batch (a statement's opening balance).
    leading: String,
    /// Rows after the last batch (totals, a closing balance); left out when truncated.
    trailing: String,
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
    frame: Frame,
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
    let opening = Bytes::from(format!(
        "{}{header_row}{}{}",
        if frame.bom { UTF8_BOM } else { "" },
        frame.leading,
        first.csv
    ));
    let trailing = frame.trailing;
    let rest = stream::unfold(
        Some((first.next, written, fetch, trailing)),
        move |state| async move {
            let (next, written, mut fetch, trailing) = state?;
            let Some(after) = next else {
                // The end: the closing rows, once.
                return (!trailing.is_empty()).then(|| (Ok(Bytes::from(trailing)), None));
            };
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
                        Some((batch.next, written, fetch, trailing)),
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
