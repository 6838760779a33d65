//! The projection: applies ledger events to the read models, a batch per transaction.
//!
//! Each event is applied at most once per account version: an event whose version
//! is already applied is skipped (redelivery is harmless), and one that would leave
//! a gap is not applied, so the consumer can leave it unacknowledged until the
//! missing event arrives. Before applying, the event's hash is recomputed and its
//! `prev_hash` compared with the last hash applied for the account; an event that
//! fails either check is refused, recorded in `integrity_alerts`, and halts the
//! account's projection until someone investigates.

use chrono::{DateTime, Utc};
use ledger::{AccountEvent, Hash, RecordedEvent};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

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

struct AccountRow {
    version: i64,
    last_hash: Hash,
    halted: bool,
    balance: Decimal,
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
        let mut dispositions = Vec::with_capacity(batch.len());
        let mut applied = 0i64;
        let mut last_position = None;
        for delivery in batch {
            let disposition = apply(&mut tx, &delivery.event).await?;
            if disposition == Disposition::Applied {
                applied += 1;
                last_position = Some(delivery.event.position);
            }
            dispositions.push(disposition);
        }
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

async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    event: &RecordedEvent,
) -> Result<Disposition, ProjectionError> {
    let row = sqlx::query(
        "select version, last_hash, halted, balance from reporting.account_balances where account_id = $1 for update",
    )
    .bind(event.stream_id.as_uuid())
    .fetch_optional(&mut **tx)
    .await?;
    let current = match row {
        Some(row) => {
            let hash: Vec<u8> = row.try_get("last_hash")?;
            Some(AccountRow {
                version: row.try_get("version")?,
                last_hash: Hash::from_slice(&hash).unwrap_or(Hash::ZERO),
                halted: row.try_get("halted")?,
                balance: row.try_get("balance")?,
            })
        }
        None => None,
    };
    let applied_version = current.as_ref().map_or(0, |c| c.version);
    if event.stream_version <= applied_version {
        return Ok(Disposition::AlreadyApplied);
    }
    if event.stream_version > applied_version + 1 {
        return Ok(Disposition::Gap {
            expected_version: applied_version + 1,
        });
    }
    if current.as_ref().is_some_and(|c| c.halted) {
        return Ok(Disposition::Refused {
            reason: "the account's projection is halted after an integrity failure".into(),
        });
    }
    if let Some(reason) = integrity_failure(event, current.as_ref()) {
        refuse(tx, event, &reason).await?;
        return Ok(Disposition::Refused { reason });
    }
    let decoded = match event.decode() {
        Ok(decoded) => decoded,
        Err(error) => {
            tracing::error!(%error, event_id = %event.event_id, "cannot read event; will retry");
            return Ok(Disposition::Unreadable {
                reason: error.to_string(),
            });
        }
    };
    if let (Some(current), Some(change), Some(after)) =
        (&current, decoded.balance_change(), decoded.balance_after())
        && current.balance + change != after
    {
        let reason = format!(
            "balance does not follow: {} {change:+} should be {}, event says {after}",
            current.balance,
            current.balance + change
        );
        refuse(tx, event, &reason).await?;
        return Ok(Disposition::Refused { reason });
    }
    write_audit_log(tx, event).await?;
    write_account(tx, event, &decoded).await?;
    write_movement(tx, event, &decoded).await?;
    Ok(Disposition::Applied)
}

/// Why an event cannot be trusted, if it cannot.
fn integrity_failure(event: &RecordedEvent, current: Option<&AccountRow>) -> Option<String> {
    if !event.hash_is_intact() {
        return Some(format!(
            "hash {} does not match the event's content (expected {})",
            event.hash,
            event.expected_hash()
        ));
    }
    let expected_prev = current.map(|c| c.last_hash);
    if event.prev_hash != expected_prev {
        let show = |h: Option<Hash>| h.map_or_else(|| "none".to_string(), |h| h.to_hex());
        return Some(format!(
            "previousHash {} does not match the last hash applied for the account ({})",
            show(event.prev_hash),
            show(expected_prev)
        ));
    }
    None
}

