//! [`AppendTx`]: one append transaction, in the order the event store requires: every read
//! (the heads of the streams, the events that moved them) before the first write, then
//! one multi-row statement per table (events, idempotency keys, snapshots), then commit.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ledger::{
    AccountEvent, AccountId, EventId, Hash, HoldId, RecordedEvent,
    hashing::{EventHashInput, event_hash},
};
use serde_json::Value;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{
    APPEND_EVENTS_MAX, EVENT_COLUMNS, HistoricalClock, SNAPSHOT_SCHEMA_VERSION, StoreError,
    recorded_event,
};
use crate::domain::Account;

/// The newest event of a stream, as the transaction read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// 0 for a stream without events.
    pub version: i64,
    pub hash: Option<Hash>,
    pub recorded_at: Option<DateTime<Utc>>,
}

/// The heads of the streams an append touches, and its booking instant.
#[derive(Clone, Debug)]
pub struct Heads {
    heads: HashMap<AccountId, Head>,
    /// When the events are recorded: the database clock, never before a stream's newest
    /// event; or the store's [`HistoricalClock`], when it has one.
    pub booking_instant: DateTime<Utc>,
    /// The end of the last closed period: no value date at or before it may be booked.
    pub closed_through: Option<DateTime<Utc>>,
}

impl Heads {
    pub fn get(&self, id: AccountId) -> Head {
        self.heads.get(&id).copied().unwrap_or(Head {
            version: 0,
            hash: None,
            recorded_at: None,
        })
    }

    pub fn version(&self, id: AccountId) -> i64 {
        self.get(id).version
    }
}

/// One event to append, with the metadata of the command that decided it.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event: AccountEvent,
    pub metadata: Value,
}

/// The events to append to one stream, right after the head the transaction read.
#[derive(Clone, Debug)]
pub struct NewStream {
    pub stream_id: AccountId,
    pub events: Vec<NewEvent>,
}

/// An idempotency key and the answer stored under it.
#[derive(Clone, Debug)]
pub struct IdempotencyRow {
    pub actor: String,
    pub key: String,
    pub command_type: String,
    pub request_hash: Hash,
    pub response: Value,
    pub position: i64,
}

/// An open append transaction; see the module documentation for the order of its steps.
pub struct AppendTx {
    tx: Transaction<'static, Postgres>,
    snapshot_interval: i64,
    clock: Option<HistoricalClock>,
    written: bool,
}

impl AppendTx {
    pub(super) fn new(
        tx: Transaction<'static, Postgres>,
        snapshot_interval: i64,
        clock: Option<HistoricalClock>,
    ) -> Self {
        Self {
            tx,
            snapshot_interval,
            clock,
            written: false,
        }
    }

    /// Takes the period fence shared (a close waits for this append; see
    /// [`crate::periods`]), then reads the head of every stream in `ids`, the database clock
    /// and the end of the last closed period; with a [`HistoricalClock`], also the store's
    /// newest event, to check the clock against.
    pub async fn heads(&mut self, ids: &[AccountId]) -> Result<Heads, StoreError> {
        assert!(
            !self.written,
            "every read of an append comes before its first write"
        );
        sqlx::query("select pg_advisory_xact_lock_shared($1)")
            .bind(crate::periods::PERIOD_FENCE_LOCK)
            .execute(&mut *self.tx)
            .await?;
        let closed_through: Option<DateTime<Utc>> =
            sqlx::query_scalar("select max(period_end) from accounts.period_closes")
                .fetch_one(&mut *self.tx)
                .await?;
        let uuids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows = sqlx::query(
            "select s.id, h.stream_version, h.hash, h.recorded_at, clock_timestamp() as now
             from unnest($1::uuid[]) as s(id)
             left join lateral (
                 select stream_version, hash, recorded_at from accounts.events
                 where stream_id = s.id order by stream_version desc limit 1
             ) h on true",
        )
        .bind(&uuids)
        .fetch_all(&mut *self.tx)
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
        let booking_instant = match self.clock.as_ref().map(HistoricalClock::now) {
            Some(at) => self.historical_instant(at, now).await?,
            // Time never runs backwards within a stream, whatever the clock did.
            None => heads
                .values()
                .filter_map(|h| h.recorded_at)
                .fold(now, DateTime::max),
        };
        Ok(Heads {
            heads,
            booking_instant,
            closed_through,
        })
    }

