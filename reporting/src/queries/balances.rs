//! Balances on two time axes (DESIGN.md, "Two time axes"): the balance at value date `t`
//! as known at booking instant `k` is the sum of the movements valued at or before `t`
//! and booked at or before `k`,
//!
//! ```text
//! B(t, k) = H(min(t, k)) + Σ backdated movements booked in (t, k] and valued ≤ t
//! ```
//!
//! `H` is the running balance in booking order (`balance_history`, one index seek on
//! `balance_history_as_of`); the correction reads `ledger_entries_backdated` over the
//! bookings in `(t, min(k, t + lag)]`, where `lag` is the account's largest gap between a
//! booking and its value date: bounded by the backdating window, and empty for an account
//! never backdated. One account's balance, or every account's keyset-paginated by account
//! id with per-currency totals.

use chrono::{DateTime, Utc};
use ledger::{AccountId, Currency};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, postgres::PgRow};
use uuid::Uuid;

use super::{Page, QueryError, cursor::CursorKey, fetch_limit, snapshot, stored_currency};

/// An account's balance at a value date, as known at a booking instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoricalBalance {
    pub account_id: AccountId,
    pub holder: String,
    pub currency: Currency,
    pub balance: Decimal,
    /// The account version of the last booking counted in the balance.
    pub version: i64,
    /// When that booking was recorded.
    pub last_change_at: DateTime<Utc>,
}

impl HistoricalBalance {
    fn from_row(row: &PgRow) -> Result<Self, QueryError> {
        let currency = stored_currency(row)?;
        Ok(Self {
            account_id: AccountId::from_uuid(row.try_get("account_id")?),
            holder: row.try_get("holder")?,
            balance: currency.display(row.try_get("balance")?),
            currency,
            version: row.try_get("version")?,
            last_change_at: row.try_get("recorded_at")?,
        })
    }

    pub fn key(&self) -> AccountKey {
        AccountKey(self.account_id.as_uuid())
    }
}

/// The sum of the balances of one currency's accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrencyTotal {
    pub currency: Currency,
    pub total: Decimal,
    pub accounts: i64,
}

/// The position of a balance in the list of all balances: its account id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountKey(pub Uuid);

impl CursorKey for AccountKey {
    const KIND: &'static str = "account";

    fn to_text(&self) -> String {
        self.0.to_string()
    }

    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok().map(Self)
    }
}

/// The two instants a balance is read at: `as_of` on the value-date axis, `known_at` on
/// the booking axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwoAxes {
    pub as_of: DateTime<Utc>,
    pub known_at: DateTime<Utc>,
}

/// The balance of `account_id` at `axes` (both inclusive); `None` if the account was not
/// known to exist then.
pub async fn balance_as_of(
    pool: &PgPool,
    account_id: AccountId,
    axes: TwoAxes,
) -> Result<Option<HistoricalBalance>, QueryError> {
    let mut query = as_of_query(BALANCE_COLUMNS, axes);
    query
        .push(" and a.account_id = ")
        .push_bind(account_id.as_uuid());
    let row = query.build().fetch_optional(pool).await?;
    row.as_ref().map(HistoricalBalance::from_row).transpose()
}

/// How PostgreSQL runs [`balance_as_of`] for these arguments: `EXPLAIN (ANALYZE, BUFFERS,
/// FORMAT JSON)` of the very statement, for measuring that it stays one index seek (plus
/// the bounded backdated range) at any store size (docs/benchmarks.md).
pub async fn explain_balance_as_of(
    pool: &PgPool,
    account_id: AccountId,
    axes: TwoAxes,
) -> Result<serde_json::Value, QueryError> {
    let select = format!("explain (analyze, buffers, format json) {BALANCE_COLUMNS}");
    let mut query = as_of_query(&select, axes);
    query
        .push(" and a.account_id = ")
        .push_bind(account_id.as_uuid());
    let plan: serde_json::Value = query.build_query_scalar().fetch_one(pool).await?;
    Ok(plan)
}

