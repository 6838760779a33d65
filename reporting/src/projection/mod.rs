//! The projection: applies ledger events to the read models, a batch per transaction.
//!
//! Each event is applied at most once per account version: an event whose version
//! is already applied is skipped (redelivery is harmless), and one that would leave
//! a gap is not applied, so the consumer can leave it unacknowledged until the
//! missing event arrives. Before applying, the event's hash is recomputed and its
//! `prev_hash` compared with the last hash applied for the account; an event that
//! fails either check is refused, recorded in `integrity_alerts`, and halts the
//! account's projection until someone investigates.
//!
//! A batch is decided in memory against the accounts it touches (read once, locked), and
//! written with one set-based statement per read model, so a batch of hundreds of events
//! costs a handful of round trips.

mod writes;

use std::collections::HashMap;

use ledger::{AccountEvent, Hash, RecordedEvent};
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use writes::{AccountRow, Writes};

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
    /// An earlier version of its account has not been applied yet.
    Gap {
        expected_version: i64,
    },
    /// It can never be applied as it is (integrity failure, unreadable payload, halted account).
    Refused {
        reason: String,
    },
    /// It is of a type or version this service does not understand yet; retry after an upgrade.
    Unreadable {
        reason: String,
    },
}

impl Disposition {
    /// Whether the message is finished with (acknowledge it) or must come again (do not).
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Self::Applied | Self::AlreadyApplied | Self::Refused { .. }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("read models: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Clone, Debug)]
pub struct Projector {
    pool: PgPool,
    stream: String,
}

impl Projector {
    /// A projector whose checkpoint is kept under the JetStream stream name `stream`.
    pub fn new(pool: PgPool, stream: impl Into<String>) -> Self {
        Self {
            pool,
            stream: stream.into(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies a batch in one transaction, with the checkpoint; returns one disposition per delivery.
    #[tracing::instrument(skip_all, fields(events = batch.len()))]
    pub async fn apply_batch(
        &self,
        batch: &[Delivery],
    ) -> Result<Vec<Disposition>, ProjectionError> {
        let mut tx = self.pool.begin().await?;
        let mut accounts = load_accounts(&mut tx, batch).await?;
        let mut writes = Writes::default();
        let dispositions: Vec<Disposition> = batch
            .iter()
            .map(|delivery| decide(&mut accounts, &mut writes, &delivery.event))
            .collect();
        writes.accounts = accounts.into_values().filter(|a| a.dirty).collect();
        writes.flush(&mut tx).await?;

        let applied = dispositions
            .iter()
            .filter(|d| **d == Disposition::Applied)
            .count() as i64;
        let last_position = batch
            .iter()
            .zip(&dispositions)
            .filter(|(_, d)| **d == Disposition::Applied)
            .map(|(delivery, _)| delivery.event.position)
            .next_back();
        let sequence = batch
            .iter()
            .zip(&dispositions)
            .filter(|(_, d)| d.is_settled())
            .map(|(delivery, _)| delivery.stream_sequence as i64)
            .max();
        sqlx::query(
            "insert into reporting.projection_checkpoints (stream, stream_sequence, position, applied_events, updated_at)
             values ($1, coalesce($2, 0), $3, $4, now())
             on conflict (stream) do update set
                 stream_sequence = greatest(reporting.projection_checkpoints.stream_sequence, coalesce($2, 0)),
                 position = coalesce($3, reporting.projection_checkpoints.position),
                 applied_events = reporting.projection_checkpoints.applied_events + $4,
                 updated_at = now()",
        )
        .bind(&self.stream)
        .bind(sequence)
        .bind(last_position)
        .bind(applied)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        metrics::counter!("folio_projection_applied_events_total").increment(applied as u64);
        Ok(dispositions)
    }
}

/// The batch's accounts as projected so far, locked until the batch commits.
async fn load_accounts(
    tx: &mut Transaction<'static, Postgres>,
    batch: &[Delivery],
) -> Result<HashMap<Uuid, AccountRow>, ProjectionError> {
    let mut ids: Vec<Uuid> = batch.iter().map(|d| d.event.stream_id.as_uuid()).collect();
    ids.sort();
    ids.dedup();
    let rows = sqlx::query(
        "select account_id, holder, currency, balance, overdraft_limit, status, version, last_hash, opened_at,
                updated_at, halted
         from reporting.account_balances where account_id = any($1) order by account_id for update",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut accounts = HashMap::with_capacity(rows.len());
    for row in rows {
        let hash: Vec<u8> = row.try_get("last_hash")?;
        let id: Uuid = row.try_get("account_id")?;
        accounts.insert(
            id,
            AccountRow {
                account_id: id,
                holder: row.try_get("holder")?,
                currency: row.try_get("currency")?,
                balance: row.try_get("balance")?,
                overdraft_limit: row.try_get("overdraft_limit")?,
                status: row.try_get("status")?,
                version: row.try_get("version")?,
                last_hash: Hash::from_slice(&hash).unwrap_or(Hash::ZERO),
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
    event: &RecordedEvent,
) -> Disposition {
    let id = event.stream_id.as_uuid();
    let current = accounts.get(&id);
    let applied_version = current.map_or(0, |a| a.version);
    if event.stream_version <= applied_version {
        return Disposition::AlreadyApplied;
    }
    if event.stream_version > applied_version + 1 {
        return Disposition::Gap {
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
            tracing::error!(%error, event_id = %event.event_id, "cannot read event; will retry");
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
    writes.audit(event);
    match (&decoded, accounts.get_mut(&id)) {
        (AccountEvent::AccountOpened(opened), _) => {
            let zero = opened.currency.zero();
            accounts.insert(
                id,
                AccountRow {
                    account_id: id,
                    holder: opened.holder.clone(),
                    currency: opened.currency.code().to_string(),
                    balance: zero,
                    overdraft_limit: opened.overdraft_limit,
                    status: "OPEN".into(),
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
            match decoded {
                AccountEvent::AccountFrozen(_) => account.status = "FROZEN".into(),
                AccountEvent::AccountUnfrozen(_) => account.status = "OPEN".into(),
                AccountEvent::AccountClosed(_) => account.status = "CLOSED".into(),
                _ => {}
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
