//! GraphQL output types of the accounts service, converted explicitly from domain types.

use async_graphql::{Enum, SimpleObject};
use platform::{
    ApiError,
    scalars::{DateTime, Decimal, Uuid},
};

use crate::{
    commands::{AccountOutcome, BatchAnswer, MovementOutcome, TransferOutcome},
    domain,
};

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountStatus {
    Open,
    Frozen,
    Closed,
}

#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "Account")]
pub struct AccountView {
    pub id: Uuid,
    pub holder: String,
    pub currency: String,
    pub balance: Decimal,
    pub overdraft_limit: Decimal,
    pub status: AccountStatus,
    pub version: i32,
    pub opened_at: DateTime,
}

impl TryFrom<domain::Account> for AccountView {
    type Error = ApiError;

    fn try_from(account: domain::Account) -> Result<Self, ApiError> {
        Ok(Self {
            id: Uuid(account.id.as_uuid()),
            holder: account.holder,
            currency: account.currency.code().to_string(),
            balance: Decimal::money(account.balance, account.currency),
            overdraft_limit: Decimal::money(account.overdraft_limit, account.currency),
            status: match account.status {
                domain::AccountStatus::Open => AccountStatus::Open,
                domain::AccountStatus::Frozen => AccountStatus::Frozen,
                domain::AccountStatus::Closed => AccountStatus::Closed,
            },
            version: i32::try_from(account.version).map_err(ApiError::internal)?,
            opened_at: DateTime(account.opened_at),
        })
    }
}

/// The account after a command that did not move money.
#[derive(SimpleObject)]
pub struct AccountPayload {
    pub account: AccountView,
    /// The event-store position written; pass it as `atLeast` to reporting queries.
    pub position: String,
}

/// The account after a deposit or withdrawal.
#[derive(SimpleObject)]
pub struct MovementPayload {
    pub account: AccountView,
    pub event_id: Uuid,
    pub position: String,
}

/// Both accounts after a transfer.
#[derive(SimpleObject)]
pub struct TransferPayload {
    pub transfer_id: Uuid,
    pub from: AccountView,
    pub to: AccountView,
    pub position: String,
}

impl TryFrom<AccountOutcome> for AccountPayload {
    type Error = ApiError;

    fn try_from(outcome: AccountOutcome) -> Result<Self, ApiError> {
        Ok(Self {
            account: outcome.account.try_into()?,
            position: outcome.position.to_string(),
        })
    }
}

impl TryFrom<MovementOutcome> for MovementPayload {
    type Error = ApiError;

    fn try_from(outcome: MovementOutcome) -> Result<Self, ApiError> {
        Ok(Self {
            account: outcome.account.try_into()?,
            event_id: Uuid(outcome.event_id.as_uuid()),
            position: outcome.position.to_string(),
        })
    }
}

impl TryFrom<TransferOutcome> for TransferPayload {
    type Error = ApiError;

    fn try_from(outcome: TransferOutcome) -> Result<Self, ApiError> {
        Ok(Self {
            transfer_id: Uuid(outcome.transfer_id.as_uuid()),
            from: outcome.from.try_into()?,
            to: outcome.to.try_into()?,
            position: outcome.position.to_string(),
        })
    }
}

/// What an `executeBatch` did: one result per operation, in input order.
#[derive(SimpleObject)]
pub struct BatchPayload {
    pub results: Vec<BatchResult>,
    /// How many operations were written (or answered as first written, for a retry).
    pub committed: i32,
    /// The highest position written; null when nothing was.
    pub position: Option<String>,
}

/// One operation's outcome: `ok`, or its refusal's code, message and input field.
#[derive(SimpleObject, Clone, Debug, Default)]
pub struct BatchResult {
    pub index: i32,
    pub ok: bool,
    pub code: Option<String>,
    pub message: Option<String>,
    /// The refused input's path, e.g. `input.operations.3.transfer.toAccountId`.
    pub field: Option<String>,
    pub event_id: Option<Uuid>,
    pub transfer_id: Option<Uuid>,
    pub position: Option<String>,
}

impl BatchResult {
    pub(crate) fn refused(index: usize, error: &ApiError) -> Self {
        Self {
            index: index as i32,
            ok: false,
            code: Some(error.code.as_str().to_string()),
            message: Some(error.client_message()),
            field: error.field.clone(),
            ..Self::default()
        }
    }

    pub(crate) fn written(index: usize, answer: BatchAnswer) -> Self {
        let (event_id, transfer_id, position) = match answer {
            BatchAnswer::Movement(m) => (Some(Uuid(m.event_id.as_uuid())), None, m.position),
            BatchAnswer::Transfer(t) => (None, Some(Uuid(t.transfer_id.as_uuid())), t.position),
        };
        Self {
            index: index as i32,
            ok: true,
            event_id,
            transfer_id,
            position: Some(position.to_string()),
            ..Self::default()
        }
    }
}