    /// `at`, when it lies between the store's newest event and the database clock `now`
    /// (both included); otherwise [`StoreError::BookingInstantRefused`].
    async fn historical_instant(
        &mut self,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        if at > now {
            return Err(StoreError::BookingInstantRefused {
                at,
                relation: "after the database clock",
                bound: now,
            });
        }
        let newest: Option<DateTime<Utc>> = sqlx::query_scalar(
            "select recorded_at from accounts.events order by position desc limit 1",
        )
        .fetch_optional(&mut *self.tx)
        .await?;
        match newest {
            Some(newest) if at < newest => Err(StoreError::BookingInstantRefused {
                at,
                relation: "before the newest event's",
                bound: newest,
            }),
            _ => Ok(at),
        }
    }

    /// The events of each `(stream, after)` pair past version `after`, in stream and
    /// version order (one statement): what moved a stream since it was cached.
    pub async fn events_after(
        &mut self,
        after: &[(AccountId, i64)],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        assert!(
            !self.written,
            "every read of an append comes before its first write"
        );
        if after.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "select {EVENT_COLUMNS} from accounts.events e
             join unnest($1::uuid[], $2::int8[]) as s(id, after) on e.stream_id = s.id
             where e.stream_version > s.after
             order by e.stream_id, e.stream_version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.iter().map(|(id, _)| id.as_uuid()).collect::<Vec<_>>())
            .bind(after.iter().map(|(_, v)| *v).collect::<Vec<_>>())
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(recorded_event).collect()
    }

    /// Appends every stream's events right after the head `heads` read for it, chaining
    /// hashes, all at the booking instant, in one statement (streams in id order, so two
    /// appends touching the same streams lock them in the same order). A unique violation
    /// means another writer took a version since the heads were read:
    /// [`StoreError::Conflict`], and the transaction is spent.
    pub async fn append(
        &mut self,
        heads: &Heads,
        streams: &[NewStream],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let total: usize = streams.iter().map(|s| s.events.len()).sum();
        assert!(total > 0, "an append writes at least one event");
        assert!(
            total <= APPEND_EVENTS_MAX,
            "an append writes at most {APPEND_EVENTS_MAX} events"
        );
        let mut order: Vec<&NewStream> = streams.iter().collect();
        order.sort_by_key(|s| s.stream_id);
        let recorded_at = heads.booking_instant;
        let mut events = Vec::with_capacity(total);
        for stream in order {
            let head = heads.get(stream.stream_id);
            let mut prev_hash = head.hash;
            for (offset, new) in stream.events.iter().enumerate() {
                let stream_version = head.version + 1 + offset as i64;
                let event_id = EventId::generate();
                let payload = new.event.to_payload();
                let hash = event_hash(
                    prev_hash.as_ref(),
                    &EventHashInput {
                        event_id,
                        stream_id: stream.stream_id,
                        stream_version,
                        event_type: new.event.event_type(),
                        event_version: new.event.event_version(),
                        payload: &payload,
                        metadata: &new.metadata,
                        recorded_at,
                    },
                );
                events.push(RecordedEvent {
                    position: 0,
                    event_id,
                    stream_id: stream.stream_id,
                    stream_version,
                    event_type: new.event.event_type().to_string(),
                    event_version: new.event.event_version(),
                    payload,
                    metadata: new.metadata.clone(),
                    recorded_at,
                    prev_hash,
                    hash,
                });
                prev_hash = Some(hash);
            }
        }
        self.written = true;
        let rows = sqlx::query(
            "insert into accounts.events
                 (event_id, stream_id, stream_version, event_type, event_version, payload, metadata, recorded_at,
                  prev_hash, hash)
             select * from unnest($1::uuid[], $2::uuid[], $3::int8[], $4::text[], $5::int2[], $6::jsonb[],
                                  $7::jsonb[], $8::timestamptz[], $9::bytea[], $10::bytea[])
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
        .fetch_all(&mut *self.tx)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db)
                if db.constraint() == Some("events_stream_id_stream_version_key") =>
            {
                // Which streams moved is found by reading their heads again after rollback.
                StoreError::Conflict {
                    moved: streams.iter().map(|s| s.stream_id).collect(),
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
        for event in &mut events {
            event.position = positions[&event.event_id];
        }
        Ok(events)
    }

    /// Keeps `accounts.holds` in step with the hold events among `events` (just appended);
    /// returns the ids of holds placed here that another hold already has (hold ids are
    /// unique across accounts): the transaction must then not commit.
    pub async fn index_holds(
        &mut self,
        events: &[RecordedEvent],
    ) -> Result<Vec<HoldId>, StoreError> {
        self.written = true;
        super::holds::index(&mut self.tx, events).await
    }

    /// Indexes the adjustment events among `events` (see `accounts.adjustments`).
    pub async fn index_adjustments(&mut self, events: &[RecordedEvent]) -> Result<(), StoreError> {
        self.written = true;
        super::adjustments::index(&mut self.tx, events).await
    }

    /// Whether a stream that went from `before` to `after` events crossed a snapshot mark.
    pub fn snapshot_due(&self, before: i64, after: i64) -> bool {
        before / self.snapshot_interval != after / self.snapshot_interval
    }

    /// Writes (or replaces with a newer one) the snapshot of each account, in one statement.
    pub async fn snapshots(&mut self, accounts: &[(Account, Hash)]) -> Result<(), StoreError> {
        if accounts.is_empty() {
            return Ok(());
        }
        self.written = true;
        sqlx::query(
            "insert into accounts.snapshots (stream_id, stream_version, schema_version, state, last_hash)
             select * from unnest($1::uuid[], $2::int8[], $3::int2[], $4::jsonb[], $5::bytea[])
             on conflict (stream_id) do update
                 set stream_version = excluded.stream_version, schema_version = excluded.schema_version,
                     state = excluded.state, last_hash = excluded.last_hash, taken_at = now()
                 where accounts.snapshots.stream_version < excluded.stream_version",
        )
        .bind(accounts.iter().map(|(a, _)| a.id.as_uuid()).collect::<Vec<_>>())
        .bind(accounts.iter().map(|(a, _)| a.version).collect::<Vec<_>>())
        .bind(vec![SNAPSHOT_SCHEMA_VERSION; accounts.len()])
        .bind(
            accounts
                .iter()
                .map(|(a, _)| serde_json::to_value(a).expect("account state serialises to JSON"))
                .collect::<Vec<_>>(),
        )
        .bind(accounts.iter().map(|(_, h)| h.as_bytes().to_vec()).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Records every idempotency key with its answer, in one statement. Returns the indexes
    /// of the rows whose key a concurrent command recorded first: the transaction must then
    /// be rolled back and those commands answered as the first one was.
    pub async fn record_keys(&mut self, rows: &[IdempotencyRow]) -> Result<Vec<usize>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.written = true;
        let inserted = sqlx::query(
            "insert into accounts.idempotency_keys (idempotency_key, command_type, request_hash, response, position, actor)
             select * from unnest($1::text[], $2::text[], $3::bytea[], $4::jsonb[], $5::int8[], $6::text[])
             on conflict (actor, idempotency_key) do nothing
             returning actor, idempotency_key",
        )
        .bind(rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.command_type.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.request_hash.as_bytes().to_vec()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.response.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.actor.clone()).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;
        let mut recorded = std::collections::HashSet::with_capacity(inserted.len());
        for row in inserted {
            recorded.insert((
                row.try_get::<String, _>("actor")?,
                row.try_get::<String, _>("idempotency_key")?,
            ));
        }
        Ok(rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !recorded.contains(&(r.actor.clone(), r.key.clone())))
            .map(|(index, _)| index)
            .collect())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}
