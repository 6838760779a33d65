//! Given / when / then for the Account aggregate: a history of events, a command, and the
//! events or the refusal expected.

use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger::{
    AccountEvent, AccountId, AdjustmentId, Currency, EventId, HoldId, PositiveAmount, ReversalId,
    TransferId,
    events::{
        AccountOpened, AdjustmentRejected, AdjustmentRequested, HoldCaptured, HoldPlaced,
        HoldReleased, Movement, MovementReversed, ReversedKind, StatusChange,
    },
};
use rust_decimal::Decimal;

use super::{
    Account, AdjustmentAmount, Booking, CaptureHold, ChangeStatus, Command, DecideAdjustment,
    Deposit, DomainError, Holder, OpenAccount, PlaceHold, Reason, ReleaseHold, RequestAdjustment,
    Reverse, ReversedMovement, Transfer, Withdraw, decide, decide_capture, decide_reversal,
    decide_transfer, evolve,
};

/// When the tests' accounts were opened: long before [`at`], beyond the backdating window.
pub fn opened_at() -> DateTime<Utc> {
    at() - Duration::days(400)
}

/// The backdating window of the tests' bookings.
pub const WINDOW_DAYS: i64 = 62;

/// A booking at [`at`] with a [`WINDOW_DAYS`] window.
pub fn booking() -> Booking {
    Booking::at(at(), Duration::days(WINDOW_DAYS))
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("test decimal")
}

pub fn amount(s: &str) -> PositiveAmount {
    PositiveAmount::parse(dec(s)).expect("test amount")
}

pub fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 3, 17, 0, 0)
        .single()
        .expect("time")
}

/// The events of one account so far, keeping the running balance so each event carries it.
#[derive(Clone, Debug)]
pub struct History {
    pub id: AccountId,
    currency: Currency,
    balance: Decimal,
    events: Vec<AccountEvent>,
}

impl History {
    pub fn opened(currency: &str) -> Self {
        Self::opened_with_overdraft(currency, "0")
    }

    pub fn opened_with_overdraft(currency: &str, limit: &str) -> Self {
        let id = AccountId::generate();
        let currency = Currency::parse(currency).expect("test currency");
        let overdraft_limit = currency.fit(dec(limit)).expect("test limit");
        Self {
            id,
            currency,
            balance: currency.zero(),
            events: vec![AccountEvent::AccountOpened(AccountOpened {
                account_id: id,
                holder: "Ada Lovelace".into(),
                currency,
                overdraft_limit,
            })],
        }
    }

    pub fn never_opened() -> Self {
        Self {
            id: AccountId::generate(),
            currency: Currency::parse("USD").expect("usd"),
            balance: Decimal::ZERO,
            events: vec![],
        }
    }

    pub fn deposited(mut self, value: &str) -> Self {
        let movement = self.movement(dec(value));
        self.events.push(AccountEvent::MoneyDeposited(movement));
        self
    }

    pub fn withdrew(mut self, value: &str) -> Self {
        let movement = self.movement(-dec(value));
        self.events.push(AccountEvent::MoneyWithdrawn(movement));
        self
    }

    pub fn frozen(mut self) -> Self {
        self.events
            .push(AccountEvent::AccountFrozen(reason("review")));
        self
    }

    pub fn closed(mut self) -> Self {
        self.events
            .push(AccountEvent::AccountClosed(reason("customer request")));
        self
    }

    /// A hold of `value` placed, expiring at `expires_at` (never when `None`).
    pub fn held(mut self, hold_id: HoldId, value: &str, expires_at: Option<DateTime<Utc>>) -> Self {
        let amount = self.currency.fit(dec(value)).expect("test amount");
        self.events.push(AccountEvent::HoldPlaced(HoldPlaced {
            hold_id,
            amount,
            currency: self.currency,
            expires_at,
            reference: None,
        }));
        self
    }

    /// The hold `hold_id` (of `held`) captured for `value`, as a withdrawal.
    pub fn captured(mut self, hold_id: HoldId, value: &str, held: &str) -> Self {
        self.balance -= dec(value);
        self.events.push(AccountEvent::HoldCaptured(HoldCaptured {
            hold_id,
            amount: dec(value),
            released_amount: dec(held) - dec(value),
            currency: self.currency,
            balance_after: self.balance,
            value_date: at(),
            to_account_id: None,
            transfer_id: None,
            reference: None,
        }));
        self
    }

