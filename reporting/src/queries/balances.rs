//! Balances as of an instant: one account's (one index seek on `balance_history_as_of`) or
//! every account's, keyset-paginated by account id, with per-currency totals.

use chrono::{DateTime, Utc};
use ledger::Currency;
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, postgres::PgRow};
use uuid::Uuid;

use super::{Page, QueryError, at_currency_scale, cursor::CursorKey, fetch_limit, snapshot};

/// An account's balance as it stood at some instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoricalBalance {
    pub account_id: Uuid,
    pub holder: String,
    pub currency: String,
    pub balance: Decimal,
    /// The account version of the last balance change at or before the instant.
    pub version: i64,
    /// When that change was recorded.
    pub last_change_at: DateTime<Utc>,
}

impl HistoricalBalance {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let currency: String = row.try_get("currency")?;
        Ok(Self {
            account_id: row.try_get("account_id")?,
            holder: row.try_get("holder")?,
            balance: at_currency_scale(row.try_get("balance")?, &currency),
            currency,
            version: row.try_get("version")?,
            last_change_at: row.try_get("recorded_at")?,
        })
    }

    pub fn key(&self) -> AccountKey {
        AccountKey(self.account_id)
    }
}

/// The sum of the balances of one currency's accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrencyTotal {
    pub currency: String,
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

/// The balance of `account_id` at `as_of` (inclusive); `None` if the account did not exist yet.
pub async fn balance_as_of(
    pool: &PgPool,
    account_id: Uuid,
    as_of: DateTime<Utc>,
) -> Result<Option<HistoricalBalance>, QueryError> {
    // The latest change at or before `as_of`: one seek on (account_id, recorded_at desc, version desc).
    let row = sqlx::query(
        "select h.account_id, a.holder, a.currency, h.balance, h.version, h.recorded_at
         from reporting.balance_history h
         join reporting.account_balances a on a.account_id = h.account_id
         where h.account_id = $1 and h.recorded_at <= $2
         order by h.recorded_at desc, h.version desc
         limit 1",
    )
    .bind(account_id)
    .bind(as_of)
    .fetch_optional(pool)
    .await?;
    Ok(row.as_ref().map(HistoricalBalance::from_row).transpose()?)
}

/// A page of every account's balance at an instant, and the totals over all of them.
#[derive(Clone, Debug, PartialEq)]
pub struct BalancesAsOf {
    pub page: Page<HistoricalBalance>,
    /// Per currency, over every matching account (not just the page); when asked for.
    pub totals: Option<Vec<CurrencyTotal>>,
}

/// Every account that existed at `as_of`, with its balance then, by account id after
/// `after`; `with_totals` adds the per-currency totals, read from the same snapshot.
pub async fn balances_as_of(
    pool: &PgPool,
    as_of: DateTime<Utc>,
    currency: Option<Currency>,
    size: usize,
    after: Option<AccountKey>,
    with_totals: bool,
) -> Result<BalancesAsOf, QueryError> {
    let mut tx = snapshot(pool).await?;
    let mut page_query = as_of_query(
        "select a.account_id, a.holder, a.currency, h.balance, h.version, h.recorded_at",
        as_of,
        currency,
    );
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
            "select a.currency, sum(h.balance) as total, count(*) as accounts",
            as_of,
            currency,
        );
        totals_query.push(" group by a.currency order by a.currency");
        let rows = totals_query.build().fetch_all(&mut *tx).await?;
        let totals = rows
            .iter()
            .map(|row| {
                let currency: String = row.try_get("currency")?;
                Ok(CurrencyTotal {
                    total: at_currency_scale(row.try_get("total")?, &currency),
                    currency,
                    accounts: row.try_get("accounts")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
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

/// `select ...` over every account with its latest balance change at or before `as_of`
/// (accounts opened later have none and drop out), optionally of one currency.
fn as_of_query(
    select: &str,
    as_of: DateTime<Utc>,
    currency: Option<Currency>,
) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(select);
    query
        .push(
            " from reporting.account_balances a
              cross join lateral (
                  select balance, version, recorded_at
                  from reporting.balance_history
                  where account_id = a.account_id and recorded_at <= ",
        )
        .push_bind(as_of)
        .push(
            " order by recorded_at desc, version desc
                  limit 1
              ) h
              where true",
        );
    if let Some(currency) = currency {
        query.push(" and a.currency = ").push_bind(currency.code());
    }
    query
}
