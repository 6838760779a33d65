//! Four-eyes adjustments as projected (`adjustments(status, accountId)`, ../shared/API.md):
//! a supervisor's queue of pending requests, an auditor's review of who asked and who
//! approved, keyset-paginated in request order.

use chrono::{DateTime, Utc};
use ledger::{AccountId, AdjustmentId, Currency};
use platform::enums::AdjustmentStatus;
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, postgres::PgRow};

use super::{Page, QueryError, cursor::CursorKey, fetch_limit, stored_currency};

/// An adjustment as the reporting service knows it. A pending one past its expiry shows
/// as EXPIRED (it can no longer be approved) before the sweep's event is projected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdjustmentRow {
    pub id: AdjustmentId,
    pub position: i64,
    pub account_id: AccountId,
    pub currency: Currency,
    pub amount: Decimal,
    pub reason: String,
    pub value_date: Option<DateTime<Utc>>,
    pub evidence: Option<String>,
    pub status: AdjustmentStatus,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub comment: Option<String>,
}

/// The position of an adjustment's request: its place in the listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdjustmentKey(pub i64);

impl CursorKey for AdjustmentKey {
    const KIND: &'static str = "adjustment";

    fn to_text(&self) -> String {
        self.0.to_string()
    }

    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok().map(Self)
    }
}

impl AdjustmentRow {
    fn from_row(row: &PgRow) -> Result<Self, QueryError> {
        let currency = stored_currency(row)?;
        let status: String = row.try_get("effective_status")?;
        Ok(Self {
            id: AdjustmentId::from_uuid(row.try_get("adjustment_id")?),
            position: row.try_get("position")?,
            account_id: AccountId::from_uuid(row.try_get("account_id")?),
            amount: currency.display(row.try_get("amount")?),
            currency,
            reason: row.try_get("reason")?,
            value_date: row.try_get("value_date")?,
            evidence: row.try_get("evidence")?,
            status: AdjustmentStatus::parse(&status).ok_or_else(|| {
                QueryError::Invariant(format!("an adjustment of status {status:?}"))
            })?,
            requested_by: row.try_get("requested_by")?,
            requested_at: row.try_get("requested_at")?,
            expires_at: row.try_get("expires_at")?,
            decided_by: row.try_get("decided_by")?,
            decided_at: row.try_get("decided_at")?,
            comment: row.try_get("comment")?,
        })
    }

    pub fn key(&self) -> AdjustmentKey {
        AdjustmentKey(self.position)
    }
}

/// The adjustments of `status` (any when `None`) on `account_id` (any when `None`), in
/// request order, `size` of them after `after`.
pub async fn adjustments(
    pool: &PgPool,
    status: Option<AdjustmentStatus>,
    account_id: Option<AccountId>,
    size: usize,
    after: Option<AdjustmentKey>,
) -> Result<Page<AdjustmentRow>, QueryError> {
    let mut query = QueryBuilder::<Postgres>::new(
        "select * from (
             select *, case when status = 'PENDING' and expires_at <= clock_timestamp()
                            then 'EXPIRED' else status end as effective_status
             from reporting.adjustments
         ) a where true",
    );
    if let Some(status) = status {
        query
            .push(" and effective_status = ")
            .push_bind(status.as_str());
    }
    if let Some(account_id) = account_id {
        query
            .push(" and account_id = ")
            .push_bind(account_id.as_uuid());
    }
    if let Some(AdjustmentKey(after)) = after {
        query.push(" and position > ").push_bind(after);
    }
    query
        .push(" order by position limit ")
        .push_bind(fetch_limit(size));
    let rows = query.build().fetch_all(pool).await?;
    let items = rows
        .iter()
        .map(AdjustmentRow::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(items, size))
}
