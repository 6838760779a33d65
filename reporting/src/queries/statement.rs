//! Account statements: the movements recorded in a time range, with the balance before and
//! after it and the range's credits and debits.
//!
//! The opening and closing balances come from `balance_history` and the movements
//! from `ledger_entries`: two sources, read from one snapshot, that must agree
//! (opening + every movement in the range = closing). They are checked on every
//! statement, and a disagreement is an internal error, never a wrong statement.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;

use super::{
    Page, QueryError, at_currency_scale, cursor::CursorKey, fetch_limit, snapshot, zero_in,
};

/// What moved money on an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Deposit,
    Withdrawal,
    TransferIn,
    TransferOut,
}

impl EntryKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Deposit => "DEPOSIT",
            Self::Withdrawal => "WITHDRAWAL",
            Self::TransferIn => "TRANSFER_IN",
            Self::TransferOut => "TRANSFER_OUT",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Deposit,
            Self::Withdrawal,
            Self::TransferIn,
            Self::TransferOut,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("unknown entry kind {s:?}"))
    }
}

/// One line of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementEntry {
    pub event_id: Uuid,
    pub version: i64,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub kind: EntryKind,
    /// Signed: credits > 0, debits < 0.
    pub amount: Decimal,
    pub balance_after: Decimal,
    pub reference: Option<String>,
    pub transfer_id: Option<Uuid>,
    pub counterparty_account_id: Option<Uuid>,
}

impl StatementEntry {
    fn from_row(row: &PgRow, currency: &str) -> Result<Self, QueryError> {
        let kind: String = row.try_get("kind")?;
        Ok(Self {
            event_id: row.try_get("event_id")?,
            version: row.try_get("version")?,
            position: row.try_get("position")?,
            recorded_at: row.try_get("recorded_at")?,
            kind: kind.parse().map_err(QueryError::Invariant)?,
            amount: at_currency_scale(row.try_get("amount")?, currency),
            balance_after: at_currency_scale(row.try_get("balance_after")?, currency),
            reference: row.try_get("reference")?,
            transfer_id: row.try_get("transfer_id")?,
            counterparty_account_id: row.try_get("counterparty_account_id")?,
        })
    }

    pub fn key(&self) -> EntryKey {
        EntryKey {
            recorded_at: self.recorded_at,
            version: self.version,
        }
    }
}

/// The position of a line in a statement: lines are in account-version order, which is
/// also recording order; the key holds both so each page is one index range scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryKey {
    pub recorded_at: DateTime<Utc>,
    pub version: i64,
}

impl CursorKey for EntryKey {
    const KIND: &'static str = "entry";

    fn to_text(&self) -> String {
        format!("{}:{}", self.version, self.recorded_at.timestamp_micros())
    }

    fn from_text(text: &str) -> Option<Self> {
        let (version, micros) = text.split_once(':')?;
        Some(Self {
            version: version.parse().ok()?,
            recorded_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        })
    }
}

/// A statement with one page of its lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub account_id: Uuid,
    pub currency: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The balance just before `from` (zero if the account did not exist yet).
    pub opening_balance: Decimal,
    /// The balance at `to`, inclusive.
    pub closing_balance: Decimal,
    /// Credits over the whole range.
    pub total_credits: Decimal,
    /// Debits over the whole range, as a positive number.
    pub total_debits: Decimal,
    /// Lines over the whole range.
    pub entry_count: i64,
    pub entries: Page<StatementEntry>,
}

