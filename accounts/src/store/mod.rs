//! The PostgreSQL event store: append with expected versions (several streams in one
//! transaction), idempotency keys in the same transaction, snapshots, and loading an
//! aggregate from its latest snapshot plus the events after it.
//!
//! Every read of an append happens before its first write, so each event's `tx_id`
//! (assigned at the first write) follows its stream's version order; the relay relies
//! on that to publish in a safe order.

mod rows;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ledger::{
    AccountEvent, AccountId, EventId, EventMetadata, Hash, RecordedEvent,
    hashing::{EventHashInput, event_hash},
};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::domain::{Account, evolve};

pub(crate) use rows::tx_id;
pub use rows::{EVENT_COLUMNS, recorded_event};

/// A snapshot is written whenever a stream crosses a multiple of this many events, so
/// loading reads one snapshot and fewer than this many events.
pub const SNAPSHOT_INTERVAL_EVENTS: i64 = 100;
/// Bumped when [`Account`]'s stored shape changes; older snapshots are then ignored.
pub const SNAPSHOT_SCHEMA_VERSION: i16 = 1;
/// The channel `NOTIFY`'d after each append, for the relay to wake on.
pub const EVENTS_CHANNEL: &str = "folio_events";
/// The most events one append may write (a transfer writes two).
pub const APPEND_EVENTS_MAX: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream_id} is no longer at version {expected}")]
    Conflict { stream_id: AccountId, expected: i64 },
    #[error("idempotency key {0:?} was recorded by a concurrent command")]
    IdempotencyKeyTaken(String),
    #[error("stream {stream_id} is corrupt: {reason}")]
    Corrupt {
        stream_id: AccountId,
        reason: String,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// True when the database could not be reached or refused connections (as opposed
    /// to refusing the statement): the server is down, restarting, full, or the
    /// database is gone.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::Io(_)
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_),
            ) => true,
            Self::Database(sqlx::Error::Database(e)) => e.code().is_some_and(|code| {
                code.starts_with("08")
                    || code.starts_with("57P")
                    || code == "53300"
                    || code == "3D000"
            }),
            _ => false,
        }
    }
}

/// An aggregate as loaded: its state, version, and how the load went.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub account: Option<Account>,
    pub version: i64,
    /// Hash of the stream's newest event, if any.
    pub head_hash: Option<Hash>,
    /// Events read after the snapshot (or from the start).
    pub events_replayed: usize,
    pub from_snapshot: bool,
}

/// New events for one stream, decided against `state` at `expected_version`.
#[derive(Clone, Debug)]
pub struct StreamAppend {
    pub stream_id: AccountId,
    pub expected_version: i64,
    pub state: Option<Account>,
    pub events: Vec<AccountEvent>,
}

/// What an idempotent command records beside its events.
pub struct IdempotencyRecord<'a> {
    pub key: &'a str,
    pub command_type: &'a str,
    pub request_hash: Hash,
    /// The answer to store, built from what was appended.
    pub respond: &'a (dyn Fn(&Appended) -> Value + Sync),
}

/// One append: the streams it touches (all or none are written) and who caused it.
pub struct AppendBatch<'a> {
    pub streams: Vec<StreamAppend>,
    pub metadata: &'a EventMetadata,
    pub idempotency: Option<IdempotencyRecord<'a>>,
}

#[derive(Clone, Debug)]
pub struct AppendedStream {
    pub stream_id: AccountId,
    pub events: Vec<RecordedEvent>,
    pub state_after: Account,
}

/// What an append wrote: per stream, the stored events and the state they lead to.
#[derive(Clone, Debug)]
pub struct Appended {
    pub streams: Vec<AppendedStream>,
    /// The highest position written.
    pub position: i64,
}

impl Appended {
    pub fn stream(&self, id: AccountId) -> Option<&AppendedStream> {
        self.streams.iter().find(|s| s.stream_id == id)
    }
}

/// An idempotency key as recorded by the command that first used it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredResponse {
    pub command_type: String,
    pub request_hash: Hash,
    pub response: Value,
}

#[derive(Clone, Debug)]
pub struct EventStore {
    pool: PgPool,
    snapshot_interval: i64,
}

