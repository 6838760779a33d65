//! Who looked at what, when, and who was turned away (PCI DSS 10.2.1): every read of account
//! data and every refused access attempt is a row of `reporting.access_log`, one table for
//! the whole platform (both services share the database; DESIGN.md, "Security").
//!
//! - A **granted** read is recorded, and the row committed, before its data is read; if the
//!   row cannot be written the read is refused ([`AccessLog::record`]), so there is no
//!   unlogged access. A read refused before it reads anything (bad arguments, a stale read)
//!   is not a granted access and is not recorded.
//! - A **refused** attempt (HTTP 401, FORBIDDEN, a role asking for a report it may not
//!   see) is recorded with the code and reason it was refused for
//!   ([`AccessLog::record_refusal`]). The caller is answered the refusal whether or not
//!   the row could be written; a failure to write it is logged as an error.
//!
//! Every row says who (the verified actor and roles, or [`UNAUTHENTICATED_ACTOR`]), what
//! (the query, report or route, and its arguments), when (`accessed_at`, the database's
//! clock), from where (the client address, the correlation id) and, for a refusal, why.
//! The runtime role may only insert and read rows (migration
//! `20261230000109_access_log_refusals.sql`).
//!
//! Reads that arrive together share a commit: one task takes every record waiting (at most
//! [`ACCESS_LOG_BATCH_MAX`]), writes them with one multi-row insert in one transaction,
//! and only then answers each with its own row's id.

use std::borrow::Cow;

use ledger::ErrorCode;
use serde_json::Value;
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};

use crate::{ApiError, RequestContext};

/// Records written in one transaction, at most.
pub const ACCESS_LOG_BATCH_MAX: usize = 512;
/// Records waiting for the writer; beyond, callers wait for room (back-pressure).
pub const ACCESS_LOG_QUEUE_MAX: usize = 4_096;
/// The actor recorded for a request whose credentials were refused (HTTP 401): the token
/// could not be verified, so nothing it claims is recorded as its identity.
pub const UNAUTHENTICATED_ACTOR: &str = "(unauthenticated)";
/// The longest reason recorded; longer ones are cut at a character boundary.
pub const REFUSAL_REASON_LEN_MAX: usize = 500;
/// The most bytes of arguments (as JSON) a refused attempt records. A refusal's arguments
/// are the caller's, unchecked (a refused `executeBatch` carries up to 256 KiB): beyond
/// this, the row keeps their size only, so a caller without the role cannot make each
/// refusal write a large row.
pub const REFUSED_ARGUMENTS_BYTES_MAX: usize = 4_096;

/// The names reads are recorded under (refusals of other operations use the GraphQL
/// field's name or the HTTP route).
pub mod query_names {
    pub const ACCOUNT: &str = "account";
    pub const ACCOUNTS: &str = "accounts";
    pub const ADJUSTMENTS: &str = "adjustments";
    pub const BALANCE_AS_OF: &str = "balanceAsOf";
    pub const BALANCES_AS_OF: &str = "balancesAsOf";
    pub const STATEMENT: &str = "statement";
    pub const AUDIT_TRAIL: &str = "auditTrail";
    pub const ACCESS_LOG: &str = "accessLog";
    pub const PERIOD_CLOSE: &str = "periodClose";
    pub const PERIOD_CLOSES: &str = "periodCloses";
    pub const BALANCES_CSV: &str = "balances.csv";
    pub const AUDIT_CSV: &str = "audit.csv";
    pub const STATEMENT_CSV: &str = "statement.csv";
    pub const ACCESS_CSV: &str = "access.csv";
    pub const PERIOD_JSON: &str = "period.json";
    pub const AUDIT_PROOF: &str = "auditProof";
    pub const VERIFY_INTEGRITY: &str = "verifyIntegrity";
}

/// Whether an access was let in (GraphQL `AccessOutcome`).
#[derive(async_graphql::Enum, serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(name = "AccessOutcome")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// The data was read (the row was committed before it was).
    Granted,
    /// The attempt was turned away: 401, FORBIDDEN, or a report the role may not see.
    Refused,
}

