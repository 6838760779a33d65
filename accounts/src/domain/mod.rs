//! The Account aggregate: commands, a pure `decide` that turns a command into events or a
//! refusal, and a pure `evolve` that folds events into state.
//!
//! Rules (DESIGN.md, "Money", "Holds", "Two time axes"): amounts are positive, below the
//! maximum and have no more decimal places than the account's currency; no debit may take
//! the *available* balance (balance minus active holds) below minus the overdraft limit;
//! frozen accounts take no debits or credits (a hold may still be released); closed
//! accounts take nothing; an account closes only at zero balance with no active hold; a
//! transfer needs two distinct open accounts of one currency, and its legs sum to zero. A
//! hold is captured once, for at most its amount, and counts for nothing from `expiresAt`
//! on, before any HoldExpired is written. A movement is reversed at most once, within the
//! accounts' limits. Value dates lie between the backdating window's start and the booking
//! instant. Limits are decided on the current balance (the booking axis), never on a
//! value-date balance. An adjustment moves money only once a supervisor other than its
//! maker approves it, within the account's limits, before it expires (SOX maker-checker).
//!
//! `decide` is given a [`Booking`]: the instant the events will be recorded at, and the
//! window value dates must fall in. Nothing here reads a clock.

mod adjustments;
mod holds;
mod movements;
mod reversals;
mod text;

#[cfg(test)]
mod adjustments_tests;
#[cfg(test)]
mod fixture;
#[cfg(test)]
mod holds_tests;
#[cfg(test)]
mod reversals_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod value_dates_tests;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use ledger::{
    AccountEvent, AccountId, AdjustmentId, Currency, ErrorCode, EventId, HoldId, Money, MoneyError,
    PositiveAmount, TransferId,
    events::{AccountOpened, StatusChange},
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use adjustments::{
    Adjustment, AdjustmentAmount, AdjustmentStatus, DecideAdjustment, ExpireAdjustment,
    RequestAdjustment, same_person,
};
pub use holds::{CaptureHold, ExpireHold, PlaceHold, ReleaseHold, decide_capture};
pub use movements::decide_transfer;
pub use reversals::{
    Reverse, ReversedMovement, TransferLeg, decide_reversal, movement_of, transfer_of,
};
pub use text::{Evidence, Holder, Reason, Reference, TextError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    Open,
    Frozen,
    Closed,
}

/// A hold not yet settled. From `expires_at` on it counts for nothing and cannot be
/// captured, even before the sweep writes its HoldExpired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub amount: Decimal,
    pub expires_at: Option<DateTime<Utc>>,
    pub placed_at: DateTime<Utc>,
    pub reference: Option<String>,
}

impl Hold {
    /// Whether the hold still reserves its funds at `now`.
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|expires| now < expires)
    }
}

/// An opened account, as its events describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub holder: String,
    pub currency: Currency,
    pub balance: Decimal,
    pub overdraft_limit: Decimal,
    pub status: AccountStatus,
    /// Stream version: how many events the account has.
    pub version: i64,
    pub opened_at: DateTime<Utc>,
    /// Holds placed and not yet captured, released or expired by an event.
    #[serde(default)]
    pub holds: BTreeMap<HoldId, Hold>,
    /// Movements of this account that have been reversed (their event ids).
    #[serde(default)]
    pub reversed: BTreeSet<EventId>,
    /// Adjustments requested and not yet approved, rejected or expired by an event.
    #[serde(default)]
    pub adjustments: BTreeMap<AdjustmentId, Adjustment>,
}

impl Account {
    /// What the holds active at `now` reserve.
    pub fn held_at(&self, now: DateTime<Utc>) -> Decimal {
        self.holds
            .values()
            .filter(|h| h.is_active_at(now))
            .map(|h| h.amount)
            .fold(self.currency.zero(), |sum, a| sum + a)
    }

    /// The balance minus the holds active at `now` (API.md's `availableBalance`).
    pub fn available_balance_at(&self, now: DateTime<Utc>) -> Decimal {
        self.balance - self.held_at(now)
    }

