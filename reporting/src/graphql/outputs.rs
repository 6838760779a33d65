//! GraphQL output types of the reporting queries, converted explicitly from the query
//! layer's plain types, and the Relay connections that page them.

use async_graphql::{
    Json, SimpleObject,
    connection::{Connection, CursorType, Edge, EmptyFields},
};
use platform::{
    access_log::Outcome,
    scalars::{DateTime, Decimal, Uuid},
};
use serde_json::Value;

use crate::queries::{self, Page, cursor};

/// An opaque keyset cursor, already encoded by the query layer.
pub struct PageCursor(String);

impl CursorType for PageCursor {
    type Error = std::convert::Infallible;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        Ok(Self(s.to_string()))
    }

    fn encode_cursor(&self) -> String {
        self.0.clone()
    }
}

/// Balances at an instant; the connection also carries the totals over every matching account.
pub type HistoricalBalanceConnection =
    Connection<PageCursor, HistoricalBalance, HistoricalBalanceTotals>;
/// Statement lines, by account version.
pub type StatementEntryConnection = Connection<PageCursor, StatementEntry>;
/// Audit-trail events, by position.
pub type AuditEntryConnection = Connection<PageCursor, AuditEntry>;
/// Recorded accesses, newest first.
pub type AccessLogEntryConnection = Connection<PageCursor, AccessLogEntry>;

/// A Relay connection over `page`, each item named by its key and converted by `node`.
pub(crate) fn connection<T, K, N, F>(
    page: Page<T>,
    after_given: bool,
    key: impl Fn(&T) -> K,
    node: impl Fn(T) -> N,
    fields: F,
) -> Connection<PageCursor, N, F>
where
    K: cursor::CursorKey,
    N: async_graphql::OutputType,
    F: async_graphql::ObjectType,
{
    // A cursor was given, so an item came before this page.
    let mut connection =
        Connection::with_additional_fields(after_given, page.has_next_page, fields);
    connection.edges = page
        .items
        .into_iter()
        .map(|item| Edge::new(PageCursor(cursor::encode(&key(&item))), node(item)))
        .collect();
    connection
}

/// A connection without additional fields.
pub(crate) fn plain_connection<T, K, N>(
    page: Page<T>,
    after_given: bool,
    key: impl Fn(&T) -> K,
) -> Connection<PageCursor, N>
where
    K: cursor::CursorKey,
    N: From<T> + async_graphql::OutputType,
{
    connection(page, after_given, key, N::from, EmptyFields)
}

pub use platform::objects::Adjustment;

/// A page of adjustments (`adjustments`).
pub type AdjustmentConnection = Connection<PageCursor, Adjustment>;

impl From<queries::AdjustmentRow> for Adjustment {
    fn from(row: queries::AdjustmentRow) -> Self {
        Self {
            id: Uuid(row.id.as_uuid()),
            account_id: Uuid(row.account_id.as_uuid()),
            amount: Decimal::money(row.amount, row.currency),
            reason: row.reason,
            value_date: row.value_date.map(DateTime),
            evidence: row.evidence,
            status: row.status,
            requested_by: row.requested_by,
            requested_at: DateTime(row.requested_at),
            expires_at: DateTime(row.expires_at),
            decided_by: row.decided_by,
            decided_at: row.decided_at.map(DateTime),
            comment: row.comment,
        }
    }
}

/// An account as the reporting service knows it now (../shared/API.md, "Finding accounts").
#[derive(SimpleObject, Clone, Debug)]
pub struct AccountSummary {
    pub id: Uuid,
    pub holder: String,
    pub currency: String,
    pub balance: Decimal,
    /// The balance minus what its active holds reserve, as projected.
    pub available_balance: Decimal,
    pub status: AccountStatus,
    pub opened_at: DateTime,
}

impl From<queries::AccountSummary> for AccountSummary {
    fn from(account: queries::AccountSummary) -> Self {
        Self {
            id: Uuid(account.id.as_uuid()),
            holder: account.holder,
            currency: account.currency.code().to_string(),
            balance: Decimal::money(account.balance, account.currency),
            available_balance: Decimal::money(account.available_balance, account.currency),
            status: account.status,
            opened_at: DateTime(account.opened_at),
        }
    }
}