/// A page of every account's balance at two instants, and the totals over all of them.
#[derive(Clone, Debug, PartialEq)]
pub struct BalancesAsOf {
    pub page: Page<HistoricalBalance>,
    /// Per currency, over every matching account (not just the page); when asked for.
    pub totals: Option<Vec<CurrencyTotal>>,
}

/// Every account known at `axes` with its balance, by account id after `after`;
/// `with_totals` adds the per-currency totals, read from the same snapshot.
pub async fn balances_as_of(
    pool: &PgPool,
    axes: TwoAxes,
    currency: Option<Currency>,
    size: usize,
    after: Option<AccountKey>,
    with_totals: bool,
) -> Result<BalancesAsOf, QueryError> {
    let mut tx = snapshot(pool).await?;
    let mut page_query = as_of_query(BALANCE_COLUMNS, axes);
    if let Some(currency) = currency {
        page_query
            .push(" and a.currency = ")
            .push_bind(currency.code());
    }
    if let Some(AccountKey(after)) = after {
        page_query.push(" and a.account_id > ").push_bind(after);
    }
    page_query
        .push(" order by a.account_id limit ")
        .push_bind(fetch_limit(size));
    let rows = page_query.build().fetch_all(&mut *tx).await?;
    let balances = rows
        .iter()
        .map(HistoricalBalance::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let totals = if with_totals {
        let mut totals_query = as_of_query(
            "select a.currency, sum(coalesce(h.balance, 0) + c.extra) as total, count(*) as accounts",
            axes,
        );
        if let Some(currency) = currency {
            totals_query
                .push(" and a.currency = ")
                .push_bind(currency.code());
        }
        totals_query.push(" group by a.currency order by a.currency");
        let rows = totals_query.build().fetch_all(&mut *tx).await?;
        let totals = rows
            .iter()
            .map(|row| {
                let currency = stored_currency(row)?;
                Ok(CurrencyTotal {
                    total: currency.display(row.try_get("total")?),
                    currency,
                    accounts: row.try_get("accounts")?,
                })
            })
            .collect::<Result<Vec<_>, QueryError>>()?;
        Some(totals)
    } else {
        None
    };
    tx.commit().await?;
    Ok(BalancesAsOf {
        page: Page::from_rows(balances, size),
        totals,
    })
}

/// A balance row: the running balance plus the backdated correction, and the last booking
/// counted in either.
const BALANCE_COLUMNS: &str = "select a.account_id, a.holder, a.currency,
        coalesce(h.balance, 0) + c.extra as balance,
        greatest(h.version, c.version) as version,
        greatest(h.recorded_at, c.recorded_at) as recorded_at";

/// `select ... where true` over every account with a balance at `axes`: `h` its running
/// balance at `min(as_of, known_at)` (none before it was opened), `c.extra` the backdated
/// movements booked after `as_of` (up to `known_at`) and valued at or before it (which may
/// precede the account's opening in Folio). An account with neither is not listed.
fn as_of_query(select: &str, axes: TwoAxes) -> QueryBuilder<Postgres> {
    let booked = axes.as_of.min(axes.known_at);
    let mut query = QueryBuilder::new(select);
    query
        .push(
            " from reporting.account_balances a
              left join lateral (
                  select balance, version, recorded_at
                  from reporting.balance_history
                  where account_id = a.account_id and recorded_at <= ",
        )
        .push_bind(booked)
        .push(
            " order by recorded_at desc, version desc
                  limit 1
              ) h on true
              cross join lateral (
                  select coalesce(sum(e.amount), 0) as extra, count(*) as counted,
                         max(e.version) as version, max(e.recorded_at) as recorded_at
                  from reporting.ledger_entries e
                  where e.account_id = a.account_id and e.value_date < e.recorded_at
                    and e.recorded_at > ",
        )
        .push_bind(axes.as_of)
        .push(" and e.recorded_at <= least(")
        .push_bind(axes.known_at)
        .push(", ")
        .push_bind(axes.as_of)
        .push(" + a.backdated_lag_max_us * interval '1 microsecond') and e.value_date <= ")
        .push_bind(axes.as_of)
        .push(") c where (h.version is not null or c.counted > 0)");
    query
}
