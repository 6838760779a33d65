//! Deposits, withdrawals and transfers: money in, money out, money across.

use ledger::{
    AccountEvent,
    events::{Movement, TransferCredited, TransferDebited},
};
use rust_decimal::Decimal;

use super::{
    Account, Booking, Deposit, DomainError, Transfer, Withdraw, ensure_covers,
    ensure_takes_credits, ensure_takes_debits, money_for, text,
};

pub(super) fn deposit(
    account: &Account,
    deposit: &Deposit,
    booking: &Booking,
) -> Result<AccountEvent, DomainError> {
    ensure_takes_credits(account)?;
    let money = money_for(account, deposit.amount)?;
    let value_date = booking.value_date(deposit.value_date)?;
    Ok(AccountEvent::MoneyDeposited(Movement {
        amount: money.amount(),
        currency: account.currency,
        balance_after: account.balance + money.amount(),
        reference: text::optional(&deposit.reference),
        value_date,
    }))
}

pub(super) fn withdraw(
    account: &Account,
    withdraw: &Withdraw,
    booking: &Booking,
) -> Result<AccountEvent, DomainError> {
    ensure_takes_debits(account)?;
    let money = money_for(account, withdraw.amount)?;
    ensure_covers(account, money.amount(), booking.at)?;
    let value_date = booking.value_date(withdraw.value_date)?;
    Ok(AccountEvent::MoneyWithdrawn(Movement {
        amount: money.amount(),
        currency: account.currency,
        balance_after: account.balance - money.amount(),
        reference: text::optional(&withdraw.reference),
        value_date,
    }))
}

/// Decides a transfer: the debit leg for the source and the credit leg for the destination.
pub fn decide_transfer(
    from: Option<&Account>,
    to: Option<&Account>,
    transfer: &Transfer,
    booking: &Booking,
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
    ensure_covers(from, money.amount(), booking.at)?;
    let value_date = booking.value_date(transfer.value_date)?;
    let reference = text::optional(&transfer.reference);
    let debit = TransferDebited {
        transfer_id: transfer.transfer_id,
        to_account_id: to.id,
        amount: money.amount(),
        currency: from.currency,
        balance_after: from.balance - money.amount(),
        reference: reference.clone(),
        value_date,
    };
    let credit = TransferCredited {
        transfer_id: transfer.transfer_id,
        from_account_id: from.id,
        amount: money.amount(),
        currency: to.currency,
        balance_after: to.balance + money.amount(),
        reference,
        value_date,
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