    /// The hold `hold_id` (of `held`) released.
    pub fn released(mut self, hold_id: HoldId, held: &str) -> Self {
        self.events.push(AccountEvent::HoldReleased(HoldReleased {
            hold_id,
            amount: dec(held),
            reason: None,
        }));
        self
    }

    /// The movement `event_id` (a deposit of `value`) reversed already.
    pub fn reversed(mut self, event_id: EventId, value: &str) -> Self {
        let amount = -dec(value);
        self.balance += amount;
        self.events
            .push(AccountEvent::MovementReversed(MovementReversed {
                reversal_id: ReversalId::generate(),
                reversed_event_id: event_id,
                reversed_kind: ReversedKind::Deposit,
                amount,
                currency: self.currency,
                balance_after: self.balance,
                value_date: at(),
                transfer_id: None,
                counterparty_account_id: None,
                reason: "booked twice".into(),
            }));
        self
    }

    /// An adjustment of `signed` requested by `maker`, open for decision until `expires_at`.
    pub fn adjustment_requested(
        mut self,
        adjustment_id: AdjustmentId,
        signed: &str,
        maker: &str,
        expires_at: DateTime<Utc>,
    ) -> Self {
        self.events
            .push(AccountEvent::AdjustmentRequested(AdjustmentRequested {
                adjustment_id,
                amount: dec(signed),
                currency: self.currency,
                reason: "fee charged twice".into(),
                value_date: None,
                evidence: None,
                requested_by: maker.into(),
                expires_at,
            }));
        self
    }

    /// The adjustment `adjustment_id` rejected by `checker`.
    pub fn adjustment_rejected(mut self, adjustment_id: AdjustmentId, checker: &str) -> Self {
        self.events
            .push(AccountEvent::AdjustmentRejected(AdjustmentRejected {
                adjustment_id,
                rejected_by: checker.into(),
                comment: None,
            }));
        self
    }

    /// The account after its history, as `evolve` folds it: opened at [`opened_at`], every
    /// later event recorded at [`at`].
    pub fn state(&self) -> Option<Account> {
        self.events.iter().enumerate().fold(None, |state, (i, e)| {
            evolve(state, e, if i == 0 { opened_at() } else { at() })
        })
    }

    fn movement(&mut self, signed: Decimal) -> Movement {
        let fitted = self.currency.fit(signed.abs()).expect("test amount");
        self.balance = self
            .currency
            .fit(self.balance + signed)
            .expect("test balance");
        Movement {
            amount: fitted,
            currency: self.currency,
            balance_after: self.balance,
            reference: None,
            value_date: at(),
        }
    }
}

pub fn reason(text: &str) -> StatusChange {
    StatusChange {
        reason: text.into(),
    }
}

pub fn given(history: &History) -> Given {
    Given {
        state: history.state(),
        booking: booking(),
    }
}

/// Several accounts, for the commands that touch more than one (captures, reversals).
pub fn given_accounts(histories: &[&History]) -> GivenAccounts {
    GivenAccounts {
        states: histories.iter().map(|h| h.state()).collect(),
        booking: booking(),
    }
}

pub struct GivenAccounts {
    states: Vec<Option<Account>>,
    booking: Booking,
}

impl GivenAccounts {
    pub fn at(mut self, instant: DateTime<Utc>) -> Self {
        self.booking.at = instant;
        self
    }

    /// Decides with periods closed through `end`.
    pub fn closed_through(mut self, end: DateTime<Utc>) -> Self {
        self.booking.closed_through = Some(end);
        self
    }

    /// A capture decided on the first account (and the second as destination, if given).
    pub fn when_capture(self, capture: &CaptureHold) -> ThenMany {
        ThenMany {
            result: decide_capture(
                self.states.first().and_then(Option::as_ref),
                self.states.get(1).and_then(Option::as_ref),
                capture,
                &self.booking,
            ),
        }
    }