/// The statement of `account_id` for `[from, to]` (both inclusive), with the page of
/// `size` lines after `after`.
pub async fn statement(
    pool: &PgPool,
    account_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    size: usize,
    after: Option<EntryKey>,
) -> Result<Statement, QueryError> {
    if from > to {
        return Err(QueryError::invalid("from", "must not be later than to"));
    }
    let mut tx = snapshot(pool).await?;
    let currency: String =
        sqlx::query_scalar("select currency from reporting.account_balances where account_id = $1")
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(QueryError::AccountNotFound(account_id))?;
    let zero = zero_in(&currency);
    let opening = balance_at(&mut tx, account_id, from, false)
        .await?
        .unwrap_or(zero);
    let closing = balance_at(&mut tx, account_id, to, true)
        .await?
        .unwrap_or(zero);
    let totals = sqlx::query(
        "select coalesce(sum(amount) filter (where amount > 0), 0) as credits,
                coalesce(-sum(amount) filter (where amount < 0), 0) as debits,
                coalesce(sum(amount), 0) as net,
                count(*) as entries
         from reporting.ledger_entries
         where account_id = $1 and recorded_at >= $2 and recorded_at <= $3",
    )
    .bind(account_id)
    .bind(from)
    .bind(to)
    .fetch_one(&mut *tx)
    .await?;
    let net: Decimal = totals.try_get("net")?;
    let mut page_query = sqlx::QueryBuilder::<Postgres>::new(
        "select event_id, version, position, recorded_at, kind, amount, balance_after,
                reference, transfer_id, counterparty_account_id
         from reporting.ledger_entries
         where account_id = ",
    );
    page_query
        .push_bind(account_id)
        .push(" and recorded_at >= ")
        .push_bind(from)
        .push(" and recorded_at <= ")
        .push_bind(to);
    if let Some(key) = after {
        page_query
            .push(" and (recorded_at, version) > (")
            .push_bind(key.recorded_at)
            .push(", ")
            .push_bind(key.version)
            .push(")");
    }
    page_query
        .push(" order by recorded_at, version limit ")
        .push_bind(fetch_limit(size));
    let rows = page_query.build().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    let lines = rows
        .iter()
        .map(|row| StatementEntry::from_row(row, &currency))
        .collect::<Result<Vec<_>, _>>()?;

    let statement = Statement {
        account_id,
        opening_balance: at_currency_scale(opening, &currency),
        closing_balance: at_currency_scale(closing, &currency),
        total_credits: at_currency_scale(totals.try_get("credits")?, &currency),
        total_debits: at_currency_scale(totals.try_get("debits")?, &currency),
        entry_count: totals.try_get("entries")?,
        entries: Page::from_rows(lines, size),
        currency,
        from,
        to,
    };
    check(&statement, net, after.is_none())?;
    Ok(statement)
}

/// The balance of the latest change before `at` (or at it, when `inclusive`).
async fn balance_at(
    tx: &mut Transaction<'static, Postgres>,
    account_id: Uuid,
    at: DateTime<Utc>,
    inclusive: bool,
) -> Result<Option<Decimal>, QueryError> {
    let sql = if inclusive {
        "select balance from reporting.balance_history
         where account_id = $1 and recorded_at <= $2
         order by recorded_at desc, version desc limit 1"
    } else {
        "select balance from reporting.balance_history
         where account_id = $1 and recorded_at < $2
         order by recorded_at desc, version desc limit 1"
    };
    let balance = sqlx::query_scalar(sql)
        .bind(account_id)
        .bind(at)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(balance)
}

/// The statement's sources agree: opening + movements = closing, credits − debits =
/// movements, and each line's balance follows from the one before.
fn check(statement: &Statement, net: Decimal, first_page: bool) -> Result<(), QueryError> {
    let broken = |what: String| {
        let error = QueryError::Invariant(format!(
            "statement of account {}: {what}",
            statement.account_id
        ));
        tracing::error!(%error, from = %statement.from, to = %statement.to, "statement sources disagree");
        Err(error)
    };
    if statement.opening_balance + net != statement.closing_balance {
        return broken(format!(
            "opening {} + movements {net} != closing {}",
            statement.opening_balance, statement.closing_balance
        ));
    }
    if statement.total_credits - statement.total_debits != net {
        return broken(format!(
            "credits {} - debits {} != movements {net}",
            statement.total_credits, statement.total_debits
        ));
    }
    let lines = &statement.entries.items;
    if first_page
        && let Some(first) = lines.first()
        && statement.opening_balance + first.amount != first.balance_after
    {
        return broken(format!(
            "opening {} + {} != balance after the first line {}",
            statement.opening_balance, first.amount, first.balance_after
        ));
    }
    for pair in lines.windows(2) {
        if pair[0].balance_after + pair[1].amount != pair[1].balance_after {
            return broken(format!(
                "line at version {}: {} + {} != {}",
                pair[1].version, pair[0].balance_after, pair[1].amount, pair[1].balance_after
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::cursor;

    #[test]
    fn entry_cursors_round_trip_to_the_microsecond() {
        let key = EntryKey {
            recorded_at: DateTime::from_timestamp_micros(1_790_000_000_123_456).expect("instant"),
            version: 12,
        };
        let decoded: EntryKey = cursor::decode("after", &cursor::encode(&key)).expect("cursor");
        assert_eq!(decoded, key);
    }

    #[test]
    fn entry_kinds_read_back_what_the_projection_writes() {
        for kind in ["DEPOSIT", "WITHDRAWAL", "TRANSFER_IN", "TRANSFER_OUT"] {
            assert_eq!(kind.parse::<EntryKind>().map(|k| k.as_str()), Ok(kind));
        }
        assert!("REFUND".parse::<EntryKind>().is_err());
    }
}
