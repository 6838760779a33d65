//! Reversals: a mistaken movement is undone by new, linked events, never by an edit. One
//! leg for a deposit, a withdrawal or a hold capture; both legs, in one transaction, for a
//! transfer. At most once per movement, and within the accounts' limits (reversing a
//! deposit whose money is gone is INSUFFICIENT_FUNDS).

use ledger::{
    AccountEvent, AccountId, EventId, ReversalId, TransferId,
    events::{MovementReversed, ReversedKind},
};
use rust_decimal::Decimal;

use super::{
    Account, Booking, DomainError, Reason, ensure_covers, ensure_takes_credits, ensure_takes_debits,
};

/// A movement as the event store recorded it, found by the edge from the id the client gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReversedMovement {
    /// A deposit, withdrawal or hold capture on one account.
    Single {
        account_id: AccountId,
        event_id: EventId,
        kind: ReversedKind,
        /// The amount it moved (positive).
        amount: Decimal,
    },
    /// Both legs of a transfer (or of a hold captured to another account).
    Transfer {
        transfer_id: TransferId,
        from: AccountId,
        to: AccountId,
        debit_event_id: EventId,
        debit_kind: ReversedKind,
        credit_event_id: EventId,
        amount: Decimal,
    },
}

/// The movement the event `event_id` of `account_id` recorded, when it is one a reversal
/// names by event id: a deposit, a withdrawal or a hold capture that was not a transfer.
/// NOT_REVERSIBLE for a transfer's leg (reversed by its transfer id, both legs together),
/// a reversal, and every event that moves no money.
pub fn movement_of(
    account_id: AccountId,
    event_id: EventId,
    event: &AccountEvent,
) -> Result<ReversedMovement, DomainError> {
    let single = |kind, amount| ReversedMovement::Single {
        account_id,
        event_id,
        kind,
        amount,
    };
    let refuse = |why: &str| DomainError::NotReversible {
        what: format!("event {event_id} ({})", event.event_type()),
        why: why.to_string(),
    };
    match event {
        AccountEvent::MoneyDeposited(m) => Ok(single(ReversedKind::Deposit, m.amount)),
        AccountEvent::MoneyWithdrawn(m) => Ok(single(ReversedKind::Withdrawal, m.amount)),
        AccountEvent::HoldCaptured(c) if c.transfer_id.is_none() => {
            Ok(single(ReversedKind::HoldCapture, c.amount))
        }
        AccountEvent::HoldCaptured(_)
        | AccountEvent::TransferDebited(_)
        | AccountEvent::TransferCredited(_) => Err(refuse(
            "it is one leg of a transfer; reverse the transfer by its transferId",
        )),
        AccountEvent::MovementReversed(_) => Err(refuse("a reversal is not itself reversed")),
        AccountEvent::AdjustmentPosted(_) => Err(refuse(
            "an approved adjustment is corrected by another adjustment, under four eyes",
        )),
        AccountEvent::AdjustmentRequested(_)
        | AccountEvent::AdjustmentRejected(_)
        | AccountEvent::AdjustmentExpired(_) => Err(refuse("it moves no money")),
        AccountEvent::AccountOpened(_)
        | AccountEvent::AccountFrozen(_)
        | AccountEvent::AccountUnfrozen(_)
        | AccountEvent::AccountClosed(_)
        | AccountEvent::HoldPlaced(_)
        | AccountEvent::HoldReleased(_)
        | AccountEvent::HoldExpired(_) => Err(refuse(
            "it moves no money; only deposits, withdrawals, hold captures and transfers are reversed",
        )),
    }
}

/// One stored leg of a transfer: its account, its event id and the event.
pub type TransferLeg = (AccountId, EventId, AccountEvent);

/// The transfer `transfer_id` made of `legs` (its debit, a TransferDebited or a
/// HoldCaptured, and its TransferCredited). MOVEMENT_NOT_FOUND without any leg; `None`
/// when only one leg exists (a corrupt store, not the client's error).
pub fn transfer_of(
    transfer_id: TransferId,
    legs: &[TransferLeg],
) -> Result<Option<ReversedMovement>, DomainError> {
    let mut debit = None;
    let mut credit = None;
    for (account_id, event_id, event) in legs {
        match event {
            AccountEvent::TransferDebited(d) => {
                debit = Some((*account_id, *event_id, ReversedKind::TransferOut, d.amount))
            }
            AccountEvent::HoldCaptured(c) if c.transfer_id == Some(transfer_id) => {
                debit = Some((*account_id, *event_id, ReversedKind::HoldCapture, c.amount))
            }
            AccountEvent::TransferCredited(_) => credit = Some((*account_id, *event_id)),
            _ => {}
        }
    }
    match (debit, credit) {
        (Some((from, debit_event_id, debit_kind, amount)), Some((to, credit_event_id))) => {
            Ok(Some(ReversedMovement::Transfer {
                transfer_id,
                from,
                to,
                debit_event_id,
                debit_kind,
                credit_event_id,
                amount,
            }))
        }
        (None, None) => Err(DomainError::MovementNotFound(transfer_id.to_string())),
        _ => Ok(None),
    }
}