struct Head {
    version: i64,
    hash: Option<Hash>,
    recorded_at: Option<DateTime<Utc>>,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self::with_snapshot_interval(pool, SNAPSHOT_INTERVAL_EVENTS)
    }

    pub fn with_snapshot_interval(pool: PgPool, snapshot_interval: i64) -> Self {
        assert!(
            snapshot_interval >= 2,
            "a snapshot interval below 2 events is pointless"
        );
        Self {
            pool,
            snapshot_interval,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The aggregate: its latest snapshot, if usable, plus every event after it.
    #[tracing::instrument(skip_all, fields(account_id = %id))]
    pub async fn load(&self, id: AccountId) -> Result<Loaded, StoreError> {
        let snapshot = sqlx::query(
            "select stream_version, schema_version, state, last_hash from accounts.snapshots where stream_id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        let mut loaded = Loaded {
            account: None,
            version: 0,
            head_hash: None,
            events_replayed: 0,
            from_snapshot: false,
        };
        if let Some(row) = snapshot {
            let schema_version: i16 = row.try_get("schema_version")?;
            let state: Value = row.try_get("state")?;
            match serde_json::from_value::<Account>(state) {
                Ok(account) if schema_version == SNAPSHOT_SCHEMA_VERSION => {
                    loaded.version = row.try_get("stream_version")?;
                    assert_eq!(account.version, loaded.version, "snapshot version mismatch");
                    loaded.head_hash = Some(rows::hash(&row, "last_hash", id)?);
                    loaded.account = Some(account);
                    loaded.from_snapshot = true;
                }
                Ok(_) => tracing::debug!(schema_version, "ignoring snapshot of an older schema"),
                Err(error) => tracing::warn!(%error, "ignoring unreadable snapshot"),
            }
        }
        let events = self.read_stream_from(id, loaded.version + 1).await?;
        for event in &events {
            if event.stream_version != loaded.version + 1 {
                return Err(StoreError::Corrupt {
                    stream_id: id,
                    reason: format!(
                        "version {} follows version {}",
                        event.stream_version, loaded.version
                    ),
                });
            }
            let decoded = event.decode().map_err(|e| StoreError::Corrupt {
                stream_id: id,
                reason: e.to_string(),
            })?;
            loaded.account = evolve(loaded.account.take(), &decoded, event.recorded_at);
            if loaded.account.is_none() {
                return Err(StoreError::Corrupt {
                    stream_id: id,
                    reason: "the stream does not start with AccountOpened".into(),
                });
            }
            loaded.version = event.stream_version;
            loaded.head_hash = Some(event.hash);
            loaded.events_replayed += 1;
        }
        Ok(loaded)
    }

    /// The stored events of a stream from `from_version` on, in version order.
    pub async fn read_stream_from(
        &self,
        id: AccountId,
        from_version: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "select {EVENT_COLUMNS} from accounts.events where stream_id = $1 and stream_version >= $2 order by stream_version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(from_version)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::recorded_event).collect()
    }

    /// The answer recorded under an actor's idempotency key, if any.
    pub async fn stored_response(
        &self,
        actor: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let row = sqlx::query(
            "select command_type, request_hash, response from accounts.idempotency_keys
             where actor = $1 and idempotency_key = $2",
        )
        .bind(actor)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let hash: Vec<u8> = row.try_get("request_hash")?;
            Ok(StoredResponse {
                command_type: row.try_get("command_type")?,
                request_hash: Hash::from_slice(&hash)
                    .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?,
                response: row.try_get("response")?,
            })
        })
        .transpose()
    }

    /// Appends every stream's events in one transaction, or none of them.
    ///
    /// Fails with [`StoreError::Conflict`] when a stream is not at its expected
    /// version, and with [`StoreError::IdempotencyKeyTaken`] when a concurrent command
    /// recorded the same idempotency key first; nothing is written then.
    #[tracing::instrument(skip_all, fields(streams = batch.streams.len()))]
    pub async fn append(&self, batch: AppendBatch<'_>) -> Result<Appended, StoreError> {
        let mut streams = batch.streams;
        let total: usize = streams.iter().map(|s| s.events.len()).sum();
        assert!(total > 0, "an append writes at least one event");
        assert!(
            total <= APPEND_EVENTS_MAX,
            "an append writes at most {APPEND_EVENTS_MAX} events"
        );
        // One lock order for every transaction that touches several streams.
        streams.sort_by_key(|s| s.stream_id);

        let metadata = serde_json::to_value(batch.metadata).expect("metadata serialises to JSON");
        let mut tx = self.pool.begin().await?;

        // Reads first: every stream's head and the database clock.
        let (heads, now) = read_heads(&mut tx, &streams).await?;
        for stream in &streams {
            let head = &heads[&stream.stream_id];
            if head.version != stream.expected_version {
                return Err(StoreError::Conflict {
                    stream_id: stream.stream_id,
                    expected: stream.expected_version,
                });
            }
        }
        // Time never runs backwards within a stream, whatever the clock did.
        let recorded_at = heads
            .values()
            .filter_map(|h| h.recorded_at)
            .fold(now, DateTime::max);

        // Then writes: events, snapshots, the idempotency key, the wake-up.
        let mut appended = Appended {
            streams: Vec::with_capacity(streams.len()),
            position: 0,
        };
        let mut written = 0usize;
        for stream in streams {
            let head = &heads[&stream.stream_id];
            let mut prev_hash = head.hash;
            let mut state = stream.state;
            let mut recorded = Vec::with_capacity(stream.events.len());
            for (offset, event) in stream.events.iter().enumerate() {
                let stream_version = stream.expected_version + 1 + offset as i64;
                let event_id = EventId::generate();
                let payload = event.to_payload();
                let hash = event_hash(
                    prev_hash.as_ref(),
                    &EventHashInput {
                        event_id,
                        stream_id: stream.stream_id,
                        stream_version,
                        event_type: event.event_type(),
                        event_version: event.event_version(),
                        payload: &payload,
                        metadata: &metadata,
                        recorded_at,
                    },
                );
                recorded.push(RecordedEvent {
                    position: 0,
                    event_id,
                    stream_id: stream.stream_id,
                    stream_version,
                    event_type: event.event_type().to_string(),
                    event_version: event.event_version(),
                    payload,
                    metadata: metadata.clone(),
                    recorded_at,
                    prev_hash,
                    hash,
                });
                prev_hash = Some(hash);
                state = evolve(state, event, recorded_at);
            }
            let state_after = state.ok_or_else(|| StoreError::Corrupt {
                stream_id: stream.stream_id,
                reason: "events do not open the account".into(),
            })?;
            assert_eq!(
                state_after.version,
                stream.expected_version + stream.events.len() as i64,
                "state version follows the appended events"
            );
            written += recorded.len();
            appended.streams.push(AppendedStream {
                stream_id: stream.stream_id,
                events: recorded,
                state_after,
            });
        }

        // One statement per stream, in lock order, so a conflict names the stream that moved.
        let mut positions = HashMap::with_capacity(total);
        for stream in &appended.streams {
            positions.extend(insert_events(&mut tx, &stream.events).await?);
        }
        for stream in &mut appended.streams {
            for event in &mut stream.events {
                event.position = positions[&event.event_id];
                appended.position = appended.position.max(event.position);
            }
        }
        for stream in &appended.streams {
            let before = stream.state_after.version - stream.events.len() as i64;
            if before / self.snapshot_interval
                != stream.state_after.version / self.snapshot_interval
            {
                let head = stream
                    .events
                    .last()
                    .map(|e| e.hash)
                    .expect("appended stream has events");
                write_snapshot(&mut tx, &stream.state_after, head).await?;
            }
        }
        if let Some(record) = &batch.idempotency {
            let response = (record.respond)(&appended);
            let inserted = sqlx::query(
                "insert into accounts.idempotency_keys (idempotency_key, command_type, request_hash, response, position, actor)
                 values ($1, $2, $3, $4, $5, $6) on conflict (actor, idempotency_key) do nothing",
            )
            .bind(record.key)
            .bind(record.command_type)
            .bind(record.request_hash.as_bytes().as_slice())
            .bind(&response)
            .bind(appended.position)
            .bind(&batch.metadata.actor)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::IdempotencyKeyTaken(record.key.to_string()));
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("notify {EVENTS_CHANNEL}")))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!("folio_events_appended_total").increment(written as u64);
        Ok(appended)
    }
}