    /// How much may be debited at `now` without breaching the overdraft limit.
    pub fn spendable_at(&self, now: DateTime<Utc>) -> Decimal {
        self.available_balance_at(now) + self.overdraft_limit
    }
}

/// The booking the decided events will get: when they are recorded, and which value dates
/// they may carry (DESIGN.md, "Two time axes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Booking {
    /// The booking instant (the events' `recorded_at`).
    pub at: DateTime<Utc>,
    /// How far back a value date may lie (`FOLIO_BACKDATE_DAYS_MAX`).
    pub backdate_max: Duration,
    /// The end of the last closed period: no value date at or before it is accepted.
    pub closed_through: Option<DateTime<Utc>>,
}

impl Booking {
    /// A booking at `at` that accepts value dates back to `backdate_max` before it.
    pub fn at(at: DateTime<Utc>, backdate_max: Duration) -> Self {
        Self {
            at,
            backdate_max,
            closed_through: None,
        }
    }

    /// The value date of a movement: `requested`, checked, or the booking instant. It lies
    /// within the backdating window, not in the future, and after the last closed period.
    /// (It may precede the account's opening: money that moved before the account was
    /// opened in Folio belongs to the day it moved.)
    pub fn value_date(
        &self,
        requested: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, DomainError> {
        let value_date = requested.unwrap_or(self.at);
        let earliest = self.at - self.backdate_max;
        if value_date > self.at || value_date < earliest {
            return Err(DomainError::ValueDateOutOfRange {
                value_date,
                earliest,
                latest: self.at,
            });
        }
        if let Some(closed) = self.closed_through
            && value_date <= closed
        {
            return Err(DomainError::PeriodClosed {
                value_date,
                closed_through: closed,
            });
        }
        Ok(value_date)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenAccount {
    pub account_id: AccountId,
    pub holder: Holder,
    pub currency: Currency,
    /// Zero or more, at the currency's scale (see [`ledger::money::parse_limit`]).
    pub overdraft_limit: Decimal,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deposit {
    pub account_id: AccountId,
    pub amount: PositiveAmount,
    pub reference: Option<Reference>,
    /// When the money moved for the business; `None`: the booking instant.
    pub value_date: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdraw {
    pub account_id: AccountId,
    pub amount: PositiveAmount,
    pub reference: Option<Reference>,
    pub value_date: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub transfer_id: TransferId,
    pub from: AccountId,
    pub to: AccountId,
    pub amount: PositiveAmount,
    pub reference: Option<Reference>,
    pub value_date: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeStatus {
    pub account_id: AccountId,
    pub reason: Reason,
}

/// A command on one account. Transfers, captures and reversals touch two and have their
/// own `decide_*` functions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Open(OpenAccount),
    Deposit(Deposit),
    Withdraw(Withdraw),
    Freeze(ChangeStatus),
    Unfreeze(ChangeStatus),
    Close(ChangeStatus),
    PlaceHold(PlaceHold),
    ReleaseHold(ReleaseHold),
    ExpireHold(ExpireHold),
    RequestAdjustment(RequestAdjustment),
    ApproveAdjustment(DecideAdjustment),
    RejectAdjustment(DecideAdjustment),
    ExpireAdjustment(ExpireAdjustment),
}

impl Command {
    pub fn account_id(&self) -> AccountId {
        match self {
            Self::Open(c) => c.account_id,
            Self::Deposit(c) => c.account_id,
            Self::Withdraw(c) => c.account_id,
            Self::Freeze(c) | Self::Unfreeze(c) | Self::Close(c) => c.account_id,
            Self::PlaceHold(c) => c.account_id,
            Self::ReleaseHold(c) => c.account_id,
            Self::ExpireHold(c) => c.account_id,
            Self::RequestAdjustment(c) => c.account_id,
            Self::ApproveAdjustment(c) | Self::RejectAdjustment(c) => c.account_id,
            Self::ExpireAdjustment(c) => c.account_id,
        }
    }
}

/// What a refusal is about, so that the edge can name the input that carries it
/// (`extensions.field`) without the domain knowing any GraphQL field names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// One of the accounts the command names.
    Account(AccountId),
    /// The amount the command moves.
    Amount,
    /// The second account of a transfer, as such (it is the same as the first).
    Counterparty,
    /// The hold the command names.
    Hold,
    /// When a hold expires.
    ExpiresAt,
    /// The value date the command asks for.
    ValueDate,
    /// The movement a reversal names.
    Movement,
    /// The adjustment a decision names.
    Adjustment,
}

/// Why a command was refused. Each variant maps to exactly one [`ErrorCode`], and names
/// what it is about ([`DomainError::subject`]); messages name no input field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("no account {0}")]
    AccountNotFound(AccountId),
    #[error("account {0} already exists")]
    AccountAlreadyExists(AccountId),
    #[error("account {0} is frozen and takes no debits or credits")]
    AccountFrozen(AccountId),
    #[error("account {0} is already frozen")]
    AlreadyFrozen(AccountId),
    #[error("account {0} is not frozen")]
    NotFrozen(AccountId),
    #[error("account {0} is closed")]
    AccountClosed(AccountId),
    #[error(
        "{requested} {currency} exceeds what account {account_id} can pay ({available} {currency}: balance minus active holds, plus overdraft limit)"
    )]
    InsufficientFunds {
        account_id: AccountId,
        requested: Decimal,
        available: Decimal,
        currency: Currency,
    },
    #[error("account {to_account} holds {to}, but the source account holds {from}")]
    CurrencyMismatch {
        from: Currency,
        to: Currency,
        to_account: AccountId,
    },
    #[error("{0}")]
    InvalidAmount(MoneyError),
    #[error("a transfer needs two different accounts")]
    SameAccount,
    #[error(
        "account {account_id} has a balance of {balance} {currency}; only an account at zero can be closed"
    )]
    NonzeroBalance {
        account_id: AccountId,
        balance: Decimal,
        currency: Currency,
    },
    #[error(
        "account {account_id} has {count} active hold(s) reserving {held} {currency}; capture or release them before closing"
    )]
    ActiveHolds {
        account_id: AccountId,
        count: usize,
        held: Decimal,
        currency: Currency,
    },
    #[error("no hold {0}")]
    HoldNotFound(HoldId),
    #[error("hold {hold_id} is not active: {why}")]
    HoldNotActive { hold_id: HoldId, why: String },
    #[error("a hold {0} already exists")]
    HoldAlreadyExists(HoldId),
    #[error("{requested} {currency} is more than hold {hold_id} reserves ({held} {currency})")]
    CaptureExceedsHold {
        hold_id: HoldId,
        requested: Decimal,
        held: Decimal,
        currency: Currency,
    },
    #[error(
        "{} is not after the booking instant {}; a hold must expire in the future",
        instant(expires_at),
        instant(now)
    )]
    ExpiryInThePast {
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("no movement {0}")]
    MovementNotFound(String),
    #[error("{what} cannot be reversed: {why}")]
    NotReversible { what: String, why: String },
    /// The movement (or transfer) named, as the client named it, has been reversed before.
    #[error("{0} has already been reversed")]
    AlreadyReversed(String),
    #[error(
        "{} is outside the value dates accepted now: from {} (the backdating window) to {} (the booking instant)",
        instant(value_date),
        instant(earliest),
        instant(latest)
    )]
    ValueDateOutOfRange {
        value_date: DateTime<Utc>,
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
    },
    #[error(
        "{} lies in a closed period (closed through {})",
        instant(value_date),
        instant(closed_through)
    )]
    PeriodClosed {
        value_date: DateTime<Utc>,
        closed_through: DateTime<Utc>,
    },
    #[error("no adjustment {0}")]
    AdjustmentNotFound(AdjustmentId),
    #[error("an adjustment {0} already exists")]
    AdjustmentAlreadyExists(AdjustmentId),
    #[error("adjustment {adjustment_id} is not pending: {why}")]
    AdjustmentNotPending {
        adjustment_id: AdjustmentId,
        why: String,
    },
    /// Maker-checker (SOX): the person who asked for an adjustment cannot approve it.
    #[error(
        "adjustment {adjustment_id} was requested by {requested_by}; a second supervisor must approve it"
    )]
    SelfApproval {
        adjustment_id: AdjustmentId,
        requested_by: String,
    },
}

