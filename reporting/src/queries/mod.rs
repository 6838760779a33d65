//! Read functions over the read models: plain Rust values in, plain Rust values out.
//!
//! Everything here is SQL against the `reporting` schema and nothing here knows
//! about GraphQL or HTTP; the GraphQL resolvers and the CSV reports both build on
//! these functions. Pages are keyset pages: a cursor names the last item seen, so
//! a page costs the same however deep into a list it is.

mod access;
mod accounts;
mod adjustments;
mod audit;
mod balances;
mod consistency;
pub mod cursor;
mod statement;
mod status;

use ledger::{Currency, ErrorCode};
use platform::ApiError;

pub use access::{AccessCriteria, AccessKey, AccessLogEntry, AccessLogFilter, access_log};
pub use accounts::{AccountFilter, AccountSummary, accounts};
pub use adjustments::{AdjustmentKey, AdjustmentRow, adjustments};
pub use audit::{AuditEntry, AuditFilter, PositionKey, audit_trail};
pub use balances::{
    AccountKey, BalancesAsOf, CurrencyTotal, HistoricalBalance, TwoAxes, balance_as_of,
    balances_as_of, explain_balance_as_of,
};
pub use consistency::{POSITION_POLL_INTERVAL, Position, wait_for_position};
pub use statement::{EntryKey, EntryKind, Statement, StatementEntry, StatementScope, statement};
pub use status::{HALTED_ACCOUNTS_MAX, ProjectionStatus, projection_status};

/// Items in a page when the client does not say.
pub const PAGE_SIZE_DEFAULT: usize = 50;
/// The most items one page may hold; larger requests are clamped to it.
pub const PAGE_SIZE_MAX: usize = 500;
/// The longest free-text filter value accepted (actor, correlation id, query name).
pub const FILTER_TEXT_LEN_MAX: usize = 200;

/// Why a read could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// An argument is not acceptable: `field` is its path, `rule` says what it must be.
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },
    #[error("there is no account {0}")]
    AccountNotFound(uuid::Uuid),
    /// The projection has not applied `wanted` within the wait.
    #[error(
        "position {wanted} is not projected yet (waited {waited_ms} ms; the projection watermark is at position {}); retry shortly",
        checkpoint.map_or_else(|| "0".to_string(), |p| p.to_string())
    )]
    Stale {
        wanted: i64,
        checkpoint: Option<i64>,
        waited_ms: u128,
    },
    /// Not every event booked at or before `as_known_at` is applied yet.
    #[error(
        "not every booking up to asKnownAt {} is projected yet (waited {waited_ms} ms; complete through {}); retry shortly",
        as_known_at.to_rfc3339(),
        booked_through.map_or_else(|| "an instant the relay has not announced yet".to_string(), |t| t.to_rfc3339())
    )]
    NotYetKnown {
        as_known_at: chrono::DateTime<chrono::Utc>,
        booked_through: Option<chrono::DateTime<chrono::Utc>>,
        waited_ms: u128,
    },
    /// PostgreSQL cannot be reached.
    #[error("read models unreachable: {0}")]
    Unavailable(sqlx::Error),
    #[error("read models: {0}")]
    Database(sqlx::Error),
    /// Two sources that must agree do not: a defect or corrupted read models.
    #[error("invariant broken: {0}")]
    Invariant(String),
}

impl QueryError {
    pub fn invalid(field: &str, rule: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_string(),
            rule: rule.into(),
        }
    }

    /// The same refusal, about a field inside the argument `argument` (`filter.actor`).
    pub fn under(self, argument: &str) -> Self {
        match self {
            Self::Invalid { field, rule } => Self::Invalid {
                field: format!("{argument}.{field}"),
                rule,
            },
            other => other,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { .. } => ErrorCode::Validation,
            Self::AccountNotFound(_) => ErrorCode::AccountNotFound,
            Self::Stale { .. } | Self::NotYetKnown { .. } => ErrorCode::StaleRead,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Database(_) | Self::Invariant(_) => ErrorCode::Internal,
        }
    }
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        if platform::db::is_unavailable(&error) {
            Self::Unavailable(error)
        } else {
            Self::Database(error)
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        match &error {
            QueryError::Unavailable(source) => {
                tracing::warn!(error = %source, "read models unavailable");
                ApiError::unavailable("the reporting database")
            }
            QueryError::Database(_) | QueryError::Invariant(_) => ApiError::internal(&error),
            QueryError::Invalid { field, rule } => ApiError::validation(field, rule),
            QueryError::AccountNotFound(_) => {
                ApiError::new(error.code(), error.to_string()).at("accountId")
            }
            QueryError::Stale { .. } => {
                ApiError::new(error.code(), error.to_string()).at("atLeast")
            }
            QueryError::NotYetKnown { .. } => {
                ApiError::new(error.code(), error.to_string()).at("asKnownAt")
            }
        }
    }
}