async fn refuse(
    tx: &mut Transaction<'static, Postgres>,
    event: &RecordedEvent,
    reason: &str,
) -> Result<(), sqlx::Error> {
    tracing::error!(
        account_id = %event.stream_id,
        event_id = %event.event_id,
        position = event.position,
        stream_version = event.stream_version,
        %reason,
        "INTEGRITY: refusing an event; the account's projection is halted"
    );
    metrics::counter!("folio_projection_integrity_alerts_total").increment(1);
    sqlx::query(
        "insert into reporting.integrity_alerts (account_id, event_id, position, stream_version, reason)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(event.stream_id.as_uuid())
    .bind(event.event_id.as_uuid())
    .bind(event.position)
    .bind(event.stream_version)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    sqlx::query("update reporting.account_balances set halted = true where account_id = $1")
        .bind(event.stream_id.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn write_audit_log(
    tx: &mut Transaction<'static, Postgres>,
    event: &RecordedEvent,
) -> Result<(), sqlx::Error> {
    let metadata = event.metadata().ok();
    let text = |key: &str| {
        event
            .metadata
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    sqlx::query(
        "insert into reporting.audit_log
             (position, event_id, event_type, event_version, account_id, stream_version, recorded_at, actor, roles,
              correlation_id, causation_id, command_id, command_type, idempotency_key, client_addr,
              payload, metadata, prev_hash, hash)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
         on conflict (position) do nothing",
    )
    .bind(event.position)
    .bind(event.event_id.as_uuid())
    .bind(&event.event_type)
    .bind(event.event_version)
    .bind(event.stream_id.as_uuid())
    .bind(event.stream_version)
    .bind(event.recorded_at)
    .bind(text("actor").unwrap_or_else(|| "unknown".into()))
    .bind(metadata.as_ref().map(|m| m.roles.clone()).unwrap_or_default())
    .bind(text("correlationId"))
    .bind(text("causationId"))
    .bind(text("commandId"))
    .bind(text("commandType"))
    .bind(text("idempotencyKey"))
    .bind(text("clientAddr"))
    .bind(&event.payload)
    .bind(&event.metadata)
    .bind(event.prev_hash.map(|h| h.as_bytes().to_vec()))
    .bind(event.hash.as_bytes().as_slice())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn write_account(
    tx: &mut Transaction<'static, Postgres>,
    event: &RecordedEvent,
    decoded: &AccountEvent,
) -> Result<(), sqlx::Error> {
    let id = event.stream_id.as_uuid();
    let hash = event.hash.as_bytes().as_slice();
    if let AccountEvent::AccountOpened(opened) = decoded {
        let zero = opened.currency.zero();
        sqlx::query(
            "insert into reporting.account_balances
                 (account_id, holder, currency, balance, overdraft_limit, status, version, last_hash, opened_at, updated_at)
             values ($1, $2, $3, $4, $5, 'OPEN', $6, $7, $8, $8)",
        )
        .bind(id)
        .bind(&opened.holder)
        .bind(opened.currency.code())
        .bind(zero)
        .bind(opened.overdraft_limit)
        .bind(event.stream_version)
        .bind(hash)
        .bind(event.recorded_at)
        .execute(&mut **tx)
        .await?;
        insert_history(tx, event, zero).await?;
        return Ok(());
    }
    let status = match decoded {
        AccountEvent::AccountFrozen(_) => Some("FROZEN"),
        AccountEvent::AccountUnfrozen(_) => Some("OPEN"),
        AccountEvent::AccountClosed(_) => Some("CLOSED"),
        _ => None,
    };
    sqlx::query(
        "update reporting.account_balances
         set balance = coalesce($2, balance), status = coalesce($3, status), version = $4, last_hash = $5, updated_at = $6
         where account_id = $1",
    )
    .bind(id)
    .bind(decoded.balance_after())
    .bind(status)
    .bind(event.stream_version)
    .bind(hash)
    .bind(event.recorded_at)
    .execute(&mut **tx)
    .await?;
    if let Some(balance) = decoded.balance_after() {
        insert_history(tx, event, balance).await?;
    }
    Ok(())
}

async fn insert_history(
    tx: &mut Transaction<'static, Postgres>,
    event: &RecordedEvent,
    balance: Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into reporting.balance_history (account_id, version, recorded_at, balance, event_id, position)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.stream_id.as_uuid())
    .bind(event.stream_version)
    .bind(event.recorded_at)
    .bind(balance)
    .bind(event.event_id.as_uuid())
    .bind(event.position)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The statement line and transfer row of an event that moves money.
struct Entry<'a> {
    kind: &'static str,
    amount: Decimal,
    balance_after: Decimal,
    currency: &'static str,
    reference: Option<&'a str>,
    transfer_id: Option<Uuid>,
    counterparty: Option<Uuid>,
}

fn entry(decoded: &AccountEvent) -> Option<Entry<'_>> {
    Some(match decoded {
        AccountEvent::MoneyDeposited(m) => Entry {
            kind: "DEPOSIT",
            amount: m.amount,
            balance_after: m.balance_after,
            currency: m.currency.code(),
            reference: m.reference.as_deref(),
            transfer_id: None,
            counterparty: None,
        },
        AccountEvent::MoneyWithdrawn(m) => Entry {
            kind: "WITHDRAWAL",
            amount: -m.amount,
            balance_after: m.balance_after,
            currency: m.currency.code(),
            reference: m.reference.as_deref(),
            transfer_id: None,
            counterparty: None,
        },
        AccountEvent::TransferDebited(t) => Entry {
            kind: "TRANSFER_OUT",
            amount: -t.amount,
            balance_after: t.balance_after,
            currency: t.currency.code(),
            reference: t.reference.as_deref(),
            transfer_id: Some(t.transfer_id.as_uuid()),
            counterparty: Some(t.to_account_id.as_uuid()),
        },
        AccountEvent::TransferCredited(t) => Entry {
            kind: "TRANSFER_IN",
            amount: t.amount,
            balance_after: t.balance_after,
            currency: t.currency.code(),
            reference: t.reference.as_deref(),
            transfer_id: Some(t.transfer_id.as_uuid()),
            counterparty: Some(t.from_account_id.as_uuid()),
        },
        _ => return None,
    })
}

async fn write_movement(
    tx: &mut Transaction<'static, Postgres>,
    event: &RecordedEvent,
    decoded: &AccountEvent,
) -> Result<(), sqlx::Error> {
    let Some(entry) = entry(decoded) else {
        return Ok(());
    };
    sqlx::query(
        "insert into reporting.ledger_entries
             (event_id, account_id, version, position, recorded_at, kind, amount, balance_after, currency,
              reference, transfer_id, counterparty_account_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(event.event_id.as_uuid())
    .bind(event.stream_id.as_uuid())
    .bind(event.stream_version)
    .bind(event.position)
    .bind(event.recorded_at)
    .bind(entry.kind)
    .bind(entry.amount)
    .bind(entry.balance_after)
    .bind(entry.currency)
    .bind(entry.reference)
    .bind(entry.transfer_id)
    .bind(entry.counterparty)
    .execute(&mut **tx)
    .await?;
    if let Some(transfer_id) = entry.transfer_id {
        write_transfer(tx, event, &entry, transfer_id).await?;
    }
    Ok(())
}

async fn write_transfer(
    tx: &mut Transaction<'static, Postgres>,
    event: &RecordedEvent,
    entry: &Entry<'_>,
    transfer_id: Uuid,
) -> Result<(), sqlx::Error> {
    let outgoing = entry.kind == "TRANSFER_OUT";
    let (from, to) = if outgoing {
        (event.stream_id.as_uuid(), entry.counterparty)
    } else {
        (
            entry.counterparty.unwrap_or_default(),
            Some(event.stream_id.as_uuid()),
        )
    };
    let at: DateTime<Utc> = event.recorded_at;
    sqlx::query(
        "insert into reporting.transfers
             (transfer_id, from_account_id, to_account_id, amount, currency, reference,
              debit_event_id, credit_event_id, debited_at, credited_at)
         values ($1, $2, $3, $4, $5, $6,
                 case when $7 then $8 end, case when $7 then null else $8 end,
                 case when $7 then $9 end, case when $7 then null else $9 end)
         on conflict (transfer_id) do update set
             debit_event_id = coalesce(reporting.transfers.debit_event_id, excluded.debit_event_id),
             credit_event_id = coalesce(reporting.transfers.credit_event_id, excluded.credit_event_id),
             debited_at = coalesce(reporting.transfers.debited_at, excluded.debited_at),
             credited_at = coalesce(reporting.transfers.credited_at, excluded.credited_at)",
    )
    .bind(transfer_id)
    .bind(from)
    .bind(to)
    .bind(entry.amount.abs())
    .bind(entry.currency)
    .bind(entry.reference)
    .bind(outgoing)
    .bind(event.event_id.as_uuid())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
