//! Given / when / then for the Account aggregate: a history of events, a command, and the
//! events or the refusal expected.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use ledger::{
    AccountEvent, AccountId, Currency, PositiveAmount, TransferId,
    events::{AccountOpened, Movement, StatusChange},
};
use rust_decimal::Decimal;

use super::{
    Account, ChangeStatus, Command, Deposit, DomainError, Holder, OpenAccount, Reason, Transfer,
    Withdraw, decide, decide_transfer, evolve,
};

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

    /// The account after its history, as `evolve` folds it.
    pub fn state(&self) -> Option<Account> {
        self.events
            .iter()
            .fold(None, |state, e| evolve(state, e, at()))
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
    }
}

pub struct Given {
    state: Option<Account>,
}

impl Given {
    pub fn when(self, command: Command) -> Then {
        Then {
            result: decide(self.state.as_ref(), &command),
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
            result: decide_transfer(self.from.as_ref(), self.to.as_ref(), transfer),
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
    })
}

pub fn withdraw(id: AccountId, value: &str) -> Command {
    Command::Withdraw(Withdraw {
        account_id: id,
        amount: amount(value),
        reference: None,
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
    }
}
