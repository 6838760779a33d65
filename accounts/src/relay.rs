//! The relay: publishes committed events from the event store to JetStream, in a safe
//! order, exactly as they are stored.
//!
//! Positions come from a sequence and are not commit order: reading "position > last"
//! could skip an event whose transaction commits late. The relay therefore reads only
//! rows whose transaction is older than every transaction still running
//! (`tx_id < pg_snapshot_xmin(pg_current_snapshot())`), in `(tx_id, position)` order,
//! and keeps that pair as its checkpoint. Each message carries `Nats-Msg-Id` = event
//! id, so a batch re-sent after a crash is dropped by JetStream's duplicate window
//! (and by the consumer's per-stream versions beyond it).
//!
//! One relay publishes per database: it holds a PostgreSQL advisory lock on a
//! dedicated connection, and reads and checkpoints through that connection, so losing
//! the connection loses the lead. Other processes wait as hot standbys.
//!
//! The price of never skipping an event is that any transaction left open anywhere in
//! the cluster holds publication back. So the relay watches its horizon: every
//! [`RELAY_STATUS_INTERVAL_MS`] it announces a [`RelayStatus`] on core NATS, and when
//! the oldest running transaction has been open longer than the configured threshold
//! (`FOLIO_RELAY_HELD_WARN_SECS`, default [`RELAY_HELD_WARN_DEFAULT`]) the status, a WARN
//! line and the `folio_relay_horizon_held_seconds` gauge name it: backend pid, database,
//! state and how long it has been open.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, message::PublishMessage};
use chrono::{DateTime, Utc};
use ledger::{
    RecordedEvent,
    status::{HorizonBlocker, RELAY_STATUS_INTERVAL_MS, RelayStatus, relay_status_subject},
    subjects,
};
use platform::config::NatsSettings;
use sqlx::{Connection, PgConnection, PgPool, Row, postgres::PgListener};
use tokio::sync::{Notify, watch};

use crate::{
    integrity::{Checkpointer, Folded, IntegritySettings},
    store::{EVENT_COLUMNS, EVENTS_CHANNEL, StoreError, recorded_event, tx_id},
};

/// Events read and published per batch.
pub const RELAY_BATCH_EVENTS_MAX: i64 = 500;
/// How often the relay looks for events when no notification arrives.
pub const RELAY_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often a standby tries to take the lead.
pub const RELAY_STANDBY_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The longest pause between attempts while NATS or PostgreSQL is down.
pub const RELAY_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The longest one statement of the leading relay may run (or wait for a lock).
pub const RELAY_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The advisory lock that makes one relay the publisher ("folio.rl" in ASCII).
pub const RELAY_LOCK_KEY: i64 = 0x666f_6c69_6f2e_726c;
/// How long the oldest running transaction may hold publication back before the relay
/// names it (`FOLIO_RELAY_HELD_WARN_SECS`).
pub const RELAY_HELD_WARN_DEFAULT: Duration = Duration::from_secs(30);
/// The most unpublished events the relay counts for its status (every
/// [`RELAY_STATUS_INTERVAL_MS`]); beyond, it says "at least" and announces no booking
/// bound. Counted along the commit-order index, so a status costs about 10 ms when far
/// behind: at 100,000 the planner chose a sequential scan of the whole store, 0.3 s a
/// second at 1.2 million events, and the relay fell further behind because it counted.
pub const RELAY_LAG_COUNT_MAX: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("publishing to JetStream: {0}")]
    Publish(String),
}

impl From<sqlx::Error> for RelayError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

/// What one step of the relay did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Published(usize),
    Idle,
}

/// The relay's place in the event store, for one JetStream stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub tx_id: u64,
    pub position: i64,
}

/// The relay's latest status, shared with the process's readiness checks.
pub type SharedRelayStatus = Arc<Mutex<Option<RelayStatus>>>;