impl DomainError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::AccountNotFound(_) => ErrorCode::AccountNotFound,
            Self::AccountAlreadyExists(_)
            | Self::NotFrozen(_)
            | Self::HoldAlreadyExists(_)
            | Self::ExpiryInThePast { .. } => ErrorCode::Validation,
            Self::AccountFrozen(_) | Self::AlreadyFrozen(_) => ErrorCode::AccountFrozen,
            Self::AccountClosed(_) => ErrorCode::AccountClosed,
            Self::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            Self::CurrencyMismatch { .. } => ErrorCode::CurrencyMismatch,
            Self::InvalidAmount(_) | Self::CaptureExceedsHold { .. } => ErrorCode::InvalidAmount,
            Self::SameAccount => ErrorCode::SameAccount,
            Self::NonzeroBalance { .. } | Self::ActiveHolds { .. } => ErrorCode::NonzeroBalance,
            Self::HoldNotFound(_) => ErrorCode::HoldNotFound,
            Self::HoldNotActive { .. } => ErrorCode::HoldNotActive,
            Self::MovementNotFound(_) => ErrorCode::MovementNotFound,
            Self::NotReversible { .. } => ErrorCode::NotReversible,
            Self::AlreadyReversed(_) => ErrorCode::AlreadyReversed,
            Self::ValueDateOutOfRange { .. } => ErrorCode::ValueDateOutOfRange,
            Self::PeriodClosed { .. } => ErrorCode::PeriodClosed,
            Self::AdjustmentNotFound(_) => ErrorCode::AdjustmentNotFound,
            Self::AdjustmentAlreadyExists(_) => ErrorCode::Validation,
            Self::AdjustmentNotPending { .. } => ErrorCode::AdjustmentNotPending,
            Self::SelfApproval { .. } => ErrorCode::SelfApproval,
        }
    }

    /// What the refusal is about.
    pub fn subject(&self) -> Subject {
        match self {
            Self::AccountNotFound(id)
            | Self::AccountAlreadyExists(id)
            | Self::AccountFrozen(id)
            | Self::AlreadyFrozen(id)
            | Self::NotFrozen(id)
            | Self::AccountClosed(id)
            | Self::NonzeroBalance { account_id: id, .. }
            | Self::ActiveHolds { account_id: id, .. } => Subject::Account(*id),
            Self::CurrencyMismatch { to_account, .. } => Subject::Account(*to_account),
            Self::InsufficientFunds { .. }
            | Self::InvalidAmount(_)
            | Self::CaptureExceedsHold { .. } => Subject::Amount,
            Self::SameAccount => Subject::Counterparty,
            Self::HoldNotFound(_) | Self::HoldNotActive { .. } | Self::HoldAlreadyExists(_) => {
                Subject::Hold
            }
            Self::ExpiryInThePast { .. } => Subject::ExpiresAt,
            Self::ValueDateOutOfRange { .. } | Self::PeriodClosed { .. } => Subject::ValueDate,
            Self::MovementNotFound(_) | Self::NotReversible { .. } | Self::AlreadyReversed(_) => {
                Subject::Movement
            }
            Self::AdjustmentNotFound(_)
            | Self::AdjustmentAlreadyExists(_)
            | Self::AdjustmentNotPending { .. }
            | Self::SelfApproval { .. } => Subject::Adjustment,
        }
    }
}

