//! `folio rebuild`: the read models built again from the JetStream stream alone, in bulk,
//! then swapped in while the service keeps answering from the old ones.
//!
//! 1. The read-model tables are created empty in [`REBUILD_SCHEMA`], keeping only the
//!    unique keys the projection's writes rely on; every other index waits.
//! 2. The stream is read from its first message with an ordered consumer and applied by
//!    the ordinary projection code in large batches ([`REBUILD_BATCH_EVENTS`] events per
//!    transaction, one multi-row statement per table), up to the stream's last message at
//!    the start.
//! 3. The remaining keys and indexes are built, once, over the whole tables.
//! 4. The swap, in one transaction: the live tables are locked (a batch the live projection
//!    is writing finishes first), the events it applied since step 2 are applied to the new
//!    tables too, the old tables are dropped and the new ones moved into `reporting`. The
//!    live projection's next batch fails on the dropped tables and resumes from the new
//!    checkpoint; the access log (not derived from events) is never touched.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy};
use futures::StreamExt;
use ledger::subjects;
use platform::config::NatsSettings;
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::projection::{Delivery, Projector, READ_MODEL_SCHEMA};

/// The schema a rebuild writes into before it is swapped in.
pub const REBUILD_SCHEMA: &str = "reporting_rebuild";
/// Events applied per transaction while rebuilding.
pub const REBUILD_BATCH_EVENTS: usize = 10_000;
/// Batches the rebuild's reader may have fetched and decoded ahead of the one being written.
pub const REBUILD_BATCHES_AHEAD: usize = 2;
/// The read models rebuilt from the stream. The access log is a record of reads, not of
/// events, and is kept as it is.
pub const REBUILT_TABLES: [&str; 9] = [
    "projection_checkpoints",
    "adjustments",
    "account_balances",
    "balance_history",
    "ledger_entries",
    "audit_log",
    "transfers",
    "integrity_alerts",
    "parked_events",
];
/// Tables whose unique keys the projection's writes need from the first batch
/// (`ON CONFLICT`, or updates by key).
const KEYED_FROM_THE_START: [&str; 6] = [
    "projection_checkpoints",
    "adjustments",
    "account_balances",
    "audit_log",
    "transfers",
    "parked_events",
];
/// The longest a rebuild waits for the next message before it takes the stream as read.
const QUIET_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("read models: {0}")]
    Database(#[from] sqlx::Error),
    #[error("JetStream: {0}")]
    Nats(String),
    #[error(transparent)]
    Projection(#[from] crate::projection::ProjectionError),
}

/// What a rebuild did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RebuildReport {
    /// Messages read from the stream.
    pub events: u64,
    /// The stream sequence the rebuilt read models stand at.
    pub delivered_sequence: u64,
    pub elapsed: Duration,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Rebuilds the read models of `settings.stream` from the stream; `progress` is called with
/// `(stream sequence reached, stream sequence to reach)` after every batch.
pub async fn rebuild(
    pool: &PgPool,
    nats: async_nats::Client,
    settings: &NatsSettings,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<RebuildReport, RebuildError> {
    let started = Instant::now();
    let js = jetstream::new(nats);
    let stream = platform::messaging::ensure_stream(&js, settings)
        .await
        .map_err(|e| RebuildError::Nats(e.to_string()))?;
    let last = stream
        .get_info()
        .await
        .map_err(|e| RebuildError::Nats(e.to_string()))?
        .state
        .last_sequence;
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    prepare(&mut conn).await?;
    let projector = Projector::new(pool.clone(), settings.stream.clone()).in_schema(REBUILD_SCHEMA);
    // The reader fetches and decodes the next batch while the last one is written.
    let mut batches = Reader::open(&js, settings, 1)
        .await?
        .ahead(REBUILD_BATCH_EVENTS, last);
    let mut events = 0u64;
    let mut reached = 0u64;
    progress(0, last);
    while reached < last {
        let Some(batch) = batches.recv().await.transpose()? else {
            break;
        };
        let Some(end) = batch.last().map(|d| d.stream_sequence) else {
            break;
        };
        events += batch.len() as u64;
        projector.apply_batch_on(&mut conn, &batch).await?;
        reached = end;
        progress(reached, last);
    }
    drop(batches);
    build_indexes(&mut conn).await?;

    // The swap: the live tables are locked, then whatever the live projection applied
    // since is applied here too, inside the same transaction.
    let mut swap = conn.begin().await?;
    for table in REBUILT_TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "lock table {READ_MODEL_SCHEMA}.{table} in access exclusive mode"
        )))
        .execute(&mut *swap)
        .await?;
    }
    let live: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select coalesce(max(delivered_sequence), 0) from {READ_MODEL_SCHEMA}.projection_checkpoints where stream = $1"
    )))
    .bind(&settings.stream)
    .fetch_one(&mut *swap)
    .await?;
    let live = live as u64;
    if live > reached {
        let mut reader = Reader::open(&js, settings, reached + 1).await?;
        while reached < live {
            let batch = reader.next_batch(REBUILD_BATCH_EVENTS, live).await?;
            let Some(end) = batch.last().map(|d| d.stream_sequence) else {
                break;
            };
            events += batch.len() as u64;
            projector.apply_batch_on(&mut swap, &batch).await?;
            reached = end;
        }
    }
    for table in REBUILT_TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "drop table {READ_MODEL_SCHEMA}.{table}"
        )))
        .execute(&mut *swap)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "alter table {REBUILD_SCHEMA}.{table} set schema {READ_MODEL_SCHEMA}"
        )))
        .execute(&mut *swap)
        .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("drop schema {REBUILD_SCHEMA}")))
        .execute(&mut *swap)
        .await?;
    grant_runtime_role(&mut swap).await?;
    swap.commit().await?;
    let _ = conn.close().await;
    Ok(RebuildReport {
        events,
        delivered_sequence: reached,
        elapsed: started.elapsed(),
    })
}

