//! Who looked at what, when: every balance, statement, audit-trail and access-log query and
//! every CSV download is recorded in `reporting.access_log` before its data is returned.
//!
//! The row is written (and committed) before the data is read; if it cannot be written
//! the query is refused, so there is no unlogged access. A query that is refused before it
//! reads (bad arguments, a stale read) is not recorded.
//!
//! Reads that arrive together share a commit: one task takes every record waiting (at most
//! [`ACCESS_LOG_BATCH_MAX`]), writes them with one multi-row insert in one transaction,
//! and only then answers each read with its own row's id. A read therefore still answers
//! only after its own row is durable, without every read paying for a commit of its own.

use platform::RequestContext;
use serde_json::Value;
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};

use crate::queries::QueryError;

/// Records written in one transaction, at most.
pub const ACCESS_LOG_BATCH_MAX: usize = 512;
/// Records waiting for the writer; beyond, readers wait for room (back-pressure).
pub const ACCESS_LOG_QUEUE_MAX: usize = 4_096;

/// The names queries are recorded under.
pub mod query_names {
    pub const ACCOUNTS: &str = "accounts";
    pub const ADJUSTMENTS: &str = "adjustments";
    pub const BALANCE_AS_OF: &str = "balanceAsOf";
    pub const BALANCES_AS_OF: &str = "balancesAsOf";
    pub const STATEMENT: &str = "statement";
    pub const AUDIT_TRAIL: &str = "auditTrail";
    pub const ACCESS_LOG: &str = "accessLog";
    pub const BALANCES_CSV: &str = "balances.csv";
    pub const AUDIT_CSV: &str = "audit.csv";
    pub const STATEMENT_CSV: &str = "statement.csv";
    pub const ACCESS_CSV: &str = "access.csv";
}

/// One access, as it is recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    pub actor: String,
    pub roles: Vec<String>,
    pub query: &'static str,
    /// The arguments as the caller gave them (after parsing).
    pub arguments: Value,
    pub correlation_id: Option<String>,
    pub client_addr: Option<String>,
}

impl Access {
    /// The access `request` makes with `query` and `arguments`.
    pub fn of(request: &RequestContext, query: &'static str, arguments: Value) -> Self {
        Self {
            actor: request.principal.actor.clone(),
            roles: request.principal.role_names(),
            query,
            arguments,
            correlation_id: Some(request.correlation_id.clone()),
            client_addr: request.client_addr.clone(),
        }
    }
}

type Reply = oneshot::Sender<Result<i64, QueryError>>;

/// The handle reads record their access through.
#[derive(Clone, Debug)]
pub struct AccessLog {
    submit: mpsc::Sender<(Access, Reply)>,
}

impl AccessLog {
    /// Starts the writer task on `pool` (it runs until every handle is dropped).
    pub fn spawn(pool: PgPool) -> Self {
        let (submit, receive) = mpsc::channel(ACCESS_LOG_QUEUE_MAX);
        tokio::spawn(write(pool, receive));
        Self { submit }
    }

    /// Records `access` and waits until its row is committed; returns the row's id. An
    /// error means the access must be refused.
    #[tracing::instrument(skip_all, fields(query = access.query, actor = %access.actor))]
    pub async fn record(&self, access: Access) -> Result<i64, QueryError> {
        let query = access.query;
        let (reply, answer) = oneshot::channel();
        self.submit
            .send((access, reply))
            .await
            .map_err(|_| QueryError::Unavailable(sqlx::Error::PoolClosed))?;
        let id = answer
            .await
            .map_err(|_| QueryError::Unavailable(sqlx::Error::PoolClosed))??;
        metrics::counter!("folio_reporting_access_log_rows_total", "query" => query).increment(1);
        Ok(id)
    }
}

async fn write(pool: PgPool, mut receive: mpsc::Receiver<(Access, Reply)>) {
    while let Some(first) = receive.recv().await {
        let mut batch = vec![first];
        while batch.len() < ACCESS_LOG_BATCH_MAX {
            match receive.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        metrics::histogram!("folio_access_log_batch_rows").record(batch.len() as f64);
        match insert(&pool, &batch).await {
            Ok(ids) => {
                for ((_, reply), id) in batch.into_iter().zip(ids) {
                    let _ = reply.send(Ok(id));
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot write the access log; refusing the queries");
                for (_, reply) in batch {
                    let _ = reply.send(Err(QueryError::from(clone_error(&error))));
                }
            }
        }
    }
}

/// Inserts the batch in one statement (one commit); the ids in batch order.
async fn insert(pool: &PgPool, batch: &[(Access, Reply)]) -> Result<Vec<i64>, sqlx::Error> {
    let accesses: Vec<&Access> = batch.iter().map(|(a, _)| a).collect();
    let rows = sqlx::query(
        "insert into reporting.access_log (actor, roles, query, arguments, correlation_id, client_addr)
         select u.actor, array(select jsonb_array_elements_text(u.roles)), u.query, u.arguments,
                u.correlation_id, u.client_addr
         from unnest($1::text[], $2::jsonb[], $3::text[], $4::jsonb[], $5::text[], $6::text[])
              with ordinality as u(actor, roles, query, arguments, correlation_id, client_addr, n)
         order by u.n
         returning id",
    )
    .bind(accesses.iter().map(|a| a.actor.clone()).collect::<Vec<_>>())
    .bind(
        accesses
            .iter()
            .map(|a| Value::from(a.roles.clone()))
            .collect::<Vec<_>>(),
    )
    .bind(accesses.iter().map(|a| a.query).collect::<Vec<_>>())
    .bind(accesses.iter().map(|a| a.arguments.clone()).collect::<Vec<_>>())
    .bind(accesses.iter().map(|a| a.correlation_id.clone()).collect::<Vec<_>>())
    .bind(accesses.iter().map(|a| a.client_addr.clone()).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?;
    let mut ids = rows
        .iter()
        .map(|row| row.try_get::<i64, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    // Identity values follow the insertion order of one statement.
    ids.sort_unstable();
    assert_eq!(ids.len(), batch.len(), "one row per access");
    Ok(ids)
}

/// A database error as each waiting read sees it (errors are not `Clone`).
fn clone_error(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::Io(e) => sqlx::Error::Io(std::io::Error::new(e.kind(), e.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}
