//! The PostgreSQL event store: loading aggregates (latest snapshot plus the events after
//! it, for many streams at once), idempotency records, and [`AppendTx`], the transaction
//! the writer appends through.
//!
//! The store hands out the transaction and the writer drives it: begin, read the heads of
//! every stream it will write (and catch up the ones that moved), append every event of
//! the group in one statement, record every idempotency key in one statement, write the
//! snapshots that fell due, commit. Every read happens before the first write, so each
//! event's `tx_id` (assigned at the first write) follows its stream's version order; the
//! relay relies on that to publish in a safe order.

mod adjustments;
mod append;
mod clock;
mod holds;
mod rows;

use std::collections::HashMap;

use ledger::{AccountEvent, AccountId, EventId, Hash, HoldId, RecordedEvent, TransferId};
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::domain::{Account, evolve};

pub use adjustments::AdjustmentRecord;
pub use append::{AppendTx, Head, Heads, IdempotencyRow, NewEvent, NewStream};
pub use clock::HistoricalClock;
pub use holds::{HoldRecord, HoldStatus};
pub(crate) use rows::tx_id;
pub use rows::{EVENT_COLUMNS, recorded_event};

/// A snapshot is written whenever a stream crosses a multiple of this many events, so
/// loading reads one snapshot and fewer than this many events.
pub const SNAPSHOT_INTERVAL_EVENTS: i64 = 100;
/// Bumped when [`Account`]'s stored shape changes; older snapshots are then ignored.
pub const SNAPSHOT_SCHEMA_VERSION: i16 = 1;
/// The channel `NOTIFY`'d (outside any append, at a bounded rate) when events were
/// committed, for a relay in another process to wake on.
pub const EVENTS_CHANNEL: &str = "folio_events";
/// The most events one transaction may append (a batch of 1,000 transfers writes 2,000).
pub const APPEND_EVENTS_MAX: usize = 8_192;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Streams were not at the versions the append expected: another writer moved them.
    #[error("streams moved since they were read: {}", display_ids(.moved))]
    Conflict { moved: Vec<AccountId> },
    #[error("stream {stream_id} is corrupt: {reason}")]
    Corrupt {
        stream_id: AccountId,
        reason: String,
    },
    /// A [`HistoricalClock`] stands where an append may not book: after the database clock,
    /// or before the newest event of the store.
    #[error("booking instant {at} is {relation} {bound}")]
    BookingInstantRefused {
        at: chrono::DateTime<chrono::Utc>,
        relation: &'static str,
        bound: chrono::DateTime<chrono::Utc>,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

fn display_ids(ids: &[AccountId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl StoreError {
    /// True when the database could not be reached or refused connections (as opposed
    /// to refusing the statement): the server is down, restarting, full, or the
    /// database is gone.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(error) if platform::db::is_unavailable(error))
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

impl Loaded {
    fn empty() -> Self {
        Self {
            account: None,
            version: 0,
            head_hash: None,
            events_replayed: 0,
            from_snapshot: false,
        }
    }

    /// Folds `event` (the next version of the stream) into the state.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), StoreError> {
        let stream_id = event.stream_id;
        if event.stream_version != self.version + 1 {
            return Err(StoreError::Corrupt {
                stream_id,
                reason: format!(
                    "version {} follows version {}",
                    event.stream_version, self.version
                ),
            });
        }
        let decoded = event.decode().map_err(|e| StoreError::Corrupt {
            stream_id,
            reason: e.to_string(),
        })?;
        self.account = evolve(self.account.take(), &decoded, event.recorded_at);
        if self.account.is_none() {
            return Err(StoreError::Corrupt {
                stream_id,
                reason: "the stream does not start with AccountOpened".into(),
            });
        }
        self.version = event.stream_version;
        self.head_hash = Some(event.hash);
        self.events_replayed += 1;
        Ok(())
    }
}

/// New events for one stream, decided against `state` at `expected_version` (the
/// convenience [`EventStore::append`]).
#[derive(Clone, Debug)]
pub struct StreamAppend {
    pub stream_id: AccountId,
    pub expected_version: i64,
    pub state: Option<Account>,
    pub events: Vec<AccountEvent>,
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
    /// Books at this clock instead of the database's (`folio demo` only; see [`HistoricalClock`]).
    clock: Option<HistoricalClock>,
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
            clock: None,
        }
    }

    /// The same store, booking every append at `clock` instead of the database clock, for
    /// seeding a fresh store with history (`folio demo`). Appends refuse an instant in the
    /// future or before the store's newest event ([`StoreError::BookingInstantRefused`]).
    pub fn with_historical_clock(mut self, clock: HistoricalClock) -> Self {
        self.clock = Some(clock);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn snapshot_interval(&self) -> i64 {
        self.snapshot_interval
    }

    /// The streams, of `expected` `(stream, version)` pairs, that are not at that version now.
    pub async fn moved(&self, expected: &[(AccountId, i64)]) -> Result<Vec<AccountId>, StoreError> {
        let ids: Vec<AccountId> = expected.iter().map(|(id, _)| *id).collect();
        let mut tx = self.begin().await?;
        let heads = tx.heads(&ids).await?;
        tx.rollback().await?;
        Ok(expected
            .iter()
            .filter(|(id, version)| heads.version(*id) != *version)
            .map(|(id, _)| *id)
            .collect())
    }

    /// Begins an append transaction.
    pub async fn begin(&self) -> Result<AppendTx, StoreError> {
        Ok(AppendTx::new(
            self.pool.begin().await?,
            self.snapshot_interval,
            self.clock.clone(),
        ))
    }

    /// The aggregate: its latest snapshot, if usable, plus every event after it.
    #[tracing::instrument(skip_all, fields(account_id = %id))]
    pub async fn load(&self, id: AccountId) -> Result<Loaded, StoreError> {
        let mut loaded = self.load_many(&[id]).await?;
        Ok(loaded.remove(&id).unwrap_or_else(Loaded::empty))
    }

    /// Several aggregates in two statements: their snapshots, then every event after them.
    /// Every id asked for is in the answer (unopened ones empty).
    pub async fn load_many(
        &self,
        ids: &[AccountId],
    ) -> Result<HashMap<AccountId, Loaded>, StoreError> {
        let uuids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let mut loaded: HashMap<AccountId, Loaded> =
            ids.iter().map(|id| (*id, Loaded::empty())).collect();
        let snapshots = sqlx::query(
            "select stream_id, stream_version, schema_version, state, last_hash
             from accounts.snapshots where stream_id = any($1)",
        )
        .bind(&uuids)
        .fetch_all(&self.pool)
        .await?;
        for row in snapshots {
            let id = AccountId::from_uuid(row.try_get("stream_id")?);
            let schema_version: i16 = row.try_get("schema_version")?;
            let state: Value = row.try_get("state")?;
            match serde_json::from_value::<Account>(state) {
                Ok(account) if schema_version == SNAPSHOT_SCHEMA_VERSION => {
                    let version: i64 = row.try_get("stream_version")?;
                    assert_eq!(account.version, version, "snapshot version mismatch");
                    let entry = loaded.entry(id).or_insert_with(Loaded::empty);
                    entry.version = version;
                    entry.head_hash = Some(rows::hash(&row, "last_hash", id)?);
                    entry.account = Some(account);
                    entry.from_snapshot = true;
                }
                Ok(_) => {
                    tracing::debug!(schema_version, %id, "ignoring snapshot of an older schema")
                }
                Err(error) => tracing::warn!(%error, %id, "ignoring unreadable snapshot"),
            }
        }
        let after: Vec<i64> = ids.iter().map(|id| loaded[id].version).collect();
        let sql = format!(
            "select {EVENT_COLUMNS} from accounts.events e
             join unnest($1::uuid[], $2::int8[]) as s(id, after) on e.stream_id = s.id
             where e.stream_version > s.after
             order by e.stream_id, e.stream_version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&uuids)
            .bind(&after)
            .fetch_all(&self.pool)
            .await?;
        for row in &rows {
            let event = recorded_event(row)?;
            loaded
                .entry(event.stream_id)
                .or_insert_with(Loaded::empty)
                .apply(&event)?;
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

    /// A hold, as the hold index records it.
    pub async fn hold(&self, hold_id: HoldId) -> Result<Option<HoldRecord>, StoreError> {
        let sql = format!(
            "select {} from accounts.holds where hold_id = $1",
            holds::HOLD_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hold_id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(holds::hold_record).transpose()
    }

    /// An account's holds, most recently placed first, optionally of one status (at most `limit`).
    pub async fn holds_of(
        &self,
        account_id: AccountId,
        status: Option<HoldStatus>,
        limit: i64,
    ) -> Result<Vec<HoldRecord>, StoreError> {
        let sql = format!(
            "select {} from accounts.holds where account_id = $1 and ($2::text is null or status = $2)
             order by placed_at desc, hold_id limit $3",
            holds::HOLD_COLUMNS
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id.as_uuid())
            .bind(status.map(|s| s.as_str()))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(holds::hold_record).collect()
    }

    /// Active holds whose expiry has passed by the database clock, soonest first (at most `limit`).
    pub async fn holds_past_expiry(&self, limit: i64) -> Result<Vec<HoldRecord>, StoreError> {
        let sql = format!(
            "select {} from accounts.holds where status = 'ACTIVE' and expires_at <= clock_timestamp()
             order by expires_at limit $1",
            holds::HOLD_COLUMNS
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(holds::hold_record).collect()
    }

    /// An adjustment, as the adjustment index records it.
    pub async fn adjustment(
        &self,
        adjustment_id: ledger::AdjustmentId,
    ) -> Result<Option<AdjustmentRecord>, StoreError> {
        let sql = format!(
            "select {} from accounts.adjustments where adjustment_id = $1",
            adjustments::ADJUSTMENT_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(adjustment_id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(adjustments::adjustment_record).transpose()
    }

    /// Pending adjustments whose expiry has passed by the database clock, soonest first
    /// (at most `limit`).
    pub async fn adjustments_past_expiry(
        &self,
        limit: i64,
    ) -> Result<Vec<AdjustmentRecord>, StoreError> {
        let sql = format!(
            "select {} from accounts.adjustments where status = 'PENDING' and expires_at <= clock_timestamp()
             order by expires_at limit $1",
            adjustments::ADJUSTMENT_COLUMNS
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(adjustments::adjustment_record).collect()
    }

    /// One stored event by its id.
    pub async fn event(&self, event_id: EventId) -> Result<Option<RecordedEvent>, StoreError> {
        let sql = format!("select {EVENT_COLUMNS} from accounts.events where event_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(event_id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(recorded_event).transpose()
    }

    /// The stored legs of a transfer (debit first), by its id.
    pub async fn transfer_legs(
        &self,
        transfer_id: TransferId,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "select {EVENT_COLUMNS} from accounts.events
             where payload->>'transferId' = $1
               and event_type in ('TransferDebited', 'TransferCredited', 'HoldCaptured')
             order by position"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(transfer_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(recorded_event).collect()
    }

    /// The answer recorded under an actor's idempotency key, if any.
    pub async fn stored_response(
        &self,
        actor: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let keys = [(actor.to_string(), key.to_string())];
        Ok(self.stored_responses(&keys).await?.remove(&keys[0]))
    }

    /// The answers recorded under several `(actor, key)` pairs, in one statement.
    pub async fn stored_responses(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), StoredResponse>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "select k.actor, k.idempotency_key, k.command_type, k.request_hash, k.response
             from accounts.idempotency_keys k
             join unnest($1::text[], $2::text[]) as w(actor, idempotency_key)
               on k.actor = w.actor and k.idempotency_key = w.idempotency_key",
        )
        .bind(keys.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>())
        .bind(keys.iter().map(|(_, k)| k.clone()).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in rows {
            let hash: Vec<u8> = row.try_get("request_hash")?;
            found.insert(
                (row.try_get("actor")?, row.try_get("idempotency_key")?),
                StoredResponse {
                    command_type: row.try_get("command_type")?,
                    request_hash: Hash::from_slice(&hash)
                        .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?,
                    response: row.try_get("response")?,
                },
            );
        }
        Ok(found)
    }

    /// Appends every stream's events in one transaction, or none of them, with `metadata`
    /// on every event; for tools and tests (commands go through the writer). Fails with
    /// [`StoreError::Conflict`] naming the streams that were not at their expected version.
    #[tracing::instrument(skip_all, fields(streams = streams.len()))]
    pub async fn append(
        &self,
        streams: Vec<StreamAppend>,
        metadata: &ledger::EventMetadata,
    ) -> Result<Appended, StoreError> {
        let metadata = serde_json::to_value(metadata).expect("metadata serialises to JSON");
        let ids: Vec<AccountId> = streams.iter().map(|s| s.stream_id).collect();
        let mut tx = self.begin().await?;
        let heads = tx.heads(&ids).await?;
        let moved: Vec<AccountId> = streams
            .iter()
            .filter(|s| heads.version(s.stream_id) != s.expected_version)
            .map(|s| s.stream_id)
            .collect();
        if !moved.is_empty() {
            return Err(StoreError::Conflict { moved });
        }
        let new: Vec<NewStream> = streams
            .iter()
            .map(|s| NewStream {
                stream_id: s.stream_id,
                events: s
                    .events
                    .iter()
                    .map(|event| NewEvent {
                        event: event.clone(),
                        metadata: metadata.clone(),
                    })
                    .collect(),
            })
            .collect();
        let recorded = match tx.append(&heads, &new).await {
            Err(StoreError::Conflict { .. }) => {
                drop(tx);
                let expected: Vec<(AccountId, i64)> = streams
                    .iter()
                    .map(|s| (s.stream_id, s.expected_version))
                    .collect();
                return Err(StoreError::Conflict {
                    moved: self.moved(&expected).await?,
                });
            }
            other => other?,
        };
        tx.index_adjustments(&recorded).await?;
        let taken = tx.index_holds(&recorded).await?;
        if let Some(hold_id) = taken.first() {
            return Err(StoreError::Corrupt {
                stream_id: recorded[0].stream_id,
                reason: format!("hold {hold_id} is already placed"),
            });
        }
        let mut appended = Appended {
            streams: Vec::with_capacity(streams.len()),
            position: recorded.iter().map(|e| e.position).max().unwrap_or(0),
        };
        let mut snapshots = Vec::new();
        for stream in streams {
            let events: Vec<RecordedEvent> = recorded
                .iter()
                .filter(|e| e.stream_id == stream.stream_id)
                .cloned()
                .collect();
            let mut state = stream.state;
            for (event, stored) in stream.events.iter().zip(&events) {
                state = evolve(state, event, stored.recorded_at);
            }
            let state_after = state.ok_or_else(|| StoreError::Corrupt {
                stream_id: stream.stream_id,
                reason: "events do not open the account".into(),
            })?;
            if tx.snapshot_due(stream.expected_version, state_after.version) {
                let head = events.last().map(|e| e.hash).expect("appended events");
                snapshots.push((state_after.clone(), head));
            }
            appended.streams.push(AppendedStream {
                stream_id: stream.stream_id,
                events,
                state_after,
            });
        }
        tx.snapshots(&snapshots).await?;
        tx.commit().await?;
        Ok(appended)
    }
}
