//! Period close (../shared/API.md "Period close"; DESIGN.md "Period close"): a supervisor
//! closes a period at its end instant; from then on no event may carry a value date at or
//! before it (PERIOD_CLOSED), and the close keeps a signed report of the period
//! ([`ledger::period`]).
//!
//! The fence: every append takes the shared advisory lock [`PERIOD_FENCE_LOCK`] before it
//! reads anything and then reads the latest close (`AppendTx::heads`); a close takes the
//! lock exclusively. So a close waits for the appends running when it starts, sees every
//! event they wrote, and every later append sees the close. The report is computed from
//! the events alone ([`compute_report`]), in publication order `(tx_id, position)`, which
//! `folio verify-report` repeats to get the same bytes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use futures::TryStreamExt;
use ledger::{
    AccountEvent, AccountId, Currency, Hash,
    integrity::fold_digest,
    period::{PERIOD_REPORT_FORMAT, PeriodBalance, PeriodReport, SignedPeriodReport, totals_of},
};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool, Row, postgres::PgRow};

use crate::store::{EVENT_COLUMNS, StoreError, recorded_event, tx_id};

/// The advisory lock appends hold shared and a close holds exclusively.
pub const PERIOD_FENCE_LOCK: i64 = 0x466f_6c69_6f50_6572; // "FolioPer"
/// The most closes one page of `periodCloses` lists.
pub const PERIOD_CLOSES_PAGE_MAX: i64 = 500;

/// A close as stored: the signed report and who asked for it under which key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredClose {
    pub signed: SignedPeriodReport,
    pub idempotency_key: String,
}

impl StoredClose {
    /// The position to pass as `atLeast` to reporting: the last event the close covers.
    pub fn position(&self) -> i64 {
        self.signed.report.through_position
    }
}

/// Why a close was refused.
#[derive(Debug, thiserror::Error)]
pub enum PeriodError {
    /// A period ending at or after `period_end` is closed already (PERIOD_CLOSED).
    #[error(
        "the period through {} is closed already; a close must end after the last one",
        crate::domain::instant(.closed_through)
    )]
    AlreadyClosed { closed_through: DateTime<Utc> },
    /// The key was used for a close of another period (IDEMPOTENCY_KEY_REUSED).
    #[error("{key:?} was already used to close another period")]
    KeyReused { key: String },
    /// A period must have ended before it is closed (VALIDATION).
    #[error("{} is not in the past; a period is closed after it ends", crate::domain::instant(.period_end))]
    NotEnded { period_end: DateTime<Utc> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PeriodError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

const CLOSE_COLUMNS: &str = "report, key_id, signature, idempotency_key";

fn stored_close(row: &PgRow) -> Result<StoredClose, StoreError> {
    let report: serde_json::Value = row.try_get("report")?;
    let report: PeriodReport = serde_json::from_value(report)
        .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?;
    let signature: Vec<u8> = row.try_get("signature")?;
    Ok(StoredClose {
        signed: SignedPeriodReport {
            report,
            key_id: row.try_get("key_id")?,
            signature: hex::encode(signature),
        },
        idempotency_key: row.try_get("idempotency_key")?,
    })
}

/// Closes the period ending at `period_end` for `actor` under `key`: the same key and
/// period again answers the stored close; another period under the key is
/// IDEMPOTENCY_KEY_REUSED; a period ending at or before the last close is PERIOD_CLOSED.
#[tracing::instrument(skip_all, fields(period_end = %period_end))]
pub async fn close_period(
    pool: &PgPool,
    signing_key: &SigningKey,
    actor: &str,
    key: &str,
    period_end: DateTime<Utc>,
) -> Result<StoredClose, PeriodError> {
    let mut tx = pool.begin().await?;
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(PERIOD_FENCE_LOCK)
        .execute(&mut *tx)
        .await?;
    let sql = format!(
        "select {CLOSE_COLUMNS} from accounts.period_closes where closed_by = $1 and idempotency_key = $2"
    );
    if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(actor)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?
    {
        let earlier = stored_close(&row)?;
        return if earlier.signed.report.period_end == period_end {
            Ok(earlier)
        } else {
            Err(PeriodError::KeyReused {
                key: key.to_string(),
            })
        };
    }
    let row = sqlx::query(
        "select (select max(period_end) from accounts.period_closes) as closed_through,
                date_trunc('microseconds', clock_timestamp()) as now",
    )
    .fetch_one(&mut *tx)
    .await?;
    let closed_through: Option<DateTime<Utc>> = row.try_get("closed_through")?;
    let now: DateTime<Utc> = row.try_get("now")?;
    if let Some(closed_through) = closed_through.filter(|c| *c >= period_end) {
        return Err(PeriodError::AlreadyClosed { closed_through });
    }
    if period_end >= now {
        return Err(PeriodError::NotEnded { period_end });
    }
    let report = compute_report(&mut tx, period_end, None, now, actor).await?;
    let signed = report.sign(signing_key);
    let signature = hex::decode(&signed.signature).expect("a signature we just made is hex");
    sqlx::query(
        "insert into accounts.period_closes
             (period_end, closed_at, closed_by, idempotency_key, through_tx_id, through_position, report, key_id, signature)
         values ($1, $2, $3, $4, $5::text::xid8, $6, $7, $8, $9)",
    )
    .bind(period_end)
    .bind(now)
    .bind(actor)
    .bind(key)
    .bind(&signed.report.through_tx_id)
    .bind(signed.report.through_position)
    .bind(serde_json::to_value(&signed.report).expect("a report serialises"))
    .bind(&signed.key_id)
    .bind(signature)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StoredClose {
        signed,
        idempotency_key: key.to_string(),
    })
}