/// A page of accounts.
pub type AccountSummaryConnection = Connection<PageCursor, AccountSummary>;

/// An account's balance at value date `asOf`, as known at booking instant `asKnownAt`.
#[derive(SimpleObject, Clone, Debug)]
pub struct HistoricalBalance {
    pub account_id: Uuid,
    pub holder: String,
    pub currency: String,
    /// The movements valued at or before `asOf` and booked at or before `asKnownAt`.
    pub balance: Decimal,
    /// The value date asked about.
    pub as_of: DateTime,
    /// The booking instant the answer is as known at, when one was asked for: the answer
    /// is then final. Null when not asked for: the answer is as projected now, and a
    /// movement booked a moment ago may still arrive.
    pub as_known_at: Option<DateTime>,
    /// The account version of the last booking counted in the balance.
    pub version: i64,
    /// When that booking was recorded.
    pub last_change_at: DateTime,
}

impl HistoricalBalance {
    /// `balance` at `axes`; `asked`: whether the booking instant was asked for.
    pub(crate) fn at(
        balance: queries::HistoricalBalance,
        axes: queries::TwoAxes,
        asked: bool,
    ) -> Self {
        Self {
            account_id: Uuid(balance.account_id.as_uuid()),
            holder: balance.holder,
            balance: Decimal::money(balance.balance, balance.currency),
            currency: balance.currency.code().to_string(),
            as_of: DateTime(axes.as_of),
            as_known_at: asked.then_some(DateTime(axes.known_at)),
            version: balance.version,
            last_change_at: DateTime(balance.last_change_at),
        }
    }
}

/// The additional field of [`HistoricalBalanceConnection`].
#[derive(SimpleObject, Clone, Debug, Default)]
pub struct HistoricalBalanceTotals {
    /// Per currency, over every matching account (not just this page).
    pub totals: Vec<CurrencyTotal>,
}

pub use platform::objects::CurrencyTotal;

impl From<queries::CurrencyTotal> for CurrencyTotal {
    fn from(total: queries::CurrencyTotal) -> Self {
        Self {
            total: Decimal::money(total.total, total.currency),
            currency: total.currency.code().to_string(),
            accounts: total.accounts,
        }
    }
}

#[derive(SimpleObject)]
pub struct Statement {
    pub account_id: Uuid,
    pub currency: String,
    /// The range of value dates, both inclusive.
    pub from: DateTime,
    pub to: DateTime,
    /// The booking instant the statement is as known at, when one was asked for: the
    /// statement is then final. Null when read as projected now (its later pages are read
    /// at the same instant as its first).
    pub as_known_at: Option<DateTime>,
    /// The balance valued before `from` (zero if the account did not exist yet).
    pub opening_balance: Decimal,
    /// The balance valued at `to`, inclusive; equals `balanceAsOf(to, asKnownAt)`.
    pub closing_balance: Decimal,
    /// The sum of the credits over the whole range.
    pub total_credits: Decimal,
    /// The sum of the debits over the whole range, as a positive number.
    pub total_debits: Decimal,
    /// How many lines the whole range has.
    pub entry_count: i64,
    pub entries: StatementEntryConnection,
}

impl Statement {
    /// `asked`: whether the booking instant was asked for.
    pub(crate) fn from_query(
        statement: queries::Statement,
        after_given: bool,
        asked: bool,
    ) -> Self {
        let scope = statement.scope();
        Self {
            account_id: Uuid(statement.account_id.as_uuid()),
            from: DateTime(statement.from),
            to: DateTime(statement.to),
            as_known_at: asked.then_some(DateTime(statement.known_at)),
            opening_balance: Decimal::money(statement.opening_balance, statement.currency),
            closing_balance: Decimal::money(statement.closing_balance, statement.currency),
            total_credits: Decimal::money(statement.total_credits, statement.currency),
            total_debits: Decimal::money(statement.total_debits, statement.currency),
            currency: statement.currency.code().to_string(),
            entry_count: statement.entry_count,
            entries: plain_connection(statement.entries, after_given, |e| e.key_in(&scope)),
        }
    }
}

pub use crate::model::{AccountStatus, EntryKind};

