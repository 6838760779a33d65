//! `accounts.holds`: the index of hold events the writer keeps in its append transaction,
//! and the lookups that read it (which account a hold is on, an account's holds, the holds
//! past their expiry).

use chrono::{DateTime, Utc};
use ledger::{AccountEvent, AccountId, Currency, HoldId, RecordedEvent};
use rust_decimal::Decimal;
use sqlx::{Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;

use super::StoreError;

/// Where a hold stands.
///
/// One enum for the index, the commands' answers and GraphQL (`HoldStatus`, API.md).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, async_graphql::Enum,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HoldStatus {
    Active,
    Captured,
    Released,
    Expired,
}

impl HoldStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Captured => "CAPTURED",
            Self::Released => "RELEASED",
            Self::Expired => "EXPIRED",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Captured, Self::Released, Self::Expired]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One hold as the index records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRecord {
    pub hold_id: HoldId,
    pub account_id: AccountId,
    pub amount: Decimal,
    pub currency: Currency,
    pub expires_at: Option<DateTime<Utc>>,
    pub reference: Option<String>,
    pub placed_at: DateTime<Utc>,
    /// As settled by an event; an ACTIVE hold past `expires_at` counts for nothing already.
    pub status: HoldStatus,
    pub captured_amount: Option<Decimal>,
    pub to_account_id: Option<AccountId>,
    pub settled_at: Option<DateTime<Utc>>,
}

pub(super) const HOLD_COLUMNS: &str = "hold_id, account_id, amount, currency, expires_at, reference, placed_at, status, \
     captured_amount, to_account_id, settled_at";

pub(super) fn hold_record(row: &PgRow) -> Result<HoldRecord, StoreError> {
    let account_id = AccountId::from_uuid(row.try_get("account_id")?);
    let corrupt = |reason: String| StoreError::Corrupt {
        stream_id: account_id,
        reason,
    };
    let currency: String = row.try_get("currency")?;
    let status: String = row.try_get("status")?;
    Ok(HoldRecord {
        hold_id: HoldId::from_uuid(row.try_get("hold_id")?),
        account_id,
        amount: row.try_get("amount")?,
        currency: Currency::parse(&currency).map_err(|e| corrupt(e.to_string()))?,
        expires_at: row.try_get("expires_at")?,
        reference: row.try_get("reference")?,
        placed_at: row.try_get("placed_at")?,
        status: HoldStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("hold status {status}")))?,
        captured_amount: row.try_get("captured_amount")?,
        to_account_id: row
            .try_get::<Option<Uuid>, _>("to_account_id")?
            .map(AccountId::from_uuid),
        settled_at: row.try_get("settled_at")?,
    })
}

/// Indexes the hold events among `events` (placed: a new row; settled: its status), in two
/// statements at most. Hold ids are unique across accounts: the ids of holds placed here
/// that another hold already has (in the store, or earlier in `events`) are returned, and
/// the caller must not commit.
pub(super) async fn index(
    tx: &mut Transaction<'static, Postgres>,
    events: &[RecordedEvent],
) -> Result<Vec<HoldId>, StoreError> {
    let mut placed = Vec::new();
    // (hold, status, captured amount, captured to, settled at)
    type Settled = (
        Uuid,
        &'static str,
        Option<Decimal>,
        Option<Uuid>,
        DateTime<Utc>,
    );
    let mut settled: Vec<Settled> = Vec::new();
    for event in events {
        if !event.event_type.starts_with("Hold") {
            continue;
        }
        let decoded = event.decode().map_err(|e| StoreError::Corrupt {
            stream_id: event.stream_id,
            reason: e.to_string(),
        })?;
        match decoded {
            AccountEvent::HoldPlaced(p) => placed.push((event.stream_id, event.recorded_at, p)),
            AccountEvent::HoldCaptured(c) => settled.push((
                c.hold_id.as_uuid(),
                HoldStatus::Captured.as_str(),
                Some(c.amount),
                c.to_account_id.map(|a| a.as_uuid()),
                event.recorded_at,
            )),
            AccountEvent::HoldReleased(r) => settled.push((
                r.hold_id.as_uuid(),
                HoldStatus::Released.as_str(),
                None,
                None,
                event.recorded_at,
            )),
            AccountEvent::HoldExpired(x) => settled.push((
                x.hold_id.as_uuid(),
                HoldStatus::Expired.as_str(),
                None,
                None,
                event.recorded_at,
            )),
            _ => {}
        }
    }
    let mut taken = Vec::new();
    if !placed.is_empty() {
        let inserted: Vec<Uuid> = sqlx::query_scalar(
            "insert into accounts.holds (hold_id, account_id, amount, currency, expires_at, reference, placed_at, status)
             select h, a, m, c, e, r, p, 'ACTIVE'
             from unnest($1::uuid[], $2::uuid[], $3::numeric[], $4::text[], $5::timestamptz[], $6::text[], $7::timestamptz[])
                  as u(h, a, m, c, e, r, p)
             on conflict (hold_id) do nothing
             returning hold_id",
        )
        .bind(placed.iter().map(|(_, _, p)| p.hold_id.as_uuid()).collect::<Vec<_>>())
        .bind(placed.iter().map(|(a, _, _)| a.as_uuid()).collect::<Vec<_>>())
        .bind(placed.iter().map(|(_, _, p)| p.amount).collect::<Vec<_>>())
        .bind(placed.iter().map(|(_, _, p)| p.currency.code()).collect::<Vec<_>>())
        .bind(placed.iter().map(|(_, _, p)| p.expires_at).collect::<Vec<_>>())
        .bind(placed.iter().map(|(_, _, p)| p.reference.clone()).collect::<Vec<_>>())
        .bind(placed.iter().map(|(_, at, _)| *at).collect::<Vec<_>>())
        .fetch_all(&mut **tx)
        .await?;
        // Each id inserted once; a second placing of it in this batch was not.
        let mut inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
        for (_, _, p) in &placed {
            if !inserted.remove(&p.hold_id.as_uuid()) {
                taken.push(p.hold_id);
            }
        }
    }
    if !settled.is_empty() {
        sqlx::query(
            "update accounts.holds h
             set status = u.status, captured_amount = u.captured, to_account_id = u.to_account, settled_at = u.at
             from unnest($1::uuid[], $2::text[], $3::numeric[], $4::uuid[], $5::timestamptz[])
                  as u(hold_id, status, captured, to_account, at)
             where h.hold_id = u.hold_id",
        )
        .bind(settled.iter().map(|s| s.0).collect::<Vec<_>>())
        .bind(settled.iter().map(|s| s.1).collect::<Vec<_>>())
        .bind(settled.iter().map(|s| s.2).collect::<Vec<_>>())
        .bind(settled.iter().map(|s| s.3).collect::<Vec<_>>())
        .bind(settled.iter().map(|s| s.4).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(taken)
}
