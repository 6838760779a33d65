//! The projection: applies ledger events to the read models, a batch per transaction, in
//! publication order (JetStream stream sequence).
//!
//! Each event is applied at most once per account version: an event whose version
//! is already applied is skipped (redelivery and republication are harmless). One that
//! arrives before its predecessor (possible only when the relay retried a batch and
//! JetStream stored part of it twice over) is *parked* in `parked_events` and applied as
//! soon as the missing version arrives. Before applying, the event's hash is recomputed
//! and its `prev_hash` compared with the last hash applied for the account; an event
//! that fails either check is refused, recorded in `integrity_alerts`, and halts the
//! account's projection until someone investigates.
//!
//! The honest watermark (DESIGN.md, "An honest watermark"): every batch commits, with
//! its read-model writes, the last stream sequence it processed (`delivered_sequence`)
//! and the watermark, the sequence at or below which every message has been applied:
//! the delivered sequence, or just below the oldest parked event. Each applied event
//! records its stream sequence in the audit log, so `atLeast: p` holds exactly when the
//! event at `p` was applied at or below the watermark, that is, together with everything
//! published before it. Neither moves backwards, and after a crash the projection
//! resumes from its own delivered sequence.
//!
//! A batch is decided in memory against the accounts it touches (read once, locked), and
//! written with one set-based statement per read model, so a batch of hundreds of events
//! costs a handful of round trips.

mod writes;

use std::borrow::Cow;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use ledger::{AccountEvent, Currency, Hash, RecordedEvent};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use writes::{AccountRow, Parked, Writes};

use crate::model::AccountStatus;

/// The schema the live read models are in.
pub const READ_MODEL_SCHEMA: &str = "reporting";

/// `sql` with its read-model tables in `schema` instead of [`READ_MODEL_SCHEMA`] (a rebuild
/// writes into a schema of its own, then swaps it in).
pub(crate) fn in_schema(schema: &str, sql: &'static str) -> Cow<'static, str> {
    if schema == READ_MODEL_SCHEMA {
        Cow::Borrowed(sql)
    } else {
        Cow::Owned(sql.replace("reporting.", &format!("{schema}.")))
    }
}

/// An event as delivered, with its JetStream stream sequence.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub stream_sequence: u64,
    pub event: RecordedEvent,
}

/// What the projection did with one delivered event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    Applied,
    /// Its version was applied before (a redelivery or a republished event).
    AlreadyApplied,
    /// An earlier version of its account has not been applied yet: the event waits in
    /// `parked_events` and holds the watermark back until its predecessor arrives.
    Parked {
        expected_version: i64,
    },
    /// It can never be applied as it is (integrity failure, halted account).
    Refused {
        reason: String,
    },
    /// It is of a type or version this build does not understand: it is parked, and
    /// retried when a projector starts (after an upgrade).
    Unreadable {
        reason: String,
    },
}

impl Disposition {
    /// Whether the event is finished with: applied, skipped or refused for good.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Self::Applied | Self::AlreadyApplied | Self::Refused { .. }
        )
    }
}

/// What one batch did: a disposition per delivery, plus parked events it could apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub dispositions: Vec<Disposition>,
    /// Events parked by earlier batches and applied by this one.
    pub unparked: usize,
    /// The watermark after the batch (a JetStream stream sequence).
    pub watermark_sequence: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("read models: {0}")]
    Database(#[from] sqlx::Error),
    /// The read models hold something no event could have written.
    #[error("read models broken: {0}")]
    Invariant(String),
}

/// Where the projection stands in its stream, as committed with the read models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last stream sequence processed.
    pub delivered_sequence: i64,
    /// Every message at or below this sequence has been applied.
    pub watermark_sequence: i64,
}

#[derive(Clone, Debug)]
pub struct Projector {
    pool: PgPool,
    stream: String,
    /// Where the read models are: [`READ_MODEL_SCHEMA`], or a rebuild's own schema.
    schema: String,
    /// False once a batch has seen `parked_events` empty; saves a read per batch.
    maybe_parked: Arc<AtomicBool>,
}