/// One movement of money on the account.
#[derive(SimpleObject, Clone, Debug)]
pub struct StatementEntry {
    pub event_id: Uuid,
    /// When it was booked.
    pub recorded_at: DateTime,
    /// When the money moved for the business; lines are in this order.
    pub value_date: DateTime,
    pub kind: EntryKind,
    /// Signed: credits > 0, debits < 0.
    pub amount: Decimal,
    /// The running balance by value date, as known at the statement's `asKnownAt`.
    pub balance_after: Decimal,
    pub reference: Option<String>,
    pub transfer_id: Option<Uuid>,
    pub counterparty_account_id: Option<Uuid>,
    /// On a REVERSAL line: the movement it undid.
    pub reverses_event_id: Option<Uuid>,
    /// The reversal that undid this movement (if booked by `asKnownAt`).
    pub reversed_by_event_id: Option<Uuid>,
    /// The account version the movement made.
    pub version: i64,
    /// The event-store position of the movement.
    pub position: String,
}

impl From<queries::StatementEntry> for StatementEntry {
    fn from(entry: queries::StatementEntry) -> Self {
        Self {
            event_id: Uuid(entry.event_id.as_uuid()),
            recorded_at: DateTime(entry.recorded_at),
            value_date: DateTime(entry.value_date),
            kind: entry.kind,
            amount: Decimal(entry.amount),
            balance_after: Decimal(entry.balance_after),
            reference: entry.reference,
            transfer_id: entry.transfer_id.map(|t| Uuid(t.as_uuid())),
            counterparty_account_id: entry.counterparty_account_id.map(|a| Uuid(a.as_uuid())),
            reverses_event_id: entry.reverses_event_id.map(|e| Uuid(e.as_uuid())),
            reversed_by_event_id: entry.reversed_by_event_id.map(|e| Uuid(e.as_uuid())),
            version: entry.version,
            position: entry.position.to_string(),
        }
    }
}

/// One event with who caused it, in which conversation, and its place in the hash chain.
#[derive(SimpleObject, Clone, Debug)]
pub struct AuditEntry {
    /// The event-store position, as a decimal string.
    pub position: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: i32,
    pub account_id: Uuid,
    pub stream_version: i64,
    pub recorded_at: DateTime,
    pub actor: String,
    pub roles: Vec<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// The mutation that carried the command, e.g. deposit.
    pub command_type: Option<String>,
    pub idempotency_key: Option<String>,
    pub client_addr: Option<String>,
    pub payload: Json<Value>,
    /// SHA-256 of the previous hash and the event, in hex.
    pub hash: String,
    /// The hash of the account's previous event, in hex; null for its first.
    pub previous_hash: Option<String>,
    /// For a movement, its change to the balance (credits > 0, debits < 0); for a hold
    /// event, what the hold reserves or frees; null for events without an amount.
    pub amount: Option<Decimal>,
    /// ISO 4217 code of `amount`; null when `amount` is.
    pub currency: Option<String>,
}

impl From<queries::AuditEntry> for AuditEntry {
    fn from(entry: queries::AuditEntry) -> Self {
        let amount = entry.amount();
        let currency = amount.and(entry.currency).map(|c| c.code().to_string());
        Self {
            amount: amount.map(Decimal),
            currency,
            position: entry.position.to_string(),
            event_id: Uuid(entry.event_id),
            event_type: entry.event_type,
            event_version: i32::from(entry.event_version),
            account_id: Uuid(entry.account_id),
            stream_version: entry.stream_version,
            recorded_at: DateTime(entry.recorded_at),
            actor: entry.actor,
            roles: entry.roles,
            correlation_id: entry.correlation_id,
            causation_id: entry.causation_id,
            command_type: entry.command_type,
            idempotency_key: entry.idempotency_key,
            client_addr: entry.client_addr,
            payload: Json(entry.payload),
            hash: entry.hash.to_hex(),
            previous_hash: entry.previous_hash.map(|h| h.to_hex()),
        }
    }
}