#[derive(Clone, Debug)]
pub struct Relay {
    pool: PgPool,
    nats: async_nats::Client,
    js: jetstream::Context,
    settings: NatsSettings,
    checkpointer: Checkpointer,
    held_warn: Duration,
    published_events: u64,
    last_status: Option<Instant>,
    warned_pid: Option<i32>,
    status: SharedRelayStatus,
    /// Notified by this process's writer after each commit.
    commits: Arc<Notify>,
    /// The stream sequence of the newest message known published (acks, or the stream's
    /// last sequence when the relay took the lead).
    published_sequence: Option<u64>,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        settings: NatsSettings,
        integrity: IntegritySettings,
    ) -> Self {
        Self {
            pool,
            js: jetstream::new(nats.clone()),
            nats,
            settings,
            checkpointer: Checkpointer::new(integrity),
            held_warn: RELAY_HELD_WARN_DEFAULT,
            published_events: 0,
            last_status: None,
            warned_pid: None,
            status: SharedRelayStatus::default(),
            commits: Arc::new(Notify::new()),
            published_sequence: None,
        }
    }

    /// Wakes on `commits` (the writer of this process notifies it after each commit), besides
    /// LISTEN for writers in other processes and polling.
    pub fn with_wake(mut self, commits: Arc<Notify>) -> Self {
        self.commits = commits;
        self
    }

    /// Names the oldest running transaction once it has held publication back this long.
    pub fn with_held_warn(mut self, held_warn: Duration) -> Self {
        self.held_warn = held_warn;
        self
    }

    /// Shares the relay's status through `status` (the process's readiness reads it).
    pub fn with_status(mut self, status: SharedRelayStatus) -> Self {
        self.status = status;
        self
    }

    /// Publishes until `shutdown` turns true; waits as a hot standby while another
    /// process holds the lead; rides out PostgreSQL and NATS outages with backoff.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        let mut standing_by = false;
        while !*shutdown.borrow() {
            let mut conn = match self.lock_connection().await {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "relay cannot reach PostgreSQL; retrying");
                    backoff.wait(&mut shutdown).await;
                    continue;
                }
            };
            match try_lock(&mut conn).await {
                Ok(true) => {}
                Ok(false) => {
                    if !standing_by {
                        tracing::info!("relay standing by: another process is publishing");
                        standing_by = true;
                    }
                    let _ = conn.close().await;
                    pause(RELAY_STANDBY_POLL_INTERVAL, &mut shutdown).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "relay cannot take its lock; retrying");
                    backoff.wait(&mut shutdown).await;
                    continue;
                }
            }
            standing_by = false;
            backoff.reset();
            tracing::info!(stream = %self.settings.stream, "relay is publishing");
            match self.lead(&mut conn, &mut shutdown).await {
                Ok(()) => {
                    let _ = conn.close().await;
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "relay lost its PostgreSQL connection; will take the lead again");
                    backoff.wait(&mut shutdown).await;
                }
            }
        }
    }

    /// A connection outside the pool, so the lock lives exactly as long as it does. Its
    /// statements may run at most [`RELAY_STATEMENT_TIMEOUT`]: a session left waiting on a
    /// lock by a process that is gone then ends, and its lead with it.
    pub async fn lock_connection(&self) -> Result<PgConnection, sqlx::Error> {
        let mut conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "set statement_timeout = {}",
            RELAY_STATEMENT_TIMEOUT.as_millis()
        )))
        .execute(&mut conn)
        .await?;
        Ok(conn)
    }

    async fn lead(
        &mut self,
        conn: &mut PgConnection,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RelayError> {
        let mut listener = self.listener().await;
        let mut stream_ready = false;
        let mut nats_down = false;
        let mut backoff = Backoff::default();
        // The digest cursor and newest checkpoint are read afresh by the first fold.
        self.checkpointer.reset();
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if !stream_ready {
                match platform::messaging::ensure_stream(&self.js, &self.settings).await {
                    Ok(stream) => {
                        stream_ready = true;
                        let last = stream.cached_info().state.last_sequence;
                        self.published_sequence =
                            Some(self.published_sequence.map_or(last, |s| s.max(last)));
                    }
                    Err(error) => {
                        if !nats_down {
                            tracing::warn!(%error, url = %self.settings.url, "relay cannot reach JetStream; events wait in the event store; retrying");
                            nats_down = true;
                        }
                        backoff.wait(shutdown).await;
                        continue;
                    }
                }
            }
            let due = self
                .last_status
                .is_none_or(|at| at.elapsed() >= Duration::from_millis(RELAY_STATUS_INTERVAL_MS));
            if due {
                self.announce(conn).await?;
            }
            match self.step(conn).await {
                Ok(Step::Published(count)) => {
                    if nats_down {
                        tracing::info!("relay reached JetStream again; catching up");
                        nats_down = false;
                    }
                    backoff.reset();
                    tracing::debug!(count, "relay published a batch");
                }
                Ok(Step::Idle) => {
                    if listener.is_none() {
                        listener = self.listener().await;
                    }
                    wait_for_events(&mut listener, &self.commits, shutdown).await;
                }
                Err(RelayError::Publish(error)) => {
                    if !nats_down {
                        tracing::warn!(%error, url = %self.settings.url, "relay cannot publish; events wait in the event store; retrying");
                        nats_down = true;
                    }
                    stream_ready = false;
                    backoff.wait(shutdown).await;
                }
                Err(store_error) => return Err(store_error),
            }
        }
    }

    async fn listener(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen(EVENTS_CHANNEL).await.ok()?;
        Some(listener)
    }

    /// Publishes the next batch of committed events, if any, then advances the checkpoint
    /// and folds the batch into the running digest (signing a checkpoint when due), in one
    /// transaction. A batch costs the same few statements whatever its size: one read (of
    /// the checkpoint and the events after it), an update of the checkpoint and one of the
    /// digest cursor (plus an insert when a checkpoint is signed), and the commit.
    ///
    /// The checkpoint is read by scalar subqueries, not a join, so that the row comparison
    /// is an index condition on `events_commit_order`: joined, PostgreSQL walked the index
    /// from the start of history on every batch (189 ms a batch 300,000 events in, 0.5 ms
    /// now at any depth).
    pub async fn step(&mut self, conn: &mut PgConnection) -> Result<Step, RelayError> {
        static NEXT_BATCH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "select e.tx_id::text as tx_id_text, {columns}
                 from accounts.events e
                 where (e.tx_id, e.position) > (
                         coalesce((select c.tx_id from accounts.relay_checkpoints c where c.stream = $1), '0'::xid8),
                         coalesce((select c.position from accounts.relay_checkpoints c where c.stream = $1), 0))
                   and e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
                 order by e.tx_id, e.position
                 limit $2",
                columns = EVENT_COLUMNS
                    .split(',')
                    .map(|c| format!("e.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        let rows = sqlx::query(sqlx::AssertSqlSafe(NEXT_BATCH.as_str()))
            .bind(&self.settings.stream)
            .bind(RELAY_BATCH_EVENTS_MAX)
            .fetch_all(&mut *conn)
            .await?;
        let mut folded = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let event = recorded_event(row)?;
            folded.push(Folded {
                tx_id: tx_id(row)?,
                position: event.position,
                hash: event.hash,
            });
            events.push(event);
        }
        let Some(last) = folded.last().copied() else {
            // Nothing new: still sign a checkpoint for what is folded once the interval has passed.
            if self.checkpointer.interval_elapsed() {
                let mut tx = conn.begin().await?;
                let folding = self.checkpointer.fold(&mut tx, &[]).await?;
                tx.commit().await?;
                self.checkpointer.committed(folding);
            }
            return Ok(Step::Idle);
        };
        self.publish(&events).await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "insert into accounts.relay_checkpoints (stream, tx_id, position, published_events, updated_at)
             values ($1, $2::text::xid8, $3, $4, now())
             on conflict (stream) do update
                 set tx_id = excluded.tx_id, position = excluded.position,
                     published_events = accounts.relay_checkpoints.published_events + excluded.published_events,
                     updated_at = now()",
        )
        .bind(&self.settings.stream)
        .bind(last.tx_id.to_string())
        .bind(last.position)
        .bind(events.len() as i64)
        .execute(&mut *tx)
        .await?;
        let folding = self.checkpointer.fold(&mut tx, &folded).await?;
        tx.commit().await?;
        self.checkpointer.committed(folding);
        metrics::counter!("folio_relay_published_events_total").increment(events.len() as u64);
        self.published_events += events.len() as u64;
        Ok(Step::Published(events.len()))
    }

    /// Works out the relay's status (lag, and who holds the horizon back if anyone has for
    /// longer than the threshold), logs and exports it, and announces it on core NATS.
    pub async fn announce(&mut self, conn: &mut PgConnection) -> Result<RelayStatus, RelayError> {
        self.last_status = Some(Instant::now());
        let checkpoint = self.checkpoint(conn).await?;
        // Read before the events (a later snapshot): a transaction running now books at or
        // after its start; one starting later books after this clock reading.
        let activity = sqlx::query(
            "select clock_timestamp() as now,
                    (select min(xact_start) from pg_stat_activity
                     where datname = current_database() and pid <> pg_backend_pid()
                       and xact_start is not null) as oldest_start",
        )
        .fetch_one(&mut *conn)
        .await?;
        let lag = sqlx::query(
            "select count(*) as events, min(recorded_at) as oldest_unpublished,
                    coalesce(extract(epoch from clock_timestamp() - (
                        select recorded_at from accounts.events where (tx_id, position) > ($1::text::xid8, $2)
                        order by tx_id, position limit 1))::float8, 0) as secs
             from (select recorded_at from accounts.events
                   where (tx_id, position) > ($1::text::xid8, $2)
                   order by tx_id, position limit $3) pending",
        )
        .bind(checkpoint.tx_id.to_string())
        .bind(checkpoint.position)
        .bind(RELAY_LAG_COUNT_MAX)
        .fetch_one(&mut *conn)
        .await?;
        let lag_events: i64 = lag.try_get("events")?;
        let booked_through = (lag_events < RELAY_LAG_COUNT_MAX).then(|| {
            booked_through(
                activity.try_get("now"),
                activity.try_get("oldest_start"),
                lag.try_get("oldest_unpublished"),
            )
        });
        let booked_through = booked_through.transpose()?.flatten();
        let blocker = self.blocker(conn).await?;
        let status = RelayStatus {
            stream: self.settings.stream.clone(),
            at: Utc::now(),
            published_events: self.published_events,
            lag_events: Some(lag_events),
            lag_secs: lag.try_get("secs")?,
            blocker,
            booked_through: booked_through.filter(|_| self.published_sequence.is_some()),
            published_sequence: self.published_sequence,
        };
        metrics::gauge!("folio_relay_lag_events").set(status.lag_events.unwrap_or(0) as f64);
        metrics::gauge!("folio_relay_lag_seconds").set(status.lag_secs);
        metrics::gauge!("folio_relay_horizon_held_seconds")
            .set(status.blocker.as_ref().map_or(0.0, |b| b.open_for_secs));
        match &status.blocker {
            Some(blocker) if self.warned_pid != Some(blocker.pid) => {
                tracing::warn!(
                    pid = blocker.pid,
                    database = blocker.database.as_deref().unwrap_or("?"),
                    state = blocker.state.as_deref().unwrap_or("?"),
                    application = blocker.application_name.as_deref().unwrap_or(""),
                    open_for_secs = blocker.open_for_secs.round(),
                    events_waiting = blocker.events_waiting,
                    "publication is held back by a transaction left open; events committed after it \
                     wait until it ends (end it, or pg_terminate_backend(pid))"
                );
                self.warned_pid = Some(blocker.pid);
            }
            None if self.warned_pid.is_some() => {
                tracing::info!("publication is no longer held back");
                self.warned_pid = None;
            }
            _ => {}
        }
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(status.clone());
        if let Ok(body) = serde_json::to_vec(&status) {
            // Best effort: a status lost while NATS is down is replaced a second later.
            let _ = self
                .nats
                .publish(
                    relay_status_subject(&self.settings.subject_prefix),
                    body.into(),
                )
                .await;
        }
        Ok(status)
    }

    /// The oldest transaction holding a transaction id (that is what bounds the relay's
    /// horizon), if it has been open longer than the threshold.
    async fn blocker(&self, conn: &mut PgConnection) -> Result<Option<HorizonBlocker>, RelayError> {
        let row = sqlx::query(
            "select pid, datname, state, application_name, client_addr::text as client_addr,
                    extract(epoch from clock_timestamp() - xact_start)::float8 as open_for_secs,
                    exists (select 1 from accounts.events
                            where tx_id >= pg_snapshot_xmin(pg_current_snapshot())) as events_waiting
             from pg_stat_activity
             where backend_xid is not null and pid <> pg_backend_pid() and xact_start is not null
             order by age(backend_xid) desc
             limit 1",
        )
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let open_for_secs: f64 = row.try_get("open_for_secs")?;
        if open_for_secs < self.held_warn.as_secs_f64() {
            return Ok(None);
        }
        Ok(Some(HorizonBlocker {
            pid: row.try_get("pid")?,
            database: row.try_get("datname")?,
            state: row.try_get("state")?,
            application_name: row.try_get("application_name")?,
            client_addr: row.try_get("client_addr")?,
            open_for_secs,
            events_waiting: row.try_get("events_waiting")?,
        }))
    }

    /// Sends every event, then waits for every acknowledgement.
    async fn publish(&mut self, events: &[RecordedEvent]) -> Result<(), RelayError> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let subject = subjects::event_subject(
                &self.settings.subject_prefix,
                event.stream_id,
                &event.event_type,
            );
            let body = serde_json::to_vec(event).expect("recorded events serialise to JSON");
            let message = PublishMessage::build()
                .message_id(subjects::message_id(event.event_id))
                .payload(bytes::Bytes::from(body));
            let ack = self
                .js
                .send_publish(subject, message)
                .await
                .map_err(|e| RelayError::Publish(e.to_string()))?;
            acks.push(ack);
        }
        for ack in acks {
            let ack = ack.await.map_err(|e| RelayError::Publish(e.to_string()))?;
            self.published_sequence = Some(
                self.published_sequence
                    .map_or(ack.sequence, |s| s.max(ack.sequence)),
            );
        }
        Ok(())
    }

    /// This stream's checkpoint, created at the start of history if new.
    pub async fn checkpoint(&self, conn: &mut PgConnection) -> Result<Checkpoint, RelayError> {
        sqlx::query("insert into accounts.relay_checkpoints (stream) values ($1) on conflict (stream) do nothing")
            .bind(&self.settings.stream)
            .execute(&mut *conn)
            .await?;
        let row = sqlx::query("select tx_id::text as tx_id_text, position from accounts.relay_checkpoints where stream = $1")
            .bind(&self.settings.stream)
            .fetch_one(&mut *conn)
            .await?;
        Ok(Checkpoint {
            tx_id: tx_id(&row)?,
            position: row.try_get("position")?,
        })
    }
}

