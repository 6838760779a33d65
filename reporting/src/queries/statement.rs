//! Account statements on the value-date axis (DESIGN.md, "Two time axes"): the movements
//! valued in a range and booked at or before `asKnownAt`, with the balance before and
//! after the range and its credits and debits. Lines are in value-date order (account
//! version within one instant) and carry the running balance on that axis.
//!
//! The opening and closing balances come from `balance_history` and the backdated
//! corrections (see [`super::balances`]), the movements from `ledger_entries`: two
//! sources, read from one snapshot, that must agree (opening + every movement in the
//! range = closing). They are checked on every statement, and a disagreement is an
//! internal error, never a wrong statement.

use chrono::{DateTime, Utc};
use ledger::{AccountId, Currency, EventId, TransferId};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;

use super::{Page, QueryError, cursor::CursorKey, fetch_limit, snapshot, stored_currency};
pub use crate::model::EntryKind;

/// One line of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementEntry {
    pub event_id: EventId,
    pub version: i64,
    pub position: i64,
    /// When it was booked.
    pub recorded_at: DateTime<Utc>,
    /// When the money moved for the business.
    pub value_date: DateTime<Utc>,
    pub kind: EntryKind,
    /// Signed: credits > 0, debits < 0.
    pub amount: Decimal,
    /// The running balance on the value-date axis, as known at the statement's `asKnownAt`.
    pub balance_after: Decimal,
    pub reference: Option<String>,
    pub transfer_id: Option<TransferId>,
    pub counterparty_account_id: Option<AccountId>,
    /// The movement this line reverses (a REVERSAL line).
    pub reverses_event_id: Option<EventId>,
    /// The reversal that undid this line, if it was booked by `asKnownAt`.
    pub reversed_by_event_id: Option<EventId>,
}

impl StatementEntry {
    fn from_row(
        row: &PgRow,
        currency: Currency,
        balance_after: Decimal,
    ) -> Result<Self, QueryError> {
        let kind: String = row.try_get("kind")?;
        let event = |column: &str| -> Result<Option<EventId>, QueryError> {
            Ok(row
                .try_get::<Option<Uuid>, _>(column)?
                .map(EventId::from_uuid))
        };
        Ok(Self {
            event_id: EventId::from_uuid(row.try_get("event_id")?),
            version: row.try_get("version")?,
            position: row.try_get("position")?,
            recorded_at: row.try_get("recorded_at")?,
            value_date: row.try_get("value_date")?,
            kind: EntryKind::parse(&kind).ok_or_else(|| {
                QueryError::Invariant(format!("a statement line of kind {kind:?}"))
            })?,
            amount: currency.display(row.try_get("amount")?),
            balance_after: currency.display(balance_after),
            reference: row.try_get("reference")?,
            transfer_id: row
                .try_get::<Option<Uuid>, _>("transfer_id")?
                .map(TransferId::from_uuid),
            counterparty_account_id: row
                .try_get::<Option<Uuid>, _>("counterparty_account_id")?
                .map(AccountId::from_uuid),
            reverses_event_id: event("reverses_event_id")?,
            reversed_by_event_id: event("reversed_by_event_id")?,
        })
    }

    /// The cursor after this line of the statement `scope`.
    pub fn key_in(&self, scope: &StatementScope) -> EntryKey {
        EntryKey {
            value_date: self.value_date,
            version: self.version,
            balance_after: self.balance_after,
            account_id: scope.account_id,
            from: scope.from,
            to: scope.to,
            known_at: scope.known_at,
        }
    }
}

/// The position of a line in a statement, the running balance after it, and the statement
/// it belongs to (account, range and booking instant): the next page is one index range
/// scan on `ledger_entries_value_axis` that continues from that balance, as known at the
/// same instant. Cursors are tagged by the server, so all of it is the server's own; a
/// cursor of another statement is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryKey {
    pub value_date: DateTime<Utc>,
    pub version: i64,
    pub balance_after: Decimal,
    pub account_id: AccountId,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub known_at: DateTime<Utc>,
}

impl CursorKey for EntryKey {
    const KIND: &'static str = "value-entry";

