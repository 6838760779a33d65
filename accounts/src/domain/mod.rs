//! The Account aggregate: commands, a pure `decide` that turns a command into events or a
//! refusal, and a pure `evolve` that folds events into state.
//!
//! Rules (DESIGN.md, "Money"): amounts are positive, below the maximum and have no
//! more decimal places than the account's currency; no debit may take the balance
//! below minus the overdraft limit; frozen accounts take no debits or credits;
//! closed accounts take nothing; an account closes only at zero balance; a transfer
//! needs two distinct open accounts of one currency, and its legs sum to zero.

mod text;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use ledger::{
    AccountEvent, AccountId, Currency, ErrorCode, Money, MoneyError, PositiveAmount, TransferId,
    events::{AccountOpened, Movement, StatusChange, TransferCredited, TransferDebited},
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use text::{Holder, Reason, Reference, TextError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    Open,
    Frozen,
    Closed,
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
}

impl Account {
    /// How much may be debited without breaching the overdraft limit.
    pub fn available(&self) -> Decimal {
        self.balance + self.overdraft_limit
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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdraw {
    pub account_id: AccountId,
    pub amount: PositiveAmount,
    pub reference: Option<Reference>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub transfer_id: TransferId,
    pub from: AccountId,
    pub to: AccountId,
    pub amount: PositiveAmount,
    pub reference: Option<Reference>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeStatus {
    pub account_id: AccountId,
    pub reason: Reason,
}

/// A command on one account. Transfers touch two and are decided by [`decide_transfer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Open(OpenAccount),
    Deposit(Deposit),
    Withdraw(Withdraw),
    Freeze(ChangeStatus),
    Unfreeze(ChangeStatus),
    Close(ChangeStatus),
}

impl Command {
    pub fn account_id(&self) -> AccountId {
        match self {
            Self::Open(c) => c.account_id,
            Self::Deposit(c) => c.account_id,
            Self::Withdraw(c) => c.account_id,
            Self::Freeze(c) | Self::Unfreeze(c) | Self::Close(c) => c.account_id,
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
        "{requested} {currency} exceeds what account {account_id} can pay ({available} {currency}: balance plus overdraft limit)"
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
}

impl DomainError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::AccountNotFound(_) => ErrorCode::AccountNotFound,
            Self::AccountAlreadyExists(_) | Self::NotFrozen(_) => ErrorCode::Validation,
            Self::AccountFrozen(_) | Self::AlreadyFrozen(_) => ErrorCode::AccountFrozen,
            Self::AccountClosed(_) => ErrorCode::AccountClosed,
            Self::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            Self::CurrencyMismatch { .. } => ErrorCode::CurrencyMismatch,
            Self::InvalidAmount(_) => ErrorCode::InvalidAmount,
            Self::SameAccount => ErrorCode::SameAccount,
            Self::NonzeroBalance { .. } => ErrorCode::NonzeroBalance,
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
            | Self::NonzeroBalance { account_id: id, .. } => Subject::Account(*id),
            Self::CurrencyMismatch { to_account, .. } => Subject::Account(*to_account),
            Self::InsufficientFunds { .. } | Self::InvalidAmount(_) => Subject::Amount,
            Self::SameAccount => Subject::Counterparty,
        }
    }
}

/// Decides a single-account command against the account's current state.
pub fn decide(
    state: Option<&Account>,
    command: &Command,
) -> Result<Vec<AccountEvent>, DomainError> {
    let event = match (state, command) {
        (None, Command::Open(open)) => AccountEvent::AccountOpened(AccountOpened {
            account_id: open.account_id,
            holder: open.holder.as_str().to_string(),
            currency: open.currency,
            overdraft_limit: open.overdraft_limit,
        }),
        (Some(account), Command::Open(_)) => {
            return Err(DomainError::AccountAlreadyExists(account.id));
        }
        (None, other) => return Err(DomainError::AccountNotFound(other.account_id())),
        (Some(account), Command::Deposit(deposit)) => {
            ensure_takes_credits(account)?;
            let money = money_for(account, deposit.amount)?;
            AccountEvent::MoneyDeposited(Movement {
                amount: money.amount(),
                currency: account.currency,
                balance_after: account.balance + money.amount(),
                reference: text::optional(&deposit.reference),
            })
        }
        (Some(account), Command::Withdraw(withdraw)) => {
            ensure_takes_debits(account)?;
            let money = money_for(account, withdraw.amount)?;
            ensure_covers(account, money)?;
            AccountEvent::MoneyWithdrawn(Movement {
                amount: money.amount(),
                currency: account.currency,
                balance_after: account.balance - money.amount(),
                reference: text::optional(&withdraw.reference),
            })
        }
        (Some(account), Command::Freeze(change)) => match account.status {
            AccountStatus::Open => AccountEvent::AccountFrozen(status_change(change)),
            AccountStatus::Frozen => return Err(DomainError::AlreadyFrozen(account.id)),
            AccountStatus::Closed => return Err(DomainError::AccountClosed(account.id)),
        },
        (Some(account), Command::Unfreeze(change)) => match account.status {
            AccountStatus::Frozen => AccountEvent::AccountUnfrozen(status_change(change)),
            AccountStatus::Open => return Err(DomainError::NotFrozen(account.id)),
            AccountStatus::Closed => return Err(DomainError::AccountClosed(account.id)),
        },
        (Some(account), Command::Close(change)) => {
            if account.status == AccountStatus::Closed {
                return Err(DomainError::AccountClosed(account.id));
            }
            if !account.balance.is_zero() {
                return Err(DomainError::NonzeroBalance {
                    account_id: account.id,
                    balance: account.balance,
                    currency: account.currency,
                });
            }
            AccountEvent::AccountClosed(status_change(change))
        }
    };
    Ok(vec![event])
}

/// Decides a transfer: the debit leg for the source and the credit leg for the destination.
pub fn decide_transfer(
    from: Option<&Account>,
    to: Option<&Account>,
    transfer: &Transfer,
) -> Result<(AccountEvent, AccountEvent), DomainError> {
    if transfer.from == transfer.to {
        return Err(DomainError::SameAccount);
    }
    let from = from.ok_or(DomainError::AccountNotFound(transfer.from))?;
    let to = to.ok_or(DomainError::AccountNotFound(transfer.to))?;
    ensure_takes_debits(from)?;
    ensure_takes_credits(to)?;
    if from.currency != to.currency {
        return Err(DomainError::CurrencyMismatch {
            from: from.currency,
            to: to.currency,
            to_account: to.id,
        });
    }
    let money = money_for(from, transfer.amount)?;
    ensure_covers(from, money)?;
    let reference = text::optional(&transfer.reference);
    let debit = TransferDebited {
        transfer_id: transfer.transfer_id,
        to_account_id: to.id,
        amount: money.amount(),
        currency: from.currency,
        balance_after: from.balance - money.amount(),
        reference: reference.clone(),
    };
    let credit = TransferCredited {
        transfer_id: transfer.transfer_id,
        from_account_id: from.id,
        amount: money.amount(),
        currency: to.currency,
        balance_after: to.balance + money.amount(),
        reference,
    };
    // A transfer moves money; it never creates or destroys it.
    assert_eq!(
        (from.balance - debit.balance_after) - (credit.balance_after - to.balance),
        Decimal::ZERO,
        "transfer legs must sum to zero"
    );
    Ok((
        AccountEvent::TransferDebited(debit),
        AccountEvent::TransferCredited(credit),
    ))
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
            }),
            // A stream that does not start with AccountOpened is corrupt; the store refuses it.
            _ => None,
        };
    };
    match event {
        AccountEvent::AccountOpened(_) => {}
        AccountEvent::MoneyDeposited(m) | AccountEvent::MoneyWithdrawn(m) => {
            account.balance = m.balance_after
        }
        AccountEvent::TransferDebited(t) => account.balance = t.balance_after,
        AccountEvent::TransferCredited(t) => account.balance = t.balance_after,
        AccountEvent::AccountFrozen(_) => account.status = AccountStatus::Frozen,
        AccountEvent::AccountUnfrozen(_) => account.status = AccountStatus::Open,
        AccountEvent::AccountClosed(_) => account.status = AccountStatus::Closed,
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

fn ensure_covers(account: &Account, money: Money) -> Result<(), DomainError> {
    if money.amount() > account.available() {
        return Err(DomainError::InsufficientFunds {
            account_id: account.id,
            requested: money.amount(),
            available: account.available(),
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