/// The instant before which every event is published: the earliest of the clock reading,
/// the start of the oldest transaction then running in this database, and the oldest
/// event not yet published. An event booked later than its transaction started is
/// covered by that start; one not yet published is the bound itself.
fn booked_through(
    now: Result<DateTime<Utc>, sqlx::Error>,
    oldest_start: Result<Option<DateTime<Utc>>, sqlx::Error>,
    oldest_unpublished: Result<Option<DateTime<Utc>>, sqlx::Error>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let bound = [Some(now?), oldest_start?, oldest_unpublished?]
        .into_iter()
        .flatten()
        .min();
    // Strictly before: an event booked at exactly the bound may still be unpublished.
    Ok(bound.map(|b| b - chrono::Duration::microseconds(1)))
}

/// Takes the relay lock if it is free.
pub async fn try_lock(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select pg_try_advisory_lock($1)")
        .bind(RELAY_LOCK_KEY)
        .fetch_one(conn)
        .await
}

/// Puts the stream's checkpoint back to the start, so the relay publishes all history again
/// (`folio republish`). The consumer skips what it already applied.
pub async fn rewind(pool: &PgPool, stream: &str) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "insert into accounts.relay_checkpoints (stream) values ($1)
         on conflict (stream) do update set tx_id = '0', position = 0, updated_at = now()",
    )
    .bind(stream)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

