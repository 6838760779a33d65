//! Who looked at what, when: every balance, statement, audit-trail and access-log query and
//! every CSV download is recorded in `reporting.access_log` before its data is returned.
//!
//! The row is written (and committed) before the data is read; if it cannot be
//! written the query is refused, so there is no unlogged access. A query that is
//! refused before it reads (bad arguments, a stale read) is not recorded.

use platform::RequestContext;
use serde_json::Value;
use sqlx::PgPool;

use crate::queries::QueryError;

/// The names queries are recorded under.
pub mod query_names {
    pub const BALANCE_AS_OF: &str = "balanceAsOf";
    pub const BALANCES_AS_OF: &str = "balancesAsOf";
    pub const STATEMENT: &str = "statement";
    pub const AUDIT_TRAIL: &str = "auditTrail";
    pub const ACCESS_LOG: &str = "accessLog";
    pub const BALANCES_CSV: &str = "balances.csv";
    pub const AUDIT_CSV: &str = "audit.csv";
}

/// One access, as it is recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Access<'a> {
    pub actor: &'a str,
    pub roles: Vec<String>,
    pub query: &'static str,
    /// The arguments as the caller gave them (after parsing).
    pub arguments: Value,
    pub correlation_id: Option<&'a str>,
    pub client_addr: Option<&'a str>,
}

impl<'a> Access<'a> {
    /// The access `request` makes with `query` and `arguments`.
    pub fn of(request: &'a RequestContext, query: &'static str, arguments: Value) -> Self {
        Self {
            actor: &request.principal.actor,
            roles: request.principal.role_names(),
            query,
            arguments,
            correlation_id: Some(&request.correlation_id),
            client_addr: request.client_addr.as_deref(),
        }
    }
}

/// Records `access`; returns the row's id. An error means the access must be refused.
#[tracing::instrument(skip_all, fields(query = access.query, actor = access.actor))]
pub async fn record(pool: &PgPool, access: &Access<'_>) -> Result<i64, QueryError> {
    let id = sqlx::query_scalar(
        "insert into reporting.access_log (actor, roles, query, arguments, correlation_id, client_addr)
         values ($1, $2, $3, $4, $5, $6)
         returning id",
    )
    .bind(access.actor)
    .bind(&access.roles)
    .bind(access.query)
    .bind(&access.arguments)
    .bind(access.correlation_id)
    .bind(access.client_addr)
    .fetch_one(pool)
    .await
    .inspect_err(|error| tracing::error!(%error, "cannot write the access log; refusing the query"))?;
    metrics::counter!("folio_reporting_access_log_rows_total", "query" => access.query)
        .increment(1);
    Ok(id)
}
