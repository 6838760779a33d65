//! GraphQL output types of the accounts service, converted explicitly from domain types.

use async_graphql::{Enum, SimpleObject};
use platform::{
    ApiError,
    scalars::{DateTime, Decimal, Uuid},
};

use crate::{
    commands::{AccountOutcome, MovementOutcome, TransferOutcome},
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
