//! Finding accounts: by part of the holder's name (case-insensitive), currency and status,
//! keyset-paginated by account id, with the balance and available balance as projected
//! (../shared/API.md, "Finding accounts").

use chrono::{DateTime, Utc};
use ledger::{AccountId, Currency};
use platform::enums::AccountStatus;
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, postgres::PgRow};

use super::{AccountKey, Page, QueryError, fetch_limit, parse_filter_text, stored_currency};

/// Which accounts to list; every given criterion must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountFilter {
    /// Part of the holder's name, matched case-insensitively.
    pub holder: Option<String>,
    pub currency: Option<Currency>,
    pub status: Option<AccountStatus>,
}

impl AccountFilter {
    /// Checks a filter as a client gave it; refusals name the field.
    pub fn parse(
        holder: Option<&str>,
        currency: Option<&str>,
        status: Option<AccountStatus>,
    ) -> Result<Self, QueryError> {
        Ok(Self {
            holder: holder.map(|h| parse_filter_text("holder", h)).transpose()?,
            currency: currency
                .map(|c| super::parse_currency("currency", c))
                .transpose()?,
            status,
        })
    }
}

/// An account as the reporting service knows it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSummary {
    pub id: AccountId,
    pub holder: String,
    pub currency: Currency,
    pub balance: Decimal,
    /// The balance minus what its active holds reserve (a hold past its expiry counts
    /// until its HoldExpired is projected).
    pub available_balance: Decimal,
    pub held: Decimal,
    pub status: AccountStatus,
    pub opened_at: DateTime<Utc>,
}

impl AccountSummary {
    fn from_row(row: &PgRow) -> Result<Self, QueryError> {
        let currency = stored_currency(row)?;
        let status: String = row.try_get("status")?;
        let balance: Decimal = row.try_get("balance")?;
        let held: Decimal = row.try_get("held")?;
        Ok(Self {
            id: AccountId::from_uuid(row.try_get("account_id")?),
            holder: row.try_get("holder")?,
            balance: currency.display(balance),
            available_balance: currency.display(balance - held),
            held: currency.display(held),
            currency,
            status: AccountStatus::parse(&status)
                .ok_or_else(|| QueryError::Invariant(format!("an account of status {status:?}")))?,
            opened_at: row.try_get("opened_at")?,
        })
    }

    pub fn key(&self) -> AccountKey {
        AccountKey(self.id.as_uuid())
    }
}

/// The accounts matching `filter`, by id, `size` of them after `after`.
pub async fn accounts(
    pool: &PgPool,
    filter: &AccountFilter,
    size: usize,
    after: Option<AccountKey>,
) -> Result<Page<AccountSummary>, QueryError> {
    let mut query = QueryBuilder::<Postgres>::new(
        "select account_id, holder, currency, balance, held, status, opened_at
         from reporting.account_balances where true",
    );
    if let Some(holder) = &filter.holder {
        query
            .push(" and holder ilike ")
            .push_bind(format!("%{}%", escape_like(holder)))
            .push(" escape '\\'");
    }
    if let Some(currency) = filter.currency {
        query.push(" and currency = ").push_bind(currency.code());
    }
    if let Some(status) = filter.status {
        query.push(" and status = ").push_bind(status.as_str());
    }
    if let Some(AccountKey(after)) = after {
        query.push(" and account_id > ").push_bind(after);
    }
    query
        .push(" order by account_id limit ")
        .push_bind(fetch_limit(size));
    let rows = query.build().fetch_all(pool).await?;
    let accounts = rows
        .iter()
        .map(AccountSummary::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(accounts, size))
}

/// `text` with LIKE's wildcards taken literally.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_filter_takes_wildcards_literally() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }
}