async fn read_heads(
    tx: &mut Transaction<'static, Postgres>,
    streams: &[StreamAppend],
) -> Result<(HashMap<AccountId, Head>, DateTime<Utc>), StoreError> {
    let ids: Vec<Uuid> = streams.iter().map(|s| s.stream_id.as_uuid()).collect();
    let rows = sqlx::query(
        "select s.id, h.stream_version, h.hash, h.recorded_at, clock_timestamp() as now
         from unnest($1::uuid[]) as s(id)
         left join lateral (
             select stream_version, hash, recorded_at from accounts.events
             where stream_id = s.id order by stream_version desc limit 1
         ) h on true",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut heads = HashMap::with_capacity(rows.len());
    let mut now = Utc::now();
    for row in rows {
        let id = AccountId::from_uuid(row.try_get("id")?);
        let hash: Option<Vec<u8>> = row.try_get("hash")?;
        let hash = hash
            .map(|bytes| Hash::from_slice(&bytes))
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                stream_id: id,
                reason: e.to_string(),
            })?;
        now = row.try_get("now")?;
        heads.insert(
            id,
            Head {
                version: row
                    .try_get::<Option<i64>, _>("stream_version")?
                    .unwrap_or(0),
                hash,
                recorded_at: row.try_get("recorded_at")?,
            },
        );
    }
    Ok((heads, now))
}