    /// A reversal decided on the accounts in the order [`Reverse::accounts`] gives.
    pub fn when_reverse(self, reverse: &Reverse) -> ThenMany {
        let states: Vec<Option<&Account>> = self.states.iter().map(Option::as_ref).collect();
        ThenMany {
            result: decide_reversal(&states, reverse, &self.booking),
        }
    }
}

#[must_use]
pub struct ThenMany {
    pub result: Result<Vec<(AccountId, AccountEvent)>, DomainError>,
}

impl ThenMany {
    pub fn then(self, expected: Vec<(AccountId, AccountEvent)>) {
        assert_eq!(self.result, Ok(expected));
    }

    pub fn then_err(self, expected: DomainError) {
        assert_eq!(self.result.map(|_| ()), Err(expected));
    }

    pub fn then_err_matching(self, matches: impl Fn(&DomainError) -> bool) {
        match self.result {
            Err(e) if matches(&e) => {}
            other => panic!("unexpected outcome: {other:?}"),
        }
    }
}

pub struct Given {
    state: Option<Account>,
    booking: Booking,
}

impl Given {
    /// Decides at `instant` instead of [`at`] (the window moves with it).
    pub fn at(mut self, instant: DateTime<Utc>) -> Self {
        self.booking.at = instant;
        self
    }

    /// Decides with periods closed through `end`.
    pub fn closed_through(mut self, end: DateTime<Utc>) -> Self {
        self.booking.closed_through = Some(end);
        self
    }

    pub fn when(self, command: Command) -> Then {
        Then {
            result: decide(self.state.as_ref(), &command, &self.booking),
        }
    }
}

#[must_use]
pub struct Then {
    result: Result<Vec<AccountEvent>, DomainError>,
}

impl Then {
    pub fn then(self, expected: Vec<AccountEvent>) {
        assert_eq!(self.result, Ok(expected));
    }

    /// The command is accepted; its events.
    pub fn then_ok(self) -> Vec<AccountEvent> {
        match self.result {
            Ok(events) => events,
            Err(e) => panic!("refused: {e}"),
        }
    }

    pub fn then_err(self, expected: DomainError) {
        assert_eq!(self.result, Err(expected));
    }

    pub fn then_err_matching(self, matches: impl Fn(&DomainError) -> bool) {
        match self.result {
            Err(e) if matches(&e) => {}
            other => panic!("unexpected outcome: {other:?}"),
        }
    }
}

pub fn given_transfer(from: &History, to: &History) -> GivenTransfer {
    GivenTransfer {
        from: from.state(),
        to: to.state(),
    }
}

pub struct GivenTransfer {
    from: Option<Account>,
    to: Option<Account>,
}

impl GivenTransfer {
    pub fn when(self, transfer: &Transfer) -> ThenTransfer {
        ThenTransfer {
            result: decide_transfer(self.from.as_ref(), self.to.as_ref(), transfer, &booking()),
        }
    }
}

#[must_use]
pub struct ThenTransfer {
    pub result: Result<(AccountEvent, AccountEvent), DomainError>,
}

impl ThenTransfer {
    pub fn then(self, debit: AccountEvent, credit: AccountEvent) {
        assert_eq!(self.result, Ok((debit, credit)));
    }

    pub fn then_err(self, expected: DomainError) {
        assert_eq!(self.result.map(|_| ()), Err(expected));
    }
}

pub fn open(id: AccountId, currency: &str, limit: &str) -> Command {
    let currency = Currency::parse(currency).expect("test currency");
    Command::Open(OpenAccount {
        account_id: id,
        holder: Holder::parse("Ada Lovelace").expect("holder"),
        currency,
        overdraft_limit: currency.fit(dec(limit)).expect("limit"),
    })
}

pub fn deposit(id: AccountId, value: &str) -> Command {
    Command::Deposit(Deposit {
        account_id: id,
        amount: amount(value),
        reference: None,
        value_date: None,
    })
}

/// A deposit with the value date `value_date`.
pub fn deposit_valued(id: AccountId, value: &str, value_date: DateTime<Utc>) -> Command {
    Command::Deposit(Deposit {
        account_id: id,
        amount: amount(value),
        reference: None,
        value_date: Some(value_date),
    })
}