/// Creates [`REBUILD_SCHEMA`] with empty copies of the rebuilt tables (columns, defaults,
/// checks, identities) and the unique keys the projection needs from the start.
async fn prepare(conn: &mut PgConnection) -> Result<(), RebuildError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "drop schema if exists {REBUILD_SCHEMA} cascade"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "create schema {REBUILD_SCHEMA}"
    )))
    .execute(&mut *conn)
    .await?;
    for table in REBUILT_TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "create table {REBUILD_SCHEMA}.{table}
                 (like {READ_MODEL_SCHEMA}.{table} including defaults including constraints including identity)"
        )))
        .execute(&mut *conn)
        .await?;
    }
    for table in KEYED_FROM_THE_START {
        copy_keys(conn, table).await?;
    }
    Ok(())
}

/// Gives a rebuilt table the primary and unique keys its live counterpart has.
async fn copy_keys(conn: &mut PgConnection, table: &str) -> Result<(), RebuildError> {
    let keys = sqlx::query(
        "select c.conname, pg_get_constraintdef(c.oid) as definition
         from pg_constraint c join pg_class t on t.oid = c.conrelid
         join pg_namespace n on n.oid = t.relnamespace
         where n.nspname = $1 and t.relname = $2 and c.contype in ('p', 'u')",
    )
    .bind(READ_MODEL_SCHEMA)
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    for key in keys {
        let name: String = key.try_get("conname")?;
        let definition: String = key.try_get("definition")?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "alter table {REBUILD_SCHEMA}.{table} add constraint {name} {definition}"
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Builds every key and index the live tables have that the rebuilt ones do not yet.
async fn build_indexes(conn: &mut PgConnection) -> Result<(), RebuildError> {
    for table in REBUILT_TABLES {
        if !KEYED_FROM_THE_START.contains(&table) {
            copy_keys(conn, table).await?;
        }
        let indexes = sqlx::query(
            "select pg_get_indexdef(i.indexrelid) as definition
             from pg_index i join pg_class t on t.oid = i.indrelid
             join pg_namespace n on n.oid = t.relnamespace
             where n.nspname = $1 and t.relname = $2
               and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)",
        )
        .bind(READ_MODEL_SCHEMA)
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
        for index in indexes {
            let definition: String = index.try_get("definition")?;
            let moved = definition.replacen(
                &format!(" ON {READ_MODEL_SCHEMA}."),
                &format!(" ON {REBUILD_SCHEMA}."),
                1,
            );
            sqlx::query(sqlx::AssertSqlSafe(moved))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// The grants of `migrations/reporting/*_runtime_role.sql`, for the swapped-in tables.
async fn grant_runtime_role(conn: &mut PgConnection) -> Result<(), RebuildError> {
    let role: bool =
        sqlx::query_scalar("select exists (select from pg_roles where rolname = 'folio_app')")
            .fetch_one(&mut *conn)
            .await?;
    if role {
        for table in REBUILT_TABLES {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "grant select, insert, update, delete on {READ_MODEL_SCHEMA}.{table} to folio_app"
            )))
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "grant usage on all sequences in schema {READ_MODEL_SCHEMA} to folio_app"
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Reads the stream in order from a sequence, in batches.
struct Reader {
    messages: jetstream::consumer::pull::Ordered,
}

impl Reader {
    async fn open(
        js: &jetstream::Context,
        settings: &NatsSettings,
        from: u64,
    ) -> Result<Self, RebuildError> {
        let stream = platform::messaging::ensure_stream(js, settings)
            .await
            .map_err(|e| RebuildError::Nats(e.to_string()))?;
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                description: Some("Folio read-model rebuild".into()),
                filter_subject: subjects::all_events(&settings.subject_prefix),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from.max(1),
                },
                ..Default::default()
            })
            .await
            .map_err(|e| RebuildError::Nats(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| RebuildError::Nats(e.to_string()))?;
        Ok(Self { messages })
    }

    /// Reads batches of `size` up to stream sequence `until` in a task of its own, at most
    /// [`REBUILD_BATCHES_AHEAD`] ahead of the writer; the channel ends after the last one
    /// (or an error). Dropping the receiver stops the task.
    fn ahead(
        mut self,
        size: usize,
        until: u64,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<Delivery>, RebuildError>> {
        let (send, receive) = tokio::sync::mpsc::channel(REBUILD_BATCHES_AHEAD);
        tokio::spawn(async move {
            loop {
                let batch = self.next_batch(size, until).await;
                let done = match &batch {
                    Ok(batch) => batch.last().is_none_or(|d| d.stream_sequence >= until),
                    Err(_) => true,
                };
                if send.send(batch).await.is_err() || done {
                    return;
                }
            }
        });
        receive
    }

    /// Up to `size` deliveries, stopping after stream sequence `until`.
    async fn next_batch(&mut self, size: usize, until: u64) -> Result<Vec<Delivery>, RebuildError> {
        let mut batch = Vec::with_capacity(size.min(4_096));
        while batch.len() < size {
            let next = tokio::time::timeout(QUIET_WAIT, self.messages.next()).await;
            let message = match next {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(error))) => return Err(RebuildError::Nats(error.to_string())),
                Ok(None) | Err(_) => break,
            };
            let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
            match serde_json::from_slice(&message.payload) {
                Ok(event) => batch.push(Delivery {
                    stream_sequence: sequence,
                    event,
                }),
                Err(error) => {
                    tracing::error!(%error, sequence, "a message that is not a ledger event; skipping it")
                }
            }
            if sequence >= until {
                break;
            }
        }
        Ok(batch)
    }
}
