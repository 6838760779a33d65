//! The commands of the first round, as the writer runs them: opening, deposits,
//! withdrawals, transfers, and a supervisor's freeze, unfreeze and close.

use ledger::{AccountEvent, AccountId, EventId, TransferId};
use serde::{Deserialize, Serialize};

use super::{Command, States, Written};
use crate::domain::{
    self, Account, Booking, ChangeStatus, Deposit, DomainError, OpenAccount, Transfer, Withdraw,
};

/// The answer to a command that opened an account or changed its status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountOutcome {
    pub account: Account,
    pub position: i64,
    /// When it was booked: what the answer's available balances are as of, also when it
    /// is given again to a retry. `None` in answers stored before it was recorded.
    #[serde(default)]
    pub booked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The answer to a deposit or a withdrawal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MovementOutcome {
    pub account: Account,
    pub event_id: EventId,
    pub position: i64,
    /// When it was booked: what the answer's available balances are as of, also when it
    /// is given again to a retry. `None` in answers stored before it was recorded.
    #[serde(default)]
    pub booked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The answer to a transfer: both accounts after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferOutcome {
    pub transfer_id: TransferId,
    pub from: Account,
    pub to: Account,
    pub position: i64,
    /// When it was booked: what the answer's available balances are as of, also when it
    /// is given again to a retry. `None` in answers stored before it was recorded.
    #[serde(default)]
    pub booked_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn single(
    id: AccountId,
    event: Result<Vec<AccountEvent>, DomainError>,
) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
    Ok(event?.into_iter().map(|e| (id, e)).collect())
}

impl Command for OpenAccount {
    type Output = AccountOutcome;

    fn name(&self) -> &'static str {
        "openAccount"
    }

    fn streams(&self) -> Vec<AccountId> {
        vec![self.account_id]
    }

    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
        let state = states.account(self.account_id);
        single(
            self.account_id,
            domain::decide(state, &domain::Command::Open(self.clone()), booking),
        )
    }

    fn output(&self, written: &Written) -> AccountOutcome {
        AccountOutcome {
            account: written.account(self.account_id),
            position: written.position(),
            booked_at: Some(written.booked_at()),
        }
    }
}

impl Command for Deposit {
    type Output = MovementOutcome;

    fn name(&self) -> &'static str {
        "deposit"
    }

    fn streams(&self) -> Vec<AccountId> {
        vec![self.account_id]
    }

    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
        let state = states.account(self.account_id);
        single(
            self.account_id,
            domain::decide(state, &domain::Command::Deposit(self.clone()), booking),
        )
    }

    fn output(&self, written: &Written) -> MovementOutcome {
        MovementOutcome {
            account: written.account(self.account_id),
            event_id: written.last_event_on(self.account_id),
            position: written.position(),
            booked_at: Some(written.booked_at()),
        }
    }
}

impl Command for Withdraw {
    type Output = MovementOutcome;

    fn name(&self) -> &'static str {
        "withdraw"
    }

    fn streams(&self) -> Vec<AccountId> {
        vec![self.account_id]
    }

    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
        let state = states.account(self.account_id);
        single(
            self.account_id,
            domain::decide(state, &domain::Command::Withdraw(self.clone()), booking),
        )
    }

    fn output(&self, written: &Written) -> MovementOutcome {
        MovementOutcome {
            account: written.account(self.account_id),
            event_id: written.last_event_on(self.account_id),
            position: written.position(),
            booked_at: Some(written.booked_at()),
        }
    }
}

impl Command for Transfer {
    type Output = TransferOutcome;

    fn name(&self) -> &'static str {
        "transfer"
    }

    fn streams(&self) -> Vec<AccountId> {
        if self.from == self.to {
            vec![self.from]
        } else {
            vec![self.from, self.to]
        }
    }

    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
        let (debit, credit) = domain::decide_transfer(
            states.account(self.from),
            states.account(self.to),
            self,
            booking,
        )?;
        Ok(vec![(self.from, debit), (self.to, credit)])
    }

    fn output(&self, written: &Written) -> TransferOutcome {
        TransferOutcome {
            transfer_id: self.transfer_id,
            from: written.account(self.from),
            to: written.account(self.to),
            position: written.position(),
            booked_at: Some(written.booked_at()),
        }
    }
}

macro_rules! status_command {
    ($(#[$doc:meta])* $name:ident, $mutation:literal, $variant:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(pub ChangeStatus);

        impl Command for $name {
            type Output = AccountOutcome;

            fn name(&self) -> &'static str {
                $mutation
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
                single(id, domain::decide(states.account(id), &domain::Command::$variant(self.0.clone()), booking))
            }

            fn output(&self, written: &Written) -> AccountOutcome {
                AccountOutcome {
                    account: written.account(self.0.account_id),
                    position: written.position(),
            booked_at: Some(written.booked_at()),
                }
            }
        }
    };
}

status_command!(
    /// Stops all debits and credits until unfrozen (supervisor).
    FreezeAccount,
    "freezeAccount",
    Freeze
);
status_command!(
    /// Lets a frozen account take debits and credits again (supervisor).
    UnfreezeAccount,
    "unfreezeAccount",
    Unfreeze
);
status_command!(
    /// Closes an account whose balance is zero (supervisor).
    CloseAccount,
    "closeAccount",
    Close
);