impl Outcome {
    /// The name stored in `access_log.outcome` and shown in the API (`AccessOutcome`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "GRANTED",
            Self::Refused => "REFUSED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "GRANTED" => Some(Self::Granted),
            "REFUSED" => Some(Self::Refused),
            _ => None,
        }
    }
}

/// Why an attempt was refused: its error code (`UNAUTHENTICATED`, `FORBIDDEN`) and the
/// message the caller was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: &str, reason: &str) -> Self {
        let mut end = reason.len().min(REFUSAL_REASON_LEN_MAX);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            code: code.to_string(),
            reason: reason[..end].to_string(),
        }
    }

    /// The refusal `error` answers.
    pub fn of(error: &ApiError) -> Self {
        Self::new(error.code.as_str(), &error.client_message())
    }
}

/// One access, as it is recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    pub actor: String,
    pub roles: Vec<String>,
    /// The query or report read (`statement`, `audit.csv`), or for a refusal the operation
    /// or route attempted (`transfer`, `POST /graphql`).
    pub query: Cow<'static, str>,
    /// The arguments as the caller gave them (after parsing, for granted reads).
    pub arguments: Value,
    pub correlation_id: Option<String>,
    pub client_addr: Option<String>,
    /// `None` for a granted read.
    pub refusal: Option<Refusal>,
}

impl Access {
    /// The read `request` makes with `query` and `arguments`.
    pub fn of(request: &RequestContext, query: &'static str, arguments: Value) -> Self {
        Self {
            actor: request.principal.actor.clone(),
            roles: request.principal.role_names(),
            query: Cow::Borrowed(query),
            arguments,
            correlation_id: Some(request.correlation_id.clone()),
            client_addr: request.client_addr.clone(),
            refusal: None,
        }
    }

    /// The attempt of `request` at `query`, refused with `error`.
    pub fn refused(
        request: &RequestContext,
        query: impl Into<Cow<'static, str>>,
        arguments: Value,
        error: &ApiError,
    ) -> Self {
        let size = arguments.to_string().len();
        let arguments = if size > REFUSED_ARGUMENTS_BYTES_MAX {
            serde_json::json!({ "omitted": format!("{size} bytes of arguments") })
        } else {
            arguments
        };
        Self {
            query: query.into(),
            refusal: Some(Refusal::of(error)),
            ..Self::of(request, "", arguments)
        }
    }

    /// A request to `route` whose credentials were refused (HTTP 401) for `reason`.
    pub fn unauthenticated(
        route: String,
        correlation_id: Option<String>,
        client_addr: Option<String>,
        reason: &str,
    ) -> Self {
        Self {
            actor: UNAUTHENTICATED_ACTOR.to_string(),
            roles: Vec::new(),
            query: Cow::Owned(route),
            arguments: Value::Object(Default::default()),
            correlation_id,
            client_addr,
            refusal: Some(Refusal::new(ErrorCode::Unauthenticated.as_str(), reason)),
        }
    }

    pub fn outcome(&self) -> Outcome {
        if self.refusal.is_some() {
            Outcome::Refused
        } else {
            Outcome::Granted
        }
    }
}

type Reply = oneshot::Sender<Result<i64, ApiError>>;

