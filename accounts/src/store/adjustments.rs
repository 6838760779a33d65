//! `accounts.adjustments`: the index of adjustment events the writer keeps in its append
//! transaction, and the lookups that read it (which account an adjustment is on, the
//! pending adjustments past expiry for the sweep). Working state like the hold index: the
//! events remain the record.

use chrono::{DateTime, Utc};
use ledger::{AccountEvent, AccountId, AdjustmentId, RecordedEvent};
use sqlx::{Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;

use super::StoreError;

/// One adjustment as the index records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdjustmentRecord {
    pub adjustment_id: AdjustmentId,
    pub account_id: AccountId,
    /// `PENDING`, `APPROVED`, `REJECTED` or `EXPIRED`, as settled by an event (a PENDING
    /// one past `expires_at` can no longer be approved already).
    pub status: String,
    pub expires_at: DateTime<Utc>,
}

pub(super) const ADJUSTMENT_COLUMNS: &str = "adjustment_id, account_id, status, expires_at";

pub(super) fn adjustment_record(row: &PgRow) -> Result<AdjustmentRecord, StoreError> {
    Ok(AdjustmentRecord {
        adjustment_id: AdjustmentId::from_uuid(row.try_get("adjustment_id")?),
        account_id: AccountId::from_uuid(row.try_get("account_id")?),
        status: row.try_get("status")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// Indexes the adjustment events among `events` (requested: a new row; decided: its
/// status), in two statements at most.
pub(super) async fn index(
    tx: &mut Transaction<'static, Postgres>,
    events: &[RecordedEvent],
) -> Result<(), StoreError> {
    let mut requested: Vec<(Uuid, Uuid, DateTime<Utc>)> = Vec::new();
    let mut decided: Vec<(Uuid, &'static str, DateTime<Utc>)> = Vec::new();
    for event in events {
        if !event.event_type.starts_with("Adjustment") {
            continue;
        }
        let decoded = event.decode().map_err(|e| StoreError::Corrupt {
            stream_id: event.stream_id,
            reason: e.to_string(),
        })?;
        match decoded {
            AccountEvent::AdjustmentRequested(r) => requested.push((
                r.adjustment_id.as_uuid(),
                event.stream_id.as_uuid(),
                r.expires_at,
            )),
            AccountEvent::AdjustmentPosted(p) => {
                decided.push((p.adjustment_id.as_uuid(), "APPROVED", event.recorded_at))
            }
            AccountEvent::AdjustmentRejected(r) => {
                decided.push((r.adjustment_id.as_uuid(), "REJECTED", event.recorded_at))
            }
            AccountEvent::AdjustmentExpired(x) => {
                decided.push((x.adjustment_id.as_uuid(), "EXPIRED", event.recorded_at))
            }
            _ => {}
        }
    }
    if !requested.is_empty() {
        sqlx::query(
            "insert into accounts.adjustments (adjustment_id, account_id, status, expires_at)
             select a, s, 'PENDING', e from unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) as u(a, s, e)",
        )
        .bind(requested.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(requested.iter().map(|r| r.1).collect::<Vec<_>>())
        .bind(requested.iter().map(|r| r.2).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    if !decided.is_empty() {
        sqlx::query(
            "update accounts.adjustments a set status = u.status, decided_at = u.at
             from unnest($1::uuid[], $2::text[], $3::timestamptz[]) as u(adjustment_id, status, at)
             where a.adjustment_id = u.adjustment_id",
        )
        .bind(decided.iter().map(|d| d.0).collect::<Vec<_>>())
        .bind(decided.iter().map(|d| d.1).collect::<Vec<_>>())
        .bind(decided.iter().map(|d| d.2).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
