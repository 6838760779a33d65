//! The hold commands as the writer runs them: place, capture (a withdrawal, or a transfer
//! with a destination), release, and the sweep's expiry; each answers with the hold as it
//! now stands and its account.

use chrono::{DateTime, Utc};
use ledger::{AccountEvent, AccountId, EventId, HoldId, TransferId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Command, CommandError, States, Written};
use crate::{
    domain::{
        self, Account, Booking, CaptureHold, DomainError, ExpireHold, PlaceHold, ReleaseHold,
    },
    store::{EventStore, HoldRecord, HoldStatus},
};

/// The hold `hold_id` as the hold index records it (a capture or release names only the
/// hold; this says which account it is on). HOLD_NOT_FOUND when no such hold was placed.
pub async fn find_hold(store: &EventStore, hold_id: HoldId) -> Result<HoldRecord, CommandError> {
    store
        .hold(hold_id)
        .await?
        .ok_or_else(|| DomainError::HoldNotFound(hold_id).into())
}

/// A hold as a command leaves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldView {
    pub id: HoldId,
    pub account_id: AccountId,
    /// What it reserved.
    pub amount: Decimal,
    pub captured_amount: Option<Decimal>,
    pub to_account_id: Option<AccountId>,
    pub status: HoldStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub reference: Option<String>,
    pub placed_at: DateTime<Utc>,
}

/// The answer to a hold command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldOutcome {
    pub hold: HoldView,
    pub account: Account,
    /// The event the command wrote on the hold's account (a capture's: reverse it by this
    /// id, or by `transfer_id` when it went to another account).
    #[serde(default)]
    pub event_id: Option<EventId>,
    /// The transfer a capture to another account made.
    #[serde(default)]
    pub transfer_id: Option<TransferId>,
    pub position: i64,
    /// When it was booked: what the answer's available balances are as of, also when it
    /// is given again to a retry. `None` in answers stored before it was recorded.
    #[serde(default)]
    pub booked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The hold `hold_id` as the account held it, before (settling) or after (placing).
fn view(account: &Account, hold_id: HoldId, status: HoldStatus) -> HoldView {
    let hold = account
        .holds
        .get(&hold_id)
        .expect("a hold command's account holds the hold it names");
    HoldView {
        id: hold_id,
        account_id: account.id,
        amount: hold.amount,
        captured_amount: None,
        to_account_id: None,
        status,
        expires_at: hold.expires_at,
        reference: hold.reference.clone(),
        placed_at: hold.placed_at,
    }
}

fn before(written: &Written, id: AccountId) -> &Account {
    written
        .before
        .get(&id)
        .expect("a settled hold's account existed before")
}

/// Reserve funds (teller): `placeHold`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceHoldCommand(pub PlaceHold);

impl Command for PlaceHoldCommand {
    type Output = HoldOutcome;

    fn name(&self) -> &'static str {
        "placeHold"
    }

    fn streams(&self) -> Vec<AccountId> {
        vec![self.0.account_id]
    }

    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
        let id = self.0.account_id;
        let events = domain::decide(
            states.account(id),
            &domain::Command::PlaceHold(self.0.clone()),
            booking,
        )?;
        Ok(events.into_iter().map(|e| (id, e)).collect())
    }

    fn output(&self, written: &Written) -> HoldOutcome {
        let account = written.account(self.0.account_id);
        HoldOutcome {
            hold: view(&account, self.0.hold_id, HoldStatus::Active),
            event_id: Some(written.last_event_on(self.0.account_id)),
            transfer_id: None,
            account,
            position: written.position(),
            booked_at: Some(written.booked_at()),
        }
    }
}

/// Take a hold (teller): `captureHold`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureHoldCommand(pub CaptureHold);

impl Command for CaptureHoldCommand {
    type Output = HoldOutcome;

    fn name(&self) -> &'static str {
        "captureHold"
    }

    fn streams(&self) -> Vec<AccountId> {
        match self.0.to {
            Some(to) if to != self.0.account_id => vec![self.0.account_id, to],
            _ => vec![self.0.account_id],
        }
    }

    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
        let destination = self.0.to.and_then(|to| states.account(to));
        domain::decide_capture(
            states.account(self.0.account_id),
            destination,
            &self.0,
            booking,
        )
    }

    fn output(&self, written: &Written) -> HoldOutcome {
        let mut hold = view(
            before(written, self.0.account_id),
            self.0.hold_id,
            HoldStatus::Captured,
        );
        for event in &written.events {
            if let Ok(AccountEvent::HoldCaptured(captured)) = event.decode() {
                hold.captured_amount = Some(captured.amount);
                hold.to_account_id = captured.to_account_id;
            }
        }
        HoldOutcome {
            transfer_id: hold.to_account_id.map(|_| self.0.transfer_id),
            hold,
            event_id: Some(written.last_event_on(self.0.account_id)),
            account: written.account(self.0.account_id),
            position: written.position(),
            booked_at: Some(written.booked_at()),
        }
    }
}

/// Free a hold (teller): `releaseHold`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseHoldCommand(pub ReleaseHold);

impl Command for ReleaseHoldCommand {
    type Output = HoldOutcome;

    fn name(&self) -> &'static str {
        "releaseHold"
    }

    fn streams(&self) -> Vec<AccountId> {
        vec![self.0.account_id]
    }

    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
        let id = self.0.account_id;
        let events = domain::decide(
            states.account(id),
            &domain::Command::ReleaseHold(self.0.clone()),
            booking,
        )?;
        Ok(events.into_iter().map(|e| (id, e)).collect())
    }

    fn output(&self, written: &Written) -> HoldOutcome {
        HoldOutcome {
            hold: view(
                before(written, self.0.account_id),
                self.0.hold_id,
                HoldStatus::Released,
            ),
            event_id: Some(written.last_event_on(self.0.account_id)),
            transfer_id: None,
            account: written.account(self.0.account_id),
            position: written.position(),
            booked_at: Some(written.booked_at()),
        }
    }
}

/// Record a hold's expiry (the sweep, not a client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpireHoldCommand(pub ExpireHold);

impl Command for ExpireHoldCommand {
    type Output = HoldOutcome;

    fn name(&self) -> &'static str {
        "expireHold"
    }

    fn streams(&self) -> Vec<AccountId> {
        vec![self.0.account_id]
    }

    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
        let id = self.0.account_id;
        let events = domain::decide(
            states.account(id),
            &domain::Command::ExpireHold(self.0.clone()),
            booking,
        )?;
        Ok(events.into_iter().map(|e| (id, e)).collect())
    }

    fn output(&self, written: &Written) -> HoldOutcome {
        HoldOutcome {
            hold: view(
                before(written, self.0.account_id),
                self.0.hold_id,
                HoldStatus::Expired,
            ),
            event_id: Some(written.last_event_on(self.0.account_id)),
            transfer_id: None,
            account: written.account(self.0.account_id),
            position: written.position(),
            booked_at: Some(written.booked_at()),
        }
    }
}
