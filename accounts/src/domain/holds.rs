//! Holds (two-phase debits): a card authorisation reserves funds now; they are captured
//! (in full or in part, the rest released), released, or left to expire. Holds live in the
//! account aggregate, so the available balance is decided with the same expected versions
//! as every debit (DESIGN.md, "Holds").

use chrono::{DateTime, Utc};
use ledger::{
    AccountEvent, AccountId, HoldId, PositiveAmount, TransferId,
    events::{HoldCaptured, HoldExpired, HoldPlaced, HoldReleased, TransferCredited},
};

use super::{
    Account, AccountStatus, Booking, DomainError, Hold, Reason, Reference, ensure_covers,
    ensure_takes_credits, ensure_takes_debits, money_for, text,
};

/// Reserve `amount` on the account until `expires_at` (none: until settled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceHold {
    pub account_id: AccountId,
    pub hold_id: HoldId,
    pub amount: PositiveAmount,
    pub expires_at: Option<DateTime<Utc>>,
    pub reference: Option<Reference>,
}

/// Take `amount` of a hold (all of it when `None`) and free the rest: a withdrawal, or a
/// transfer to `to` when given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureHold {
    pub account_id: AccountId,
    pub hold_id: HoldId,
    pub amount: Option<PositiveAmount>,
    pub to: Option<AccountId>,
    /// The transfer's id when `to` is given.
    pub transfer_id: TransferId,
    pub value_date: Option<DateTime<Utc>>,
    pub reference: Option<Reference>,
}

/// Free a hold without taking anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseHold {
    pub account_id: AccountId,
    pub hold_id: HoldId,
    pub reason: Option<Reason>,
}

/// Record that a hold reached its expiry (the sweep's command).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpireHold {
    pub account_id: AccountId,
    pub hold_id: HoldId,
}

pub(super) fn place(
    account: &Account,
    place: &PlaceHold,
    booking: &Booking,
) -> Result<AccountEvent, DomainError> {
    ensure_takes_debits(account)?;
    if account.holds.contains_key(&place.hold_id) {
        return Err(DomainError::HoldAlreadyExists(place.hold_id));
    }
    let money = money_for(account, place.amount)?;
    if let Some(expires_at) = place.expires_at
        && expires_at <= booking.at
    {
        return Err(DomainError::ExpiryInThePast {
            expires_at,
            now: booking.at,
        });
    }
    ensure_covers(account, money.amount(), booking.at)?;
    Ok(AccountEvent::HoldPlaced(HoldPlaced {
        hold_id: place.hold_id,
        amount: money.amount(),
        currency: account.currency,
        expires_at: place.expires_at,
        reference: text::optional(&place.reference),
    }))
}

/// The hold, if it is still active at the booking instant.
fn active<'a>(
    account: &'a Account,
    hold_id: HoldId,
    booking: &Booking,
) -> Result<&'a Hold, DomainError> {
    let hold = account
        .holds
        .get(&hold_id)
        .ok_or_else(|| DomainError::HoldNotActive {
            hold_id,
            why: "it has been captured, released or expired".into(),
        })?;
    if !hold.is_active_at(booking.at) {
        return Err(DomainError::HoldNotActive {
            hold_id,
            why: format!(
                "it expired at {}",
                hold.expires_at
                    .as_ref()
                    .map_or_else(String::new, super::instant)
            ),
        });
    }
    Ok(hold)
}

/// Decides a capture: the source's HoldCaptured, and with a destination its credit leg.
pub fn decide_capture(
    source: Option<&Account>,
    destination: Option<&Account>,
    capture: &CaptureHold,
    booking: &Booking,
) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
    let source = source.ok_or(DomainError::HoldNotFound(capture.hold_id))?;
    let hold = active(source, capture.hold_id, booking)?;
    ensure_takes_debits(source)?;
    let amount = match capture.amount {
        Some(requested) => {
            let money = money_for(source, requested)?;
            if money.amount() > hold.amount {
                return Err(DomainError::CaptureExceedsHold {
                    hold_id: capture.hold_id,
                    requested: money.amount(),
                    held: hold.amount,
                    currency: source.currency,
                });
            }
            money.amount()
        }
        None => hold.amount,
    };
    // A capture without a reference of its own keeps the hold's (the authorisation's).
    let reference = text::optional(&capture.reference).or_else(|| hold.reference.clone());
    let mut events = Vec::with_capacity(2);
    let destination = match capture.to {
        Some(to) => {
            if to == source.id {
                return Err(DomainError::SameAccount);
            }
            let destination = destination.ok_or(DomainError::AccountNotFound(to))?;
            ensure_takes_credits(destination)?;
            if destination.currency != source.currency {
                return Err(DomainError::CurrencyMismatch {
                    from: source.currency,
                    to: destination.currency,
                    to_account: destination.id,
                });
            }
            Some(destination)
        }
        None => None,
    };
    let value_date = booking.value_date(capture.value_date)?;
    events.push((
        source.id,
        AccountEvent::HoldCaptured(HoldCaptured {
            hold_id: capture.hold_id,
            amount,
            released_amount: hold.amount - amount,
            currency: source.currency,
            balance_after: source.balance - amount,
            value_date,
            to_account_id: destination.map(|d| d.id),
            transfer_id: destination.map(|_| capture.transfer_id),
            reference: reference.clone(),
        }),
    ));
    if let Some(destination) = destination {
        events.push((
            destination.id,
            AccountEvent::TransferCredited(TransferCredited {
                transfer_id: capture.transfer_id,
                from_account_id: source.id,
                amount,
                currency: destination.currency,
                balance_after: destination.balance + amount,
                reference,
                value_date,
            }),
        ));
    }
    Ok(events)
}

pub(super) fn release(
    account: &Account,
    release: &ReleaseHold,
    booking: &Booking,
) -> Result<AccountEvent, DomainError> {
    // A frozen account may still have its holds released; a closed one has none.
    if account.status == AccountStatus::Closed {
        return Err(DomainError::AccountClosed(account.id));
    }
    let hold = active(account, release.hold_id, booking)?;
    Ok(AccountEvent::HoldReleased(HoldReleased {
        hold_id: release.hold_id,
        amount: hold.amount,
        reason: release.reason.as_ref().map(|r| r.as_str().to_string()),
    }))
}

pub(super) fn expire(
    account: &Account,
    expire: &ExpireHold,
    booking: &Booking,
) -> Result<AccountEvent, DomainError> {
    let hold = account
        .holds
        .get(&expire.hold_id)
        .ok_or_else(|| DomainError::HoldNotActive {
            hold_id: expire.hold_id,
            why: "it has been captured, released or expired".into(),
        })?;
    if hold.is_active_at(booking.at) {
        return Err(DomainError::HoldNotActive {
            hold_id: expire.hold_id,
            why: "it has not reached its expiry".into(),
        });
    }
    Ok(AccountEvent::HoldExpired(HoldExpired {
        hold_id: expire.hold_id,
        amount: hold.amount,
    }))
}