pub fn withdraw(id: AccountId, value: &str) -> Command {
    Command::Withdraw(Withdraw {
        account_id: id,
        amount: amount(value),
        reference: None,
        value_date: None,
    })
}

pub fn place_hold(
    id: AccountId,
    hold_id: HoldId,
    value: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Command {
    Command::PlaceHold(PlaceHold {
        account_id: id,
        hold_id,
        amount: amount(value),
        expires_at,
        reference: None,
    })
}

/// A capture of `value` (all of the hold when `None`), to `to` when given.
pub fn capture(
    id: AccountId,
    hold_id: HoldId,
    value: Option<&str>,
    to: Option<AccountId>,
) -> CaptureHold {
    CaptureHold {
        account_id: id,
        hold_id,
        amount: value.map(amount),
        to,
        transfer_id: TransferId::generate(),
        value_date: None,
        reference: None,
    }
}

pub fn release(id: AccountId, hold_id: HoldId) -> Command {
    Command::ReleaseHold(ReleaseHold {
        account_id: id,
        hold_id,
        reason: None,
    })
}

/// A reversal of the deposit `event_id` of `value` on `id`.
pub fn reverse_deposit(id: AccountId, event_id: EventId, value: &str) -> Reverse {
    Reverse {
        reversal_id: ReversalId::generate(),
        movement: ReversedMovement::Single {
            account_id: id,
            event_id,
            kind: ReversedKind::Deposit,
            amount: dec(value),
        },
        reason: Reason::parse("booked twice").expect("reason"),
    }
}

/// How long the tests' adjustments wait for a decision.
pub const ADJUSTMENT_EXPIRY_DAYS: i64 = 7;

/// `maker` asks for an adjustment of `signed` (credits > 0) on `id`.
pub fn request_adjustment(
    id: AccountId,
    adjustment_id: AdjustmentId,
    signed: &str,
    maker: &str,
) -> Command {
    Command::RequestAdjustment(RequestAdjustment {
        account_id: id,
        adjustment_id,
        amount: AdjustmentAmount::parse(dec(signed)).expect("test adjustment amount"),
        reason: Reason::parse("fee charged twice").expect("reason"),
        value_date: None,
        evidence: None,
        requested_by: maker.into(),
        expires_after: Duration::days(ADJUSTMENT_EXPIRY_DAYS),
    })
}

fn decision(id: AccountId, adjustment_id: AdjustmentId, checker: &str) -> DecideAdjustment {
    DecideAdjustment {
        account_id: id,
        adjustment_id,
        decided_by: checker.into(),
        comment: None,
    }
}

pub fn approve_adjustment(id: AccountId, adjustment_id: AdjustmentId, checker: &str) -> Command {
    Command::ApproveAdjustment(decision(id, adjustment_id, checker))
}

pub fn reject_adjustment(id: AccountId, adjustment_id: AdjustmentId, checker: &str) -> Command {
    Command::RejectAdjustment(decision(id, adjustment_id, checker))
}

pub fn expire_adjustment(id: AccountId, adjustment_id: AdjustmentId) -> Command {
    Command::ExpireAdjustment(super::ExpireAdjustment {
        account_id: id,
        adjustment_id,
    })
}

pub fn expire(id: AccountId, hold_id: HoldId) -> Command {
    Command::ExpireHold(super::ExpireHold {
        account_id: id,
        hold_id,
    })
}

pub fn freeze(id: AccountId) -> Command {
    Command::Freeze(status(id, "review"))
}

pub fn unfreeze(id: AccountId) -> Command {
    Command::Unfreeze(status(id, "cleared"))
}

pub fn close(id: AccountId) -> Command {
    Command::Close(status(id, "customer request"))
}

fn status(id: AccountId, text: &str) -> ChangeStatus {
    ChangeStatus {
        account_id: id,
        reason: Reason::parse(text).expect("reason"),
    }
}

pub fn transfer(from: &History, to: &History, value: &str) -> Transfer {
    Transfer {
        transfer_id: TransferId::generate(),
        from: from.id,
        to: to.id,
        amount: amount(value),
        reference: None,
        value_date: None,
    }
}