/// Where the projection stands (DESIGN.md, "An honest watermark").
#[derive(SimpleObject, Clone, Debug)]
pub struct ProjectionStatus {
    /// The watermark as a position: the highest event-store position applied together with
    /// every event published before it ("0" before the first). Never decreases.
    pub position: String,
    /// Messages in the stream above the watermark; null when NATS cannot say.
    pub lag_events: Option<i64>,
    /// Seconds since the oldest message above the watermark was published; null when NATS
    /// cannot say.
    pub lag_seconds: Option<f64>,
    pub updated_at: Option<DateTime>,
    pub applied_events: i64,
    /// JetStream stream sequence at or below which every message has been applied.
    pub watermark_sequence: String,
    /// JetStream stream sequence of the last message processed (applied, skipped or parked).
    pub stream_sequence: String,
    /// Events waiting for a predecessor, or for a build that can read them; they hold the
    /// watermark back.
    pub parked_events: i64,
    /// Events refused because their hash chain did not match.
    pub integrity_alerts: i64,
    /// Accounts whose projection stopped at an integrity failure.
    pub halted_accounts: Vec<Uuid>,
    /// The transaction that holds publication back, when one has for longer than the
    /// relay's threshold; null otherwise (or when the relay's status is unknown).
    pub relay_blocker: Option<RelayBlocker>,
}

/// A transaction left open somewhere in the database cluster, holding publication back.
#[derive(SimpleObject, Clone, Debug)]
pub struct RelayBlocker {
    /// PostgreSQL backend process id; `pg_terminate_backend(pid)` ends it.
    pub pid: i32,
    pub database: Option<String>,
    pub state: Option<String>,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    /// How long the transaction has been open, in seconds.
    pub open_for_seconds: f64,
    /// Whether committed events are waiting behind it.
    pub events_waiting: bool,
}

impl From<ledger::status::HorizonBlocker> for RelayBlocker {
    fn from(b: ledger::status::HorizonBlocker) -> Self {
        Self {
            pid: b.pid,
            database: b.database,
            state: b.state,
            application_name: b.application_name,
            client_addr: b.client_addr,
            open_for_seconds: b.open_for_secs,
            events_waiting: b.events_waiting,
        }
    }
}

impl ProjectionStatus {
    pub(crate) fn new(
        status: queries::ProjectionStatus,
        lag: Option<crate::consumer::Lag>,
        relay: Option<ledger::status::RelayStatus>,
    ) -> Self {
        Self {
            position: status.position.unwrap_or(0).to_string(),
            lag_events: lag.map(|l| l.events),
            lag_seconds: lag.map(|l| l.seconds),
            updated_at: status.updated_at.map(DateTime),
            applied_events: status.applied_events,
            watermark_sequence: status.watermark_sequence.to_string(),
            stream_sequence: status.delivered_sequence.to_string(),
            parked_events: status.parked_events,
            integrity_alerts: status.integrity_alerts,
            halted_accounts: status.halted_accounts.into_iter().map(Uuid).collect(),
            relay_blocker: relay.and_then(|r| r.blocker).map(RelayBlocker::from),
        }
    }
}

/// One recorded access to account data, or one refused attempt.
#[derive(SimpleObject, Clone, Debug)]
pub struct AccessLogEntry {
    pub id: String,
    pub accessed_at: DateTime,
    pub actor: String,
    pub roles: Vec<String>,
    /// The query or report, e.g. statement or audit.csv; for a refused attempt, the
    /// operation or route attempted (transfer, POST /graphql).
    pub query: String,
    pub arguments: Json<Value>,
    pub correlation_id: Option<String>,
    pub client_addr: Option<String>,
    /// GRANTED for a read, REFUSED for an attempt turned away.
    pub outcome: Outcome,
    /// The code a refused attempt was answered with: UNAUTHENTICATED or FORBIDDEN.
    pub refusal_code: Option<String>,
    /// The message a refused attempt was answered with.
    pub refusal_reason: Option<String>,
}

impl From<queries::AccessLogEntry> for AccessLogEntry {
    fn from(entry: queries::AccessLogEntry) -> Self {
        Self {
            id: entry.id.to_string(),
            accessed_at: DateTime(entry.accessed_at),
            actor: entry.actor,
            roles: entry.roles,
            query: entry.query,
            arguments: Json(entry.arguments),
            correlation_id: entry.correlation_id,
            client_addr: entry.client_addr,
            outcome: entry.outcome,
            refusal_code: entry.refusal_code,
            refusal_reason: entry.refusal_reason,
        }
    }
}