/// Computes the report of the period ending at `period_end` from the events alone: every
/// event up to `through` (`(tx_id, position)`; `None`: every event in the store) in
/// publication order, folded into the global digest, and every account's balance counting
/// the movements valued at or before `period_end`. Memory grows with the number of
/// accounts, never with the number of events.
pub async fn compute_report(
    conn: &mut PgConnection,
    period_end: DateTime<Utc>,
    through: Option<(u64, i64)>,
    closed_at: DateTime<Utc>,
    closed_by: &str,
) -> Result<PeriodReport, StoreError> {
    let sql = format!(
        "select {EVENT_COLUMNS}, tx_id::text as tx_id_text from accounts.events
         where $1::text is null or (tx_id, position) <= ($1::text::xid8, $2::int8)
         order by tx_id, position"
    );
    let (through_tx, through_position) = through.map_or((None, 0), |(t, p)| (Some(t), p));
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(through_tx.map(|t| t.to_string()))
        .bind(through_position)
        .fetch(&mut *conn);
    let mut digest = Hash::from_bytes([0; 32]);
    let mut count = 0i64;
    let mut last = (0u64, 0i64);
    let mut balances: BTreeMap<AccountId, (Currency, Decimal, bool)> = BTreeMap::new();
    while let Some(row) = rows.try_next().await? {
        let event = recorded_event(&row)?;
        last = (tx_id(&row)?, event.position);
        digest = fold_digest(&digest, event.position, &event.hash);
        count += 1;
        let decoded = event.decode().map_err(|e| StoreError::Corrupt {
            stream_id: event.stream_id,
            reason: e.to_string(),
        })?;
        if let AccountEvent::AccountOpened(opened) = &decoded {
            let entry = balances.entry(event.stream_id).or_insert((
                opened.currency,
                opened.currency.zero(),
                false,
            ));
            // Opened at or before the period's end: listed even without movements.
            entry.2 |= event.recorded_at <= period_end;
            continue;
        }
        if let (Some(change), Some(value_date)) = (decoded.balance_change(), decoded.value_date())
            && value_date <= period_end
            && let Some(entry) = balances.get_mut(&event.stream_id)
        {
            entry.1 += change;
            entry.2 = true;
        }
    }
    let accounts: Vec<PeriodBalance> = balances
        .into_iter()
        .filter(|(_, (_, _, listed))| *listed)
        .map(|(account_id, (currency, balance, _))| PeriodBalance {
            account_id,
            currency,
            balance: currency.display(balance),
        })
        .collect();
    Ok(PeriodReport {
        format: PERIOD_REPORT_FORMAT.to_string(),
        period_end,
        closed_at,
        closed_by: closed_by.to_string(),
        through_tx_id: last.0.to_string(),
        through_position: last.1,
        event_count: count,
        digest,
        totals: totals_of(&accounts),
        accounts,
    })
}

/// Recomputes `signed`'s report from the events in the store it covers: `Ok(true)` when
/// its canonical bytes are exactly the signed report's.
pub async fn reproduces(
    pool: &PgPool,
    signed: &SignedPeriodReport,
) -> Result<(bool, PeriodReport), StoreError> {
    let report = &signed.report;
    let through_tx: u64 = report.through_tx_id.parse().map_err(|_| {
        StoreError::Database(sqlx::Error::Protocol(format!(
            "throughTxId {:?} is not a transaction id",
            report.through_tx_id
        )))
    })?;
    let mut conn = pool.acquire().await?;
    let recomputed = compute_report(
        &mut conn,
        report.period_end,
        Some((through_tx, report.through_position)),
        report.closed_at,
        &report.closed_by,
    )
    .await?;
    Ok((recomputed.canonical() == report.canonical(), recomputed))
}

/// The close of the period ending exactly at `period_end`, if there is one.
pub async fn period_close(
    pool: &PgPool,
    period_end: DateTime<Utc>,
) -> Result<Option<StoredClose>, StoreError> {
    let sql = format!("select {CLOSE_COLUMNS} from accounts.period_closes where period_end = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(period_end)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(stored_close).transpose()
}

/// Closes in period order, `limit` of them (at most [`PERIOD_CLOSES_PAGE_MAX`]) after the
/// period ending at `after`.
pub async fn period_closes(
    pool: &PgPool,
    after: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<StoredClose>, StoreError> {
    let sql = format!(
        "select {CLOSE_COLUMNS} from accounts.period_closes
         where $1::timestamptz is null or period_end > $1 order by period_end limit $2"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(limit.clamp(0, PERIOD_CLOSES_PAGE_MAX))
        .fetch_all(pool)
        .await?;
    rows.iter().map(stored_close).collect()
}