/// An instant as messages show it: RFC 3339 in UTC, to the microsecond.
pub fn instant(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Decides a single-account command against the account's current state.
pub fn decide(
    state: Option<&Account>,
    command: &Command,
    booking: &Booking,
) -> Result<Vec<AccountEvent>, DomainError> {
    let account = match (state, command) {
        (None, Command::Open(open)) => {
            return Ok(vec![AccountEvent::AccountOpened(AccountOpened {
                account_id: open.account_id,
                holder: open.holder.as_str().to_string(),
                currency: open.currency,
                overdraft_limit: open.overdraft_limit,
            })]);
        }
        (Some(account), Command::Open(_)) => {
            return Err(DomainError::AccountAlreadyExists(account.id));
        }
        (None, other) => return Err(DomainError::AccountNotFound(other.account_id())),
        (Some(account), _) => account,
    };
    let event = match command {
        Command::Open(_) => unreachable!("opening is decided above"),
        Command::Deposit(deposit) => movements::deposit(account, deposit, booking)?,
        Command::Withdraw(withdraw) => movements::withdraw(account, withdraw, booking)?,
        Command::Freeze(change) => match account.status {
            AccountStatus::Open => AccountEvent::AccountFrozen(status_change(change)),
            AccountStatus::Frozen => return Err(DomainError::AlreadyFrozen(account.id)),
            AccountStatus::Closed => return Err(DomainError::AccountClosed(account.id)),
        },
        Command::Unfreeze(change) => match account.status {
            AccountStatus::Frozen => AccountEvent::AccountUnfrozen(status_change(change)),
            AccountStatus::Open => return Err(DomainError::NotFrozen(account.id)),
            AccountStatus::Closed => return Err(DomainError::AccountClosed(account.id)),
        },
        Command::Close(change) => close(account, change, booking)?,
        Command::PlaceHold(place) => holds::place(account, place, booking)?,
        Command::ReleaseHold(release) => holds::release(account, release, booking)?,
        Command::ExpireHold(expire) => holds::expire(account, expire, booking)?,
        Command::RequestAdjustment(request) => adjustments::request(account, request, booking)?,
        Command::ApproveAdjustment(decision) => adjustments::approve(account, decision, booking)?,
        Command::RejectAdjustment(decision) => adjustments::reject(account, decision, booking)?,
        Command::ExpireAdjustment(expire) => adjustments::expire(account, expire, booking)?,
    };
    Ok(vec![event])
}

/// Whether `events`, decided on `accounts` for an earlier booking instant, are still what
/// deciding again on the same states would give at `booking`: every value date still in
/// the window, and every hold they place, capture or release still unexpired. The writer
/// keeps a decision across a retried group only when its streams did not move and this
/// holds (time is the one input that changes between attempts).
pub fn still_valid_at(
    events: &[(AccountId, AccountEvent)],
    accounts: &std::collections::HashMap<AccountId, Account>,
    booking: &Booking,
) -> bool {
    let hold_active = |id: &AccountId, hold_id: &HoldId| {
        accounts
            .get(id)
            .and_then(|a| a.holds.get(hold_id))
            .is_some_and(|h| h.is_active_at(booking.at))
    };
    events.iter().all(|(id, event)| {
        event
            .value_date()
            .is_none_or(|v| booking.value_date(Some(v)).is_ok())
            && match event {
                AccountEvent::HoldPlaced(p) => p.expires_at.is_none_or(|e| e > booking.at),
                AccountEvent::HoldCaptured(c) => hold_active(id, &c.hold_id),
                AccountEvent::HoldReleased(r) => hold_active(id, &r.hold_id),
                AccountEvent::AdjustmentPosted(_) | AccountEvent::AdjustmentRejected(_) => {
                    adjustments::still_pending(accounts.get(id), event, booking.at)
                }
                _ => true,
            }
    })
}

fn close(
    account: &Account,
    change: &ChangeStatus,
    booking: &Booking,
) -> Result<AccountEvent, DomainError> {
    if account.status == AccountStatus::Closed {
        return Err(DomainError::AccountClosed(account.id));
    }
    let active: Vec<&Hold> = account
        .holds
        .values()
        .filter(|h| h.is_active_at(booking.at))
        .collect();
    if !active.is_empty() {
        return Err(DomainError::ActiveHolds {
            account_id: account.id,
            count: active.len(),
            held: account.held_at(booking.at),
            currency: account.currency,
        });
    }
    if !account.balance.is_zero() {
        return Err(DomainError::NonzeroBalance {
            account_id: account.id,
            balance: account.balance,
            currency: account.currency,
        });
    }
    Ok(AccountEvent::AccountClosed(status_change(change)))
}

/// Folds one event into the state. Events are facts: evolve never refuses one.
pub fn evolve(
    state: Option<Account>,
    event: &AccountEvent,
    recorded_at: DateTime<Utc>,
) -> Option<Account> {
    let Some(mut account) = state else {
        return match event {
            AccountEvent::AccountOpened(opened) => Some(Account {
                id: opened.account_id,
                holder: opened.holder.clone(),
                currency: opened.currency,
                balance: opened.currency.zero(),
                overdraft_limit: opened.overdraft_limit,
                status: AccountStatus::Open,
                version: 1,
                opened_at: recorded_at,
                holds: BTreeMap::new(),
                reversed: BTreeSet::new(),
                adjustments: BTreeMap::new(),
            }),
            // A stream that does not start with AccountOpened is corrupt; the store refuses it.
            _ => None,
        };
    };
    if let Some(balance) = event.balance_after() {
        account.balance = balance;
    }
    match event {
        AccountEvent::AccountFrozen(_) => account.status = AccountStatus::Frozen,
        AccountEvent::AccountUnfrozen(_) => account.status = AccountStatus::Open,
        AccountEvent::AccountClosed(_) => account.status = AccountStatus::Closed,
        AccountEvent::HoldPlaced(placed) => {
            account.holds.insert(
                placed.hold_id,
                Hold {
                    amount: placed.amount,
                    expires_at: placed.expires_at,
                    placed_at: recorded_at,
                    reference: placed.reference.clone(),
                },
            );
        }
        AccountEvent::HoldCaptured(captured) => {
            account.holds.remove(&captured.hold_id);
        }
        AccountEvent::HoldReleased(released) => {
            account.holds.remove(&released.hold_id);
        }
        AccountEvent::HoldExpired(expired) => {
            account.holds.remove(&expired.hold_id);
        }
        AccountEvent::MovementReversed(reversal) => {
            account.reversed.insert(reversal.reversed_event_id);
        }
        AccountEvent::AdjustmentRequested(requested) => {
            if let Some(adjustment) = Adjustment::evolve(None, account.id, event, recorded_at) {
                account
                    .adjustments
                    .insert(requested.adjustment_id, adjustment);
            }
        }
        AccountEvent::AdjustmentPosted(ledger::events::AdjustmentPosted {
            adjustment_id, ..
        })
        | AccountEvent::AdjustmentRejected(ledger::events::AdjustmentRejected {
            adjustment_id,
            ..
        })
        | AccountEvent::AdjustmentExpired(ledger::events::AdjustmentExpired { adjustment_id }) => {
            account.adjustments.remove(adjustment_id);
        }
        AccountEvent::AccountOpened(_)
        | AccountEvent::MoneyDeposited(_)
        | AccountEvent::MoneyWithdrawn(_)
        | AccountEvent::TransferDebited(_)
        | AccountEvent::TransferCredited(_) => {}
    }
    account.version += 1;
    Some(account)
}

fn ensure_takes_credits(account: &Account) -> Result<(), DomainError> {
    match account.status {
        AccountStatus::Open => Ok(()),
        AccountStatus::Frozen => Err(DomainError::AccountFrozen(account.id)),
        AccountStatus::Closed => Err(DomainError::AccountClosed(account.id)),
    }
}

fn ensure_takes_debits(account: &Account) -> Result<(), DomainError> {
    ensure_takes_credits(account)
}

fn money_for(account: &Account, amount: PositiveAmount) -> Result<Money, DomainError> {
    Money::of(amount, account.currency).map_err(DomainError::InvalidAmount)
}

/// The debit `amount` leaves the available balance within the overdraft limit at `now`.
fn ensure_covers(
    account: &Account,
    amount: Decimal,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    let spendable = account.spendable_at(now);
    if amount > spendable {
        return Err(DomainError::InsufficientFunds {
            account_id: account.id,
            requested: amount,
            available: spendable,
            currency: account.currency,
        });
    }
    Ok(())
}

fn status_change(change: &ChangeStatus) -> StatusChange {
    StatusChange {
        reason: change.reason.as_str().to_string(),
    }
}