/// The handle accesses are recorded through; cheap to clone, one writer per process.
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

    /// Records `access` and waits until its row is committed; returns the row's id.
    /// UNAVAILABLE when the row cannot be written: the access must then be refused.
    #[tracing::instrument(skip_all, fields(query = %access.query, actor = %access.actor))]
    pub async fn record(&self, access: Access) -> Result<i64, ApiError> {
        let outcome = access.outcome();
        let (reply, answer) = oneshot::channel();
        let closed = || ApiError::unavailable("the access log");
        self.submit
            .send((access, reply))
            .await
            .map_err(|_| closed())?;
        let id = answer.await.map_err(|_| closed())??;
        metrics::counter!("folio_access_log_rows_total", "outcome" => outcome.as_str())
            .increment(1);
        Ok(id)
    }

    /// Records the refused attempt `access` and waits for its row; a row that cannot be
    /// written is logged, never turned into another answer.
    pub async fn record_refusal(&self, access: Access) {
        debug_assert!(access.refusal.is_some(), "a refusal carries its reason");
        if let Err(error) = self.record(access).await {
            tracing::error!(%error.message, "a refused access could not be recorded");
        }
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
                tracing::error!(%error, "cannot write the access log; refusing the reads");
                let answer = if crate::db::is_unavailable(&error) {
                    ApiError::unavailable("the access log")
                } else {
                    ApiError::internal(&error)
                };
                for (_, reply) in batch {
                    let _ = reply.send(Err(answer.clone()));
                }
            }
        }
    }
}

/// Inserts the batch in one statement (one commit); the ids in batch order.
async fn insert(pool: &PgPool, batch: &[(Access, Reply)]) -> Result<Vec<i64>, sqlx::Error> {
    let accesses: Vec<&Access> = batch.iter().map(|(a, _)| a).collect();
    let rows = sqlx::query(
        "insert into reporting.access_log
             (actor, roles, query, arguments, correlation_id, client_addr, outcome,
              refusal_code, refusal_reason)
         select u.actor, array(select jsonb_array_elements_text(u.roles)), u.query, u.arguments,
                u.correlation_id, u.client_addr, u.outcome, u.refusal_code, u.refusal_reason
         from unnest($1::text[], $2::jsonb[], $3::text[], $4::jsonb[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[])
              with ordinality as u(actor, roles, query, arguments, correlation_id, client_addr,
                                   outcome, refusal_code, refusal_reason, n)
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
    .bind(
        accesses
            .iter()
            .map(|a| a.query.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(
        accesses
            .iter()
            .map(|a| a.arguments.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        accesses
            .iter()
            .map(|a| a.correlation_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        accesses
            .iter()
            .map(|a| a.client_addr.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        accesses
            .iter()
            .map(|a| a.outcome().as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        accesses
            .iter()
            .map(|a| a.refusal.as_ref().map(|r| r.code.clone()))
            .collect::<Vec<_>>(),
    )
    .bind(
        accesses
            .iter()
            .map(|a| a.refusal.as_ref().map(|r| r.reason.clone()))
            .collect::<Vec<_>>(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reason_is_cut_at_a_character_boundary() {
        let reason = "é".repeat(REFUSAL_REASON_LEN_MAX);
        let refusal = Refusal::new("FORBIDDEN", &reason);
        assert!(refusal.reason.len() <= REFUSAL_REASON_LEN_MAX);
        assert_eq!(refusal.reason.chars().count(), REFUSAL_REASON_LEN_MAX / 2);
    }

    #[test]
    fn a_refusal_keeps_small_arguments_and_only_the_size_of_large_ones() {
        let request = RequestContext {
            principal: crate::Principal {
                actor: "nick".into(),
                roles: Default::default(),
            },
            correlation_id: "c".into(),
            client_addr: None,
        };
        let error = ApiError::forbidden(&[crate::Role::Teller]);
        let small = serde_json::json!({ "input": { "amount": "5.00" } });
        assert_eq!(
            Access::refused(&request, "deposit", small.clone(), &error).arguments,
            small
        );
        let large = serde_json::json!({ "input": "x".repeat(REFUSED_ARGUMENTS_BYTES_MAX) });
        let size = large.to_string().len();
        assert_eq!(
            Access::refused(&request, "executeBatch", large, &error).arguments,
            serde_json::json!({ "omitted": format!("{size} bytes of arguments") })
        );
    }

    #[test]
    fn outcomes_round_trip_through_their_names() {
        for outcome in [Outcome::Granted, Outcome::Refused] {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(Outcome::parse("granted"), None);
    }
}
