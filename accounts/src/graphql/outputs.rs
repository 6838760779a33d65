//! GraphQL output types of the accounts service, converted explicitly from domain types.

use async_graphql::{Enum, SimpleObject};
use platform::{
    ApiError,
    scalars::{DateTime, Decimal, Uuid},
};

use super::unexpected;
use crate::{commands::Outcome, domain};

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

impl TryFrom<Outcome> for AccountPayload {
    type Error = ApiError;

    fn try_from(outcome: Outcome) -> Result<Self, ApiError> {
        match outcome {
            Outcome::Account { account, position } => Ok(Self {
                account: account.try_into()?,
                position: position.to_string(),
            }),
            other => Err(unexpected(&other)),
        }
    }
}

impl TryFrom<Outcome> for MovementPayload {
    type Error = ApiError;

    fn try_from(outcome: Outcome) -> Result<Self, ApiError> {
        match outcome {
            Outcome::Movement {
                account,
                event_id,
                position,
            } => Ok(Self {
                account: account.try_into()?,
                event_id: Uuid(event_id),
                position: position.to_string(),
            }),
            other => Err(unexpected(&other)),
        }
    }
}

impl TryFrom<Outcome> for TransferPayload {
    type Error = ApiError;

    fn try_from(outcome: Outcome) -> Result<Self, ApiError> {
        match outcome {
            Outcome::Transfer {
                transfer_id,
                from,
                to,
                position,
            } => Ok(Self {
                transfer_id: Uuid(transfer_id.as_uuid()),
                from: from.try_into()?,
                to: to.try_into()?,
                position: position.to_string(),
            }),
            other => Err(unexpected(&other)),
        }
    }
}