    fn to_text(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}:{}",
            self.version,
            self.value_date.timestamp_micros(),
            self.balance_after,
            self.account_id,
            self.from.timestamp_micros(),
            self.to.timestamp_micros(),
            self.known_at.timestamp_micros(),
        )
    }

    fn from_text(text: &str) -> Option<Self> {
        let parts: Vec<&str> = text.split(':').collect();
        let [version, micros, balance, account, from, to, known_at] = parts.as_slice() else {
            return None;
        };
        let instant = |text: &str| DateTime::from_timestamp_micros(text.parse().ok()?);
        Some(Self {
            version: version.parse().ok()?,
            value_date: instant(micros)?,
            balance_after: balance.parse().ok()?,
            account_id: AccountId::from_uuid(account.parse().ok()?),
            from: instant(from)?,
            to: instant(to)?,
            known_at: instant(known_at)?,
        })
    }
}

/// Which statement a page belongs to: the account, the range of value dates and the
/// booking instant it is read at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatementScope {
    pub account_id: AccountId,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub known_at: DateTime<Utc>,
}

impl StatementScope {
    /// The booking instant of the page after `after`: the cursor's own (the pages of one
    /// statement are read at one instant). VALIDATION naming `asKnownAt` when the caller
    /// asks for another.
    pub fn continuing(
        after: &EntryKey,
        as_known_at: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, QueryError> {
        match as_known_at {
            Some(asked) if asked != after.known_at => Err(QueryError::invalid(
                "asKnownAt",
                format!(
                    "the cursor after belongs to this statement as known at {}; ask for that instant or leave asKnownAt out",
                    after
                        .known_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                ),
            )),
            _ => Ok(after.known_at),
        }
    }
}

/// A statement with one page of its lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub account_id: AccountId,
    pub currency: Currency,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The booking instant the statement is read at.
    pub known_at: DateTime<Utc>,
    /// The balance valued before `from` (zero if the account did not exist yet).
    pub opening_balance: Decimal,
    /// The balance valued at `to`, inclusive.
    pub closing_balance: Decimal,
    /// Credits over the whole range.
    pub total_credits: Decimal,
    /// Debits over the whole range, as a positive number.
    pub total_debits: Decimal,
    /// Lines over the whole range.
    pub entry_count: i64,
    pub entries: Page<StatementEntry>,
}

impl Statement {
    /// Which statement this is (for its cursors).
    pub fn scope(&self) -> StatementScope {
        StatementScope {
            account_id: self.account_id,
            from: self.from,
            to: self.to,
            known_at: self.known_at,
        }
    }
}

