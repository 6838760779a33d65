//! Reading the access log (who looked at what, when), newest first.

use chrono::{DateTime, Utc};
use platform::access_log::Outcome;
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, postgres::PgRow};
use uuid::Uuid;

use super::{Page, QueryError, cursor::CursorKey, fetch_limit, parse_filter_text};

/// Which accesses to list; every given criterion must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessLogFilter {
    pub actor: Option<String>,
    /// The query name, e.g. `statement` or `audit.csv`.
    pub query: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Reads of this account: its id as the read's `accountId` argument, or in its filter.
    pub account_id: Option<Uuid>,
    pub correlation_id: Option<String>,
    /// Only granted reads, or only refused attempts.
    pub outcome: Option<Outcome>,
}

/// What an access-log filter may name besides time: who, which query, which account, which
/// conversation. Text criteria are checked as every filter's text is.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessCriteria<'a> {
    pub actor: Option<&'a str>,
    pub query: Option<&'a str>,
    pub account_id: Option<Uuid>,
    pub correlation_id: Option<&'a str>,
    pub outcome: Option<Outcome>,
}

impl AccessLogFilter {
    /// The filter of `criteria` from `from` to `to`; VALIDATION (field `from`) when `from`
    /// is later than `to`, or naming a text criterion that is blank or too long.
    pub fn parse(
        criteria: AccessCriteria<'_>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Self, QueryError> {
        let AccessCriteria {
            actor,
            query,
            account_id,
            correlation_id,
            outcome,
        } = criteria;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(QueryError::invalid("from", "must not be later than to"));
        }
        Ok(Self {
            actor: actor.map(|a| parse_filter_text("actor", a)).transpose()?,
            query: query.map(|q| parse_filter_text("query", q)).transpose()?,
            from,
            to,
            account_id,
            correlation_id: correlation_id
                .map(|c| parse_filter_text("correlationId", c))
                .transpose()?,
            outcome,
        })
    }
}

/// One recorded access.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessLogEntry {
    pub id: i64,
    pub accessed_at: DateTime<Utc>,
    pub actor: String,
    pub roles: Vec<String>,
    pub query: String,
    pub arguments: Value,
    pub correlation_id: Option<String>,
    pub client_addr: Option<String>,
    pub outcome: Outcome,
    /// The code a refused attempt was answered with (`UNAUTHENTICATED`, `FORBIDDEN`).
    pub refusal_code: Option<String>,
    /// The message a refused attempt was answered with.
    pub refusal_reason: Option<String>,
}

impl AccessLogEntry {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            accessed_at: row.try_get("accessed_at")?,
            actor: row.try_get("actor")?,
            roles: row.try_get("roles")?,
            query: row.try_get("query")?,
            arguments: row.try_get("arguments")?,
            correlation_id: row.try_get("correlation_id")?,
            client_addr: row.try_get("client_addr")?,
            outcome: Outcome::parse(row.try_get("outcome")?)
                .ok_or_else(|| sqlx::Error::Decode("access_log.outcome is unknown".into()))?,
            refusal_code: row.try_get("refusal_code")?,
            refusal_reason: row.try_get("refusal_reason")?,
        })
    }

    pub fn key(&self) -> AccessKey {
        AccessKey(self.id)
    }
}

/// The place of an access in the log: its id (the list runs newest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessKey(pub i64);

impl CursorKey for AccessKey {
    const KIND: &'static str = "access";

    fn to_text(&self) -> String {
        self.0.to_string()
    }

    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok().map(Self)
    }
}

/// The accesses matching `filter`, newest first, `size` of them after `after`.
pub async fn access_log(
    pool: &PgPool,
    filter: &AccessLogFilter,
    size: usize,
    after: Option<AccessKey>,
) -> Result<Page<AccessLogEntry>, QueryError> {
    let mut query = QueryBuilder::<Postgres>::new(
        "select id, accessed_at, actor, roles, query, arguments, correlation_id, client_addr,
                outcome, refusal_code, refusal_reason
         from reporting.access_log
         where true",
    );
    if let Some(actor) = &filter.actor {
        query.push(" and actor = ").push_bind(actor.as_str());
    }
    if let Some(name) = &filter.query {
        query.push(" and query = ").push_bind(name.as_str());
    }
    if let Some(account) = filter.account_id {
        let account = account.to_string();
        query
            .push(" and (arguments->>'accountId' = ")
            .push_bind(account.clone())
            .push(" or arguments #>> '{filter,accountId}' = ")
            .push_bind(account)
            .push(")");
    }
    if let Some(correlation_id) = &filter.correlation_id {
        query
            .push(" and correlation_id = ")
            .push_bind(correlation_id.as_str());
    }
    if let Some(outcome) = filter.outcome {
        query.push(" and outcome = ").push_bind(outcome.as_str());
    }
    if let Some(from) = filter.from {
        query.push(" and accessed_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" and accessed_at <= ").push_bind(to);
    }
    if let Some(AccessKey(after)) = after {
        query.push(" and id < ").push_bind(after);
    }
    query
        .push(" order by id desc limit ")
        .push_bind(fetch_limit(size));
    let rows = query.build().fetch_all(pool).await?;
    let entries = rows
        .iter()
        .map(AccessLogEntry::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(entries, size))
}