/// One page of a keyset-paginated list.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether more items follow the last one of this page.
    pub has_next_page: bool,
}

impl<T> Page<T> {
    /// Splits `rows` fetched with a limit of `size + 1` into a page of at most `size` items.
    fn from_rows(mut rows: Vec<T>, size: usize) -> Self {
        let has_next_page = rows.len() > size;
        rows.truncate(size);
        Self {
            items: rows,
            has_next_page,
        }
    }
}

/// The page size for `first`: [`PAGE_SIZE_DEFAULT`] when absent, at most [`PAGE_SIZE_MAX`].
pub fn page_size(first: Option<i64>) -> Result<usize, QueryError> {
    match first {
        None => Ok(PAGE_SIZE_DEFAULT),
        Some(n) if n < 0 => Err(QueryError::invalid("first", "must be zero or more")),
        Some(n) => Ok(usize::try_from(n)
            .unwrap_or(PAGE_SIZE_MAX)
            .min(PAGE_SIZE_MAX)),
    }
}

/// The `LIMIT` that fetches a page of `size` plus one row telling whether more follow.
fn fetch_limit(size: usize) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX - 1) + 1
}

/// A currency filter, parsed as an ISO 4217 code.
pub fn parse_currency(field: &str, code: &str) -> Result<Currency, QueryError> {
    Currency::parse(code).map_err(|e| QueryError::invalid(field, e.to_string()))
}

/// A free-text filter value: trimmed, not empty, at most [`FILTER_TEXT_LEN_MAX`] characters.
pub fn parse_filter_text(field: &str, value: &str) -> Result<String, QueryError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > FILTER_TEXT_LEN_MAX {
        return Err(QueryError::invalid(
            field,
            format!("must be 1 to {FILTER_TEXT_LEN_MAX} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(QueryError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_string())
}

/// The `currency` column of a read-model row, typed. PostgreSQL may hand a zero back
/// without its scale, so every amount read is shown through [`Currency::display`].
fn stored_currency(row: &sqlx::postgres::PgRow) -> Result<Currency, QueryError> {
    use sqlx::Row;
    let code: String = row.try_get("currency")?;
    Currency::parse(&code)
        .map_err(|e| QueryError::Invariant(format!("a read model holds currency {code:?}: {e}")))
}

/// Opens a read-only snapshot, so that every read of one answer sees the same state.
async fn snapshot(
    pool: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin_with("begin isolation level repeatable read read only")
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_default_clamp_and_refuse_negatives() {
        assert_eq!(page_size(None).ok(), Some(PAGE_SIZE_DEFAULT));
        assert_eq!(page_size(Some(7)).ok(), Some(7));
        assert_eq!(page_size(Some(0)).ok(), Some(0));
        assert_eq!(page_size(Some(100_000)).ok(), Some(PAGE_SIZE_MAX));
        let Err(error) = page_size(Some(-1)) else {
            panic!("a negative page size was accepted");
        };
        assert_eq!(error.code(), ErrorCode::Validation);
        assert!(error.to_string().starts_with("first: "), "{error}");
    }

    #[test]
    fn stale_reads_say_which_position_and_where_the_checkpoint_is() {
        let error = QueryError::Stale {
            wanted: 42,
            checkpoint: Some(17),
            waited_ms: 200,
        };
        assert_eq!(error.code(), ErrorCode::StaleRead);
        let message = error.to_string();
        assert!(message.contains("position 42"), "{message}");
        assert!(message.contains("position 17"), "{message}");
    }
}