async fn insert_events(
    tx: &mut Transaction<'static, Postgres>,
    events: &[RecordedEvent],
) -> Result<HashMap<EventId, i64>, StoreError> {
    let rows = sqlx::query(
        "insert into accounts.events
             (event_id, stream_id, stream_version, event_type, event_version, payload, metadata, recorded_at, prev_hash, hash)
         select * from unnest($1::uuid[], $2::uuid[], $3::int8[], $4::text[], $5::int2[], $6::jsonb[], $7::jsonb[],
                              $8::timestamptz[], $9::bytea[], $10::bytea[])
         returning event_id, position",
    )
    .bind(events.iter().map(|e| e.event_id.as_uuid()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.stream_id.as_uuid()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.stream_version).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_version).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.metadata.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.prev_hash.map(|h| h.as_bytes().to_vec()))
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.hash.as_bytes().to_vec()).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.constraint() == Some("events_stream_id_stream_version_key") => {
            // A concurrent append took the version between our read and our write.
            let stream_id = events.first().map(|e| e.stream_id).expect("events to insert");
            StoreError::Conflict {
                stream_id,
                expected: events.first().map(|e| e.stream_version - 1).unwrap_or(0),
            }
        }
        _ => StoreError::Database(error),
    })?;
    let mut positions = HashMap::with_capacity(rows.len());
    for row in rows {
        positions.insert(
            EventId::from_uuid(row.try_get("event_id")?),
            row.try_get::<i64, _>("position")?,
        );
    }
    assert_eq!(positions.len(), events.len(), "every event got a position");
    Ok(positions)
}

async fn write_snapshot(
    tx: &mut Transaction<'static, Postgres>,
    account: &Account,
    head: Hash,
) -> Result<(), StoreError> {
    let state = serde_json::to_value(account).expect("account state serialises to JSON");
    sqlx::query(
        "insert into accounts.snapshots (stream_id, stream_version, schema_version, state, last_hash)
         values ($1, $2, $3, $4, $5)
         on conflict (stream_id) do update
             set stream_version = excluded.stream_version, schema_version = excluded.schema_version,
                 state = excluded.state, last_hash = excluded.last_hash, taken_at = now()
             where accounts.snapshots.stream_version < excluded.stream_version",
    )
    .bind(account.id.as_uuid())
    .bind(account.version)
    .bind(SNAPSHOT_SCHEMA_VERSION)
    .bind(state)
    .bind(head.as_bytes().as_slice())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
