//! The reversal command as the writer runs it, and how the edge finds the movement a
//! client names: by `eventId` (a deposit, a withdrawal or a hold capture) or by
//! `transferId` (both legs of a transfer, or of a hold captured to another account).

use ledger::{AccountEvent, AccountId, EventId, RecordedEvent, ReversalId, TransferId};
use serde::{Deserialize, Serialize};

use super::{Command, CommandError, States, Written};
use crate::{
    domain::{
        Account, Booking, DomainError, Reverse, ReversedMovement, TransferLeg, decide_reversal,
        movement_of, transfer_of,
    },
    store::{EventStore, StoreError},
};

/// The answer to a reversal: every account it wrote to, after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReversalOutcome {
    pub reversal_id: ReversalId,
    pub accounts: Vec<Account>,
    pub position: i64,
    /// When it was booked: what the answer's available balances are as of, also when it
    /// is given again to a retry. `None` in answers stored before it was recorded.
    #[serde(default)]
    pub booked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Undo a movement (supervisor): `reverse`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReverseCommand(pub Reverse);

impl Command for ReverseCommand {
    type Output = ReversalOutcome;

    fn name(&self) -> &'static str {
        "reverse"
    }

    fn streams(&self) -> Vec<AccountId> {
        self.0.accounts()
    }

    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
        let accounts: Vec<Option<&Account>> = self
            .0
            .accounts()
            .into_iter()
            .map(|id| states.account(id))
            .collect();
        decide_reversal(&accounts, &self.0, booking)
    }

    fn output(&self, written: &Written) -> ReversalOutcome {
        ReversalOutcome {
            reversal_id: self.0.reversal_id,
            accounts: self
                .0
                .accounts()
                .into_iter()
                .map(|id| written.account(id))
                .collect(),
            position: written.position(),
            booked_at: Some(written.booked_at()),
        }
    }
}

/// What a client names to reverse (`ReverseInput`: exactly one of the two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReversalTarget {
    Event(EventId),
    Transfer(TransferId),
}

/// Finds the movement `target` names in the event store. MOVEMENT_NOT_FOUND when there is
/// none; NOT_REVERSIBLE when the event moves no money on its own (an opening, a status
/// change, a hold placed or settled without a capture, a reversal) or is one leg of a
/// transfer (reversed by its `transferId`, both legs together).
pub async fn find_movement(
    store: &EventStore,
    target: ReversalTarget,
) -> Result<ReversedMovement, CommandError> {
    match target {
        ReversalTarget::Event(event_id) => {
            let event = store
                .event(event_id)
                .await?
                .ok_or_else(|| DomainError::MovementNotFound(event_id.to_string()))?;
            single_movement(&event)
        }
        ReversalTarget::Transfer(transfer_id) => {
            let legs = store.transfer_legs(transfer_id).await?;
            transfer_movement(transfer_id, &legs)
        }
    }
}

fn corrupt(event: &RecordedEvent, error: impl std::fmt::Display) -> CommandError {
    CommandError::from(StoreError::Corrupt {
        stream_id: event.stream_id,
        reason: error.to_string(),
    })
}

fn single_movement(event: &RecordedEvent) -> Result<ReversedMovement, CommandError> {
    let decoded = event.decode().map_err(|e| corrupt(event, e))?;
    Ok(movement_of(event.stream_id, event.event_id, &decoded)?)
}

fn transfer_movement(
    transfer_id: TransferId,
    legs: &[RecordedEvent],
) -> Result<ReversedMovement, CommandError> {
    let decoded = legs
        .iter()
        .map(|leg| {
            Ok((
                leg.stream_id,
                leg.event_id,
                leg.decode().map_err(|e| corrupt(leg, e))?,
            ))
        })
        .collect::<Result<Vec<TransferLeg>, CommandError>>()?;
    transfer_of(transfer_id, &decoded)?
        .ok_or_else(|| corrupt(&legs[0], format!("transfer {transfer_id} has only one leg")))
}