/// The statement of `account_id` for value dates in `[from, to]` (both inclusive) as
/// known at `known_at`, with the page of `size` lines after `after`.
pub async fn statement(
    pool: &PgPool,
    account_id: AccountId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    known_at: DateTime<Utc>,
    size: usize,
    after: Option<EntryKey>,
) -> Result<Statement, QueryError> {
    if from > to {
        return Err(QueryError::invalid("from", "must not be later than to"));
    }
    if let Some(key) = &after
        && (key.account_id, key.from, key.to, key.known_at) != (account_id, from, to, known_at)
    {
        return Err(QueryError::invalid(
            "after",
            "is a cursor of another statement (another account, range or asKnownAt)",
        ));
    }
    let id = account_id.as_uuid();
    let mut tx = snapshot(pool).await?;
    let row = sqlx::query(
        "select currency, backdated_lag_max_us from reporting.account_balances where account_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(QueryError::AccountNotFound(id))?;
    let currency = stored_currency(&row)?;
    let lag_us: i64 = row.try_get("backdated_lag_max_us")?;
    let opening = balance_at(&mut tx, id, from, false, known_at, lag_us).await?;
    let closing = balance_at(&mut tx, id, to, true, known_at, lag_us).await?;
    let totals = sqlx::query(
        "select coalesce(sum(amount) filter (where amount > 0), 0) as credits,
                coalesce(-sum(amount) filter (where amount < 0), 0) as debits,
                coalesce(sum(amount), 0) as net,
                count(*) as entries
         from reporting.ledger_entries
         where account_id = $1 and value_date >= $2 and value_date <= $3 and recorded_at <= $4",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(known_at)
    .fetch_one(&mut *tx)
    .await?;
    let net: Decimal = totals.try_get("net")?;
    let mut page_query = sqlx::QueryBuilder::<Postgres>::new(
        "select event_id, version, position, recorded_at, value_date, kind, amount, reference,
                transfer_id, counterparty_account_id, reverses_event_id,
                case when reversed_at <= ",
    );
    page_query
        .push_bind(known_at)
        .push(
            " then reversed_by_event_id end as reversed_by_event_id
         from reporting.ledger_entries
         where account_id = ",
        )
        .push_bind(id)
        .push(" and value_date >= ")
        .push_bind(from)
        .push(" and value_date <= ")
        .push_bind(to)
        .push(" and recorded_at <= ")
        .push_bind(known_at);
    if let Some(key) = after {
        page_query
            .push(" and (value_date, version) > (")
            .push_bind(key.value_date)
            .push(", ")
            .push_bind(key.version)
            .push(")");
    }
    page_query
        .push(" order by value_date, version limit ")
        .push_bind(fetch_limit(size));
    let rows = page_query.build().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    let mut running = after.map_or(opening, |key| key.balance_after);
    let mut lines = Vec::with_capacity(rows.len());
    for row in &rows {
        let amount: Decimal = row.try_get("amount")?;
        running += amount;
        lines.push(StatementEntry::from_row(row, currency, running)?);
    }
    let statement = Statement {
        account_id,
        opening_balance: currency.display(opening),
        closing_balance: currency.display(closing),
        total_credits: currency.display(totals.try_get("credits")?),
        total_debits: currency.display(totals.try_get("debits")?),
        entry_count: totals.try_get("entries")?,
        entries: Page::from_rows(lines, size),
        currency,
        from,
        to,
        known_at,
    };
    check(&statement, net)?;
    Ok(statement)
}

/// The balance valued before `at` (or at it, when `inclusive`) as known at `known_at`: the
/// running balance booked by then, plus the backdated movements booked after `at` (and by
/// `known_at`) that are valued before it; see [`super::balances`].
async fn balance_at(
    tx: &mut Transaction<'static, Postgres>,
    account_id: Uuid,
    at: DateTime<Utc>,
    inclusive: bool,
    known_at: DateTime<Utc>,
    lag_us: i64,
) -> Result<Decimal, QueryError> {
    let (booked, valued) = if inclusive {
        ("recorded_at <= $2", "value_date <= $2")
    } else {
        ("recorded_at < $2", "value_date < $2")
    };
    let after = if inclusive {
        "recorded_at > $2"
    } else {
        "recorded_at >= $2"
    };
    let sql = format!(
        "select coalesce((select balance from reporting.balance_history
                          where account_id = $1 and {booked} and recorded_at <= $3
                          order by recorded_at desc, version desc limit 1), 0)
              + coalesce((select sum(amount) from reporting.ledger_entries
                          where account_id = $1 and value_date < recorded_at and {after}
                            and recorded_at <= least($3, $2 + $4 * interval '1 microsecond')
                            and {valued}), 0) as balance"
    );
    let balance = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(account_id)
        .bind(at)
        .bind(known_at)
        .bind(lag_us)
        .fetch_one(&mut **tx)
        .await?;
    Ok(balance)
}

/// The statement's sources agree: opening + movements = closing, and credits − debits =
/// movements.
fn check(statement: &Statement, net: Decimal) -> Result<(), QueryError> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::cursor;

    #[test]
    fn entry_cursors_round_trip_with_their_running_balance_and_statement() {
        let at = |micros| DateTime::from_timestamp_micros(micros).expect("instant");
        let key = EntryKey {
            value_date: at(1_790_000_000_123_456),
            version: 12,
            balance_after: "-1234.50".parse().expect("decimal"),
            account_id: AccountId::generate(),
            from: at(1_789_000_000_000_000),
            to: at(1_791_000_000_000_000),
            known_at: at(1_792_000_000_000_001),
        };
        let decoded: EntryKey = cursor::decode("after", &cursor::encode(&key)).expect("cursor");
        assert_eq!(decoded, key);
    }
}