/// Undo `movement`, for `reason` (supervisor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reverse {
    pub reversal_id: ReversalId,
    pub movement: ReversedMovement,
    pub reason: Reason,
}

impl Reverse {
    /// The accounts the reversal writes to.
    pub fn accounts(&self) -> Vec<AccountId> {
        Self::accounts_of(&self.movement)
    }

    /// The accounts a reversal of `movement` writes to: its account, or the transfer's
    /// source and destination.
    pub fn accounts_of(movement: &ReversedMovement) -> Vec<AccountId> {
        match movement {
            ReversedMovement::Single { account_id, .. } => vec![*account_id],
            ReversedMovement::Transfer { from, to, .. } => vec![*from, *to],
        }
    }
}

/// One compensating leg: `account` changes by `signed` for the movement `event_id`.
struct Leg<'a> {
    account: &'a Account,
    event_id: EventId,
    kind: ReversedKind,
    signed: Decimal,
    counterparty: Option<AccountId>,
}

/// Decides a reversal against the accounts it touches (`accounts` in [`Reverse::accounts`]
/// order): one MovementReversed per leg.
pub fn decide_reversal(
    accounts: &[Option<&Account>],
    reverse: &Reverse,
    booking: &Booking,
) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
    let ids = reverse.accounts();
    let account = |i: usize| {
        accounts
            .get(i)
            .copied()
            .flatten()
            .ok_or(DomainError::AccountNotFound(ids[i]))
    };
    let (legs, transfer_id) = match &reverse.movement {
        ReversedMovement::Single {
            event_id,
            kind,
            amount,
            ..
        } => {
            let signed = match kind {
                ReversedKind::Deposit | ReversedKind::TransferIn => -*amount,
                ReversedKind::Withdrawal
                | ReversedKind::HoldCapture
                | ReversedKind::TransferOut => *amount,
            };
            let leg = Leg {
                account: account(0)?,
                event_id: *event_id,
                kind: *kind,
                signed,
                counterparty: None,
            };
            (vec![leg], None)
        }
        ReversedMovement::Transfer {
            transfer_id,
            from,
            to,
            debit_event_id,
            debit_kind,
            credit_event_id,
            amount,
        } => {
            let source = Leg {
                account: account(0)?,
                event_id: *debit_event_id,
                kind: *debit_kind,
                signed: *amount,
                counterparty: Some(*to),
            };
            let destination = Leg {
                account: account(1)?,
                event_id: *credit_event_id,
                kind: ReversedKind::TransferIn,
                signed: -*amount,
                counterparty: Some(*from),
            };
            (vec![source, destination], Some(*transfer_id))
        }
    };
    let mut events = Vec::with_capacity(legs.len());
    for leg in &legs {
        if leg.account.reversed.contains(&leg.event_id) {
            return Err(DomainError::AlreadyReversed(match transfer_id {
                Some(transfer) => format!("transfer {transfer}"),
                None => format!("movement {}", leg.event_id),
            }));
        }
        if leg.signed < Decimal::ZERO {
            ensure_takes_debits(leg.account)?;
            ensure_covers(leg.account, -leg.signed, booking.at)?;
        } else {
            ensure_takes_credits(leg.account)?;
        }
        events.push((
            leg.account.id,
            AccountEvent::MovementReversed(MovementReversed {
                reversal_id: reverse.reversal_id,
                reversed_event_id: leg.event_id,
                reversed_kind: leg.kind,
                amount: leg.signed,
                currency: leg.account.currency,
                balance_after: leg.account.balance + leg.signed,
                value_date: booking.value_date(None)?,
                transfer_id,
                counterparty_account_id: leg.counterparty,
                reason: reverse.reason.as_str().to_string(),
            }),
        ));
    }
    // Reversing a transfer moves money back; it never creates or destroys it.
    let net: Decimal = legs.iter().map(|l| l.signed).sum();
    assert!(
        legs.len() == 1 || net.is_zero(),
        "a transfer's reversal legs must sum to zero"
    );
    Ok(events)
}
