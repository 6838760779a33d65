//! The four-eyes adjustment commands as the writer runs them: request, approve (posts the
//! money in the same event), reject, and the sweep's expiry; each answers with the
//! adjustment as it now stands and its account.

use ledger::{AccountEvent, AccountId, AdjustmentId};
use serde::{Deserialize, Serialize};

use super::{Command, CommandError, States, Written};
use crate::{
    domain::{
        self, Account, Adjustment, Booking, DecideAdjustment, DomainError, ExpireAdjustment,
        RequestAdjustment,
    },
    store::{AdjustmentRecord, EventStore},
};

/// The adjustment `adjustment_id` as the adjustment index records it (a decision names
/// only the adjustment; this says which account it is on). ADJUSTMENT_NOT_FOUND when none
/// was requested.
pub async fn find_adjustment(
    store: &EventStore,
    adjustment_id: AdjustmentId,
) -> Result<AdjustmentRecord, CommandError> {
    store
        .adjustment(adjustment_id)
        .await?
        .ok_or_else(|| DomainError::AdjustmentNotFound(adjustment_id).into())
}

/// The answer to an adjustment command: the adjustment after it, and its account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentOutcome {
    pub adjustment: Adjustment,
    pub account: Account,
    /// The event the command wrote (an approval's is the posting: ADJUSTMENT in statements).
    pub event_id: ledger::EventId,
    pub position: i64,
    pub booked_at: chrono::DateTime<chrono::Utc>,
}

/// The adjustment as the command left it: folded from the one before (none for a request)
/// and the command's own event.
fn outcome(
    written: &Written,
    account_id: AccountId,
    adjustment_id: AdjustmentId,
) -> AdjustmentOutcome {
    let before = written
        .before
        .get(&account_id)
        .and_then(|a| a.adjustments.get(&adjustment_id))
        .cloned();
    let event = written
        .events
        .iter()
        .rev()
        .find(|e| e.stream_id == account_id)
        .expect("an adjustment command writes on its account");
    let decoded = event
        .decode()
        .expect("an event the writer just decided decodes");
    let adjustment = Adjustment::evolve(before, account_id, &decoded, event.recorded_at)
        .expect("an adjustment command's event concerns its adjustment");
    AdjustmentOutcome {
        adjustment,
        account: written.account(account_id),
        event_id: event.event_id,
        position: written.position(),
        booked_at: written.booked_at(),
    }
}

fn decide_on(
    states: &dyn States,
    id: AccountId,
    command: domain::Command,
    booking: &Booking,
) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
    let events = domain::decide(states.account(id), &command, booking)?;
    Ok(events.into_iter().map(|e| (id, e)).collect())
}

/// One command of an adjustment's life: it touches only the adjustment's account, and its
/// answer is the adjustment as the written events leave it.
macro_rules! adjustment_command {
    ($(#[$doc:meta])* $name:ident($input:ty), $label:literal, $variant:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(pub $input);

        impl Command for $name {
            type Output = AdjustmentOutcome;

            fn name(&self) -> &'static str {
                $label
            }

            fn streams(&self) -> Vec<AccountId> {
                vec![self.0.account_id]
            }

            fn decide(
                &self,
                states: &dyn States,
                booking: &Booking,
            ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
                let command = domain::Command::$variant(self.0.clone());
                decide_on(states, self.0.account_id, command, booking)
            }

            fn output(&self, written: &Written) -> AdjustmentOutcome {
                outcome(written, self.0.account_id, self.0.adjustment_id)
            }
        }
    };
}

adjustment_command!(
    /// Ask for a correction (teller or supervisor): `requestAdjustment`.
    RequestAdjustmentCommand(RequestAdjustment),
    "requestAdjustment",
    RequestAdjustment
);
adjustment_command!(
    /// Approve a pending adjustment and post it (supervisor, not its maker): `approveAdjustment`.
    ApproveAdjustmentCommand(DecideAdjustment),
    "approveAdjustment",
    ApproveAdjustment
);
adjustment_command!(
    /// Turn a pending adjustment down (supervisor): `rejectAdjustment`.
    RejectAdjustmentCommand(DecideAdjustment),
    "rejectAdjustment",
    RejectAdjustment
);
adjustment_command!(
    /// Record that an adjustment expired undecided (the sweep).
    ExpireAdjustmentCommand(ExpireAdjustment),
    "expireAdjustment",
    ExpireAdjustment
);