impl Projector {
    /// A projector whose checkpoint is kept under the JetStream stream name `stream`.
    pub fn new(pool: PgPool, stream: impl Into<String>) -> Self {
        Self {
            pool,
            stream: stream.into(),
            schema: READ_MODEL_SCHEMA.to_string(),
            maybe_parked: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The same projector writing into the read-model tables of `schema`.
    pub fn in_schema(mut self, schema: &str) -> Self {
        self.schema = schema.to_string();
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Where the projection stands (zeros before the first batch).
    pub async fn checkpoint(&self, conn: &mut PgConnection) -> Result<Checkpoint, ProjectionError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(in_schema(&self.schema,
            "select delivered_sequence, watermark_sequence from reporting.projection_checkpoints where stream = $1")),
        )
        .bind(&self.stream)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(match row {
            Some(row) => Checkpoint {
                delivered_sequence: row.try_get("delivered_sequence")?,
                watermark_sequence: row.try_get("watermark_sequence")?,
            },
            None => Checkpoint::default(),
        })
    }

    /// Forgets where the projection stood in its stream, after the stream was recreated
    /// (its sequences start again at 1). Events already applied are skipped by version.
    pub async fn reset_sequences(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::query(sqlx::AssertSqlSafe(in_schema(&self.schema,
            "update reporting.projection_checkpoints
             set delivered_sequence = 0, watermark_sequence = 0, updated_at = now() where stream = $1")),
        )
        .bind(&self.stream)
        .execute(&mut *conn)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(in_schema(
            &self.schema,
            "update reporting.parked_events set stream_sequence = 0",
        )))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Applies a batch in one transaction from the pool (see [`Self::apply_batch_on`]).
    pub async fn apply_batch(&self, batch: &[Delivery]) -> Result<BatchOutcome, ProjectionError> {
        let mut conn = self.pool.acquire().await?;
        self.apply_batch_on(&mut conn, batch).await
    }

    /// Retries parked events whose predecessor is applied (after an upgrade taught this
    /// build an event type it could not read). Returns how many were applied.
    pub async fn retry_parked(&self, conn: &mut PgConnection) -> Result<usize, ProjectionError> {
        Ok(self.apply_batch_on(conn, &[]).await?.unparked)
    }

    /// Applies a batch, in stream order, in one transaction on `conn`, with the
    /// checkpoint and watermark; returns one disposition per delivery.
    #[tracing::instrument(skip_all, fields(events = batch.len()))]
    pub async fn apply_batch_on(
        &self,
        conn: &mut PgConnection,
        batch: &[Delivery],
    ) -> Result<BatchOutcome, ProjectionError> {
        let check_parked = batch.is_empty() || self.maybe_parked.load(Ordering::Acquire);
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let mut parked = if check_parked {
            load_parked(&mut tx, &self.schema, batch).await?
        } else {
            BTreeMap::new()
        };
        let mut ids: Vec<Uuid> = batch.iter().map(|d| d.event.stream_id.as_uuid()).collect();
        ids.extend(parked.keys().map(|(account, _)| *account));
        let mut accounts = load_accounts(&mut tx, &self.schema, ids).await?;
        let mut writes = Writes::default();
        let mut dispositions = Vec::with_capacity(batch.len());
        let mut unparked = 0;
        if batch.is_empty() {
            // A retry: apply every parked event whose predecessor is in place.
            let ready: Vec<(Uuid, i64)> = parked
                .keys()
                .filter(|(account, version)| {
                    accounts.get(account).map_or(1, |a| a.version + 1) == *version
                })
                .copied()
                .collect();
            for (account, version) in ready {
                if let Some(entry) = parked.remove(&(account, version)) {
                    writes.unpark(account, version);
                    unparked += 1;
                    let applied = decide(&mut accounts, &mut writes, &entry.delivery())
                        == Disposition::Applied;
                    if applied {
                        unparked += drain_parked(&mut accounts, &mut writes, &mut parked, account);
                    }
                }
            }
        }
        for delivery in batch {
            let disposition = match decide(&mut accounts, &mut writes, delivery) {
                Disposition::Parked { expected_version } => {
                    writes.park(delivery);
                    Disposition::Parked { expected_version }
                }
                Disposition::Unreadable { reason } => {
                    writes.park(delivery);
                    Disposition::Unreadable { reason }
                }
                Disposition::Applied => {
                    let account = delivery.event.stream_id.as_uuid();
                    unparked += drain_parked(&mut accounts, &mut writes, &mut parked, account);
                    Disposition::Applied
                }
                settled => settled,
            };
            dispositions.push(disposition);
        }
        writes.accounts = accounts.into_values().filter(|a| a.dirty).collect();
        let applied_events = writes.applied_events();
        let applied = writes.applied_positions();
        writes.flush(&mut tx, &self.schema).await?;

        let delivered = batch.iter().map(|d| d.stream_sequence as i64).max();
        // The watermark: the delivered sequence, or just below the oldest parked event.
        let row = sqlx::query(sqlx::AssertSqlSafe(in_schema(&self.schema,
            "with parked as (select min(stream_sequence) as oldest, count(*) as parked from reporting.parked_events),
                  next as (
                      select greatest(coalesce(c.delivered_sequence, 0), coalesce($2, 0)) as delivered
                      from (select 1) one
                      left join reporting.projection_checkpoints c on c.stream = $1
                  ),
                  mark as (
                      select n.delivered,
                             case when p.oldest is null then n.delivered else p.oldest - 1 end as watermark
                      from next n, parked p
                  )
             insert into reporting.projection_checkpoints
                 (stream, delivered_sequence, watermark_sequence, position, applied_events, updated_at)
             select $1, m.delivered, m.watermark,
                    (select max(u.position) from unnest($3::int8[], $4::int8[]) as u(position, sequence)
                     where u.sequence <= m.watermark),
                    $5, now()
             from mark m
             on conflict (stream) do update set
                 delivered_sequence = excluded.delivered_sequence,
                 watermark_sequence = greatest(reporting.projection_checkpoints.watermark_sequence,
                                               excluded.watermark_sequence),
                 position = greatest(reporting.projection_checkpoints.position, excluded.position),
                 applied_events = reporting.projection_checkpoints.applied_events + excluded.applied_events,
                 updated_at = now()
             returning watermark_sequence, (select parked from parked) as parked")),
        )
        .bind(&self.stream)
        .bind(delivered)
        .bind(applied.iter().map(|(position, _)| *position).collect::<Vec<_>>())
        .bind(applied.iter().map(|(_, sequence)| *sequence).collect::<Vec<_>>())
        .bind(applied_events as i64)
        .fetch_one(&mut *tx)
        .await?;
        let watermark_sequence: i64 = row.try_get("watermark_sequence")?;
        let still_parked: i64 = row.try_get("parked")?;
        tx.commit().await?;
        self.maybe_parked.store(still_parked > 0, Ordering::Release);
        metrics::counter!("folio_projection_applied_events_total").increment(applied_events as u64);
        metrics::gauge!("folio_projection_parked_events").set(still_parked as f64);
        Ok(BatchOutcome {
            dispositions,
            unparked,
            watermark_sequence,
        })
    }
}

/// Parked events of the batch's accounts (or every parked event, for a retry).
async fn load_parked(
    tx: &mut Transaction<'_, Postgres>,
    schema: &str,
    batch: &[Delivery],
) -> Result<BTreeMap<(Uuid, i64), Parked>, ProjectionError> {
    let ids: Vec<Uuid> = batch.iter().map(|d| d.event.stream_id.as_uuid()).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(in_schema(
        schema,
        "select account_id, stream_version, stream_sequence, event from reporting.parked_events
         where $1 or account_id = any($2)",
    )))
    .bind(batch.is_empty())
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut parked = BTreeMap::new();
    for row in rows {
        let account: Uuid = row.try_get("account_id")?;
        let version: i64 = row.try_get("stream_version")?;
        let event: serde_json::Value = row.try_get("event")?;
        match serde_json::from_value::<RecordedEvent>(event) {
            Ok(event) => {
                parked.insert(
                    (account, version),
                    Parked {
                        stream_sequence: row.try_get::<i64, _>("stream_sequence")? as u64,
                        event,
                    },
                );
            }
            Err(error) => {
                tracing::error!(%error, %account, version, "unreadable parked event; leaving it parked")
            }
        }
    }
    Ok(parked)
}

/// Applies the parked successors of `account`, in version order, for as long as they follow.
fn drain_parked(
    accounts: &mut HashMap<Uuid, AccountRow>,
    writes: &mut Writes,
    parked: &mut BTreeMap<(Uuid, i64), Parked>,
    account: Uuid,
) -> usize {
    let mut applied = 0;
    loop {
        let next = accounts.get(&account).map_or(1, |a| a.version + 1);
        let Some(entry) = parked.remove(&(account, next)) else {
            return applied;
        };
        writes.unpark(account, next);
        applied += 1;
        if decide(accounts, writes, &entry.delivery()) != Disposition::Applied {
            return applied;
        }
    }
}

/// The batch's accounts as projected so far, locked until the batch commits.
async fn load_accounts(
    tx: &mut Transaction<'_, Postgres>,
    schema: &str,
    mut ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, AccountRow>, ProjectionError> {
    ids.sort();
    ids.dedup();
    let rows = sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
        "select account_id, holder, currency, balance, overdraft_limit, status, version, last_hash, opened_at,
                updated_at, halted, held, backdated_lag_max_us
         from reporting.account_balances where account_id = any($1) order by account_id for update")),
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut accounts = HashMap::with_capacity(rows.len());
    for row in rows {
        let hash: Vec<u8> = row.try_get("last_hash")?;
        let id: Uuid = row.try_get("account_id")?;
        let currency: String = row.try_get("currency")?;
        let status: String = row.try_get("status")?;
        let invariant = |what: String| ProjectionError::Invariant(format!("account {id}: {what}"));
        accounts.insert(
            id,
            AccountRow {
                account_id: id,
                holder: row.try_get("holder")?,
                currency: Currency::parse(&currency)
                    .map_err(|e| invariant(format!("stored currency {currency:?}: {e}")))?,
                balance: row.try_get("balance")?,
                held: row.try_get("held")?,
                overdraft_limit: row.try_get("overdraft_limit")?,
                status: AccountStatus::parse(&status)
                    .ok_or_else(|| invariant(format!("stored status {status:?}")))?,
                backdated_lag_max_us: row.try_get("backdated_lag_max_us")?,
                version: row.try_get("version")?,
                last_hash: Hash::from_slice(&hash)
                    .map_err(|e| invariant(format!("stored last hash: {e}")))?,
                opened_at: row.try_get("opened_at")?,
                updated_at: row.try_get("updated_at")?,
                halted: row.try_get("halted")?,
                is_new: false,
                dirty: false,
            },
        );
    }
    Ok(accounts)
}

/// What to do with one event, given the accounts as projected so far; records its writes.
fn decide(
    accounts: &mut HashMap<Uuid, AccountRow>,
    writes: &mut Writes,
    delivery: &Delivery,
) -> Disposition {
    let event = &delivery.event;
    let id = event.stream_id.as_uuid();
    let current = accounts.get(&id);
    let applied_version = current.map_or(0, |a| a.version);
    if event.stream_version <= applied_version {
        return Disposition::AlreadyApplied;
    }
    if event.stream_version > applied_version + 1 {
        return Disposition::Parked {
            expected_version: applied_version + 1,
        };
    }
    if current.is_some_and(|a| a.halted) {
        return Disposition::Refused {
            reason: "the account's projection is halted after an integrity failure".into(),
        };
    }
    if let Some(reason) = integrity_failure(event, current.map(|a| a.last_hash)) {
        return refuse(accounts, writes, event, reason);
    }
    let decoded = match event.decode() {
        Ok(decoded) => decoded,
        Err(error) => {
            tracing::error!(%error, event_id = %event.event_id, "cannot read event; parking it until an upgrade");
            return Disposition::Unreadable {
                reason: error.to_string(),
            };
        }
    };
    if let (Some(current), Some(change), Some(after)) =
        (current, decoded.balance_change(), decoded.balance_after())
        && current.balance + change != after
    {
        let reason = format!(
            "balance does not follow: {} {change:+} should be {}, event says {after}",
            current.balance,
            current.balance + change
        );
        return refuse(accounts, writes, event, reason);
    }
    writes.audit(delivery);
    match (&decoded, accounts.get_mut(&id)) {
        (AccountEvent::AccountOpened(opened), _) => {
            let zero = opened.currency.zero();
            accounts.insert(
                id,
                AccountRow {
                    account_id: id,
                    holder: opened.holder.clone(),
                    currency: opened.currency,
                    balance: zero,
                    held: zero,
                    overdraft_limit: opened.overdraft_limit,
                    status: AccountStatus::Open,
                    backdated_lag_max_us: 0,
                    version: event.stream_version,
                    last_hash: event.hash,
                    opened_at: event.recorded_at,
                    updated_at: event.recorded_at,
                    halted: false,
                    is_new: true,
                    dirty: true,
                },
            );
            writes.history(event, zero);
        }
        (_, Some(account)) => {
            if let Some(balance) = decoded.balance_after() {
                account.balance = balance;
                writes.history(event, balance);
            }
            match &decoded {
                AccountEvent::AccountFrozen(_) => account.status = AccountStatus::Frozen,
                AccountEvent::AccountUnfrozen(_) => account.status = AccountStatus::Open,
                AccountEvent::AccountClosed(_) => account.status = AccountStatus::Closed,
                AccountEvent::HoldPlaced(placed) => account.held += placed.amount,
                AccountEvent::HoldCaptured(captured) => {
                    account.held -= captured.amount + captured.released_amount
                }
                AccountEvent::HoldReleased(released) => account.held -= released.amount,
                AccountEvent::HoldExpired(expired) => account.held -= expired.amount,
                _ => {}
            }
            if let Some(value_date) = decoded.value_date() {
                // Rounded up: a value date finer than the microseconds PostgreSQL keeps
                // must still fall inside the bounded range the balance query reads.
                let lag = (event.recorded_at - value_date)
                    .num_nanoseconds()
                    .map_or(i64::MAX, |ns| (ns + 999) / 1_000);
                account.backdated_lag_max_us = account.backdated_lag_max_us.max(lag);
            }
            account.version = event.stream_version;
            account.last_hash = event.hash;
            account.updated_at = event.recorded_at;
            account.dirty = true;
        }
        // A first event other than AccountOpened cannot pass the checks above: version 1
        // needs no previous hash, and only AccountOpened starts a stream.
        (_, None) => {
            return refuse(
                accounts,
                writes,
                event,
                "the account's first event is not AccountOpened".into(),
            );
        }
    }
    writes.movement(event, &decoded);
    writes.adjustment(event, &decoded);
    Disposition::Applied
}

/// Why an event cannot be trusted, if it cannot.
fn integrity_failure(event: &RecordedEvent, last_hash: Option<Hash>) -> Option<String> {
    if !event.hash_is_intact() {
        return Some(format!(
            "hash {} does not match the event's content (expected {})",
            event.hash,
            event.expected_hash()
        ));
    }
    if event.prev_hash != last_hash {
        let show = |h: Option<Hash>| h.map_or_else(|| "none".to_string(), |h| h.to_hex());
        return Some(format!(
            "previousHash {} does not match the last hash applied for the account ({})",
            show(event.prev_hash),
            show(last_hash)
        ));
    }
    None
}

fn refuse(
    accounts: &mut HashMap<Uuid, AccountRow>,
    writes: &mut Writes,
    event: &RecordedEvent,
    reason: String,
) -> Disposition {
    tracing::error!(
        account_id = %event.stream_id,
        event_id = %event.event_id,
        position = event.position,
        stream_version = event.stream_version,
        %reason,
        "INTEGRITY: refusing an event; the account's projection is halted"
    );
    metrics::counter!("folio_projection_integrity_alerts_total").increment(1);
    writes.alert(event, &reason);
    if let Some(account) = accounts.get_mut(&event.stream_id.as_uuid()) {
        account.halted = true;
        account.dirty = true;
    }
    Disposition::Refused { reason }
}