async fn wait_for_events(
    listener: &mut Option<PgListener>,
    commits: &Notify,
    shutdown: &mut watch::Receiver<bool>,
) {
    let Some(active) = listener.as_mut() else {
        tokio::select! {
            _ = commits.notified() => {}
            _ = pause(RELAY_POLL_INTERVAL, shutdown) => {}
        }
        return;
    };
    tokio::select! {
        _ = commits.notified() => {}
        received = active.recv() => {
            if received.is_err() {
                *listener = None;
            }
        }
        _ = tokio::time::sleep(RELAY_POLL_INTERVAL) => {}
        _ = shutdown.changed() => {}
    }
}

/// Sleeps for `duration` unless shutdown comes first.
async fn pause(duration: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = shutdown.changed() => {}
    }
}

/// Exponential backoff with jitter, from 100 ms up to [`RELAY_BACKOFF_MAX`].
#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn reset(&mut self) {
        self.attempt = 0;
    }

    async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) {
        let base = Duration::from_millis(100).saturating_mul(1 << self.attempt.min(7));
        let capped = base.min(RELAY_BACKOFF_MAX);
        let jittered = capped.mul_f64(0.5 + fastrand::f64() / 2.0);
        self.attempt = self.attempt.saturating_add(1);
        pause(jittered, shutdown).await;
    }
}
