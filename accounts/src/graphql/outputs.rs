//! GraphQL output types of the accounts service, converted explicitly from domain types.

use async_graphql::{ComplexObject, Context, SimpleObject};
use chrono::Utc;
use ledger::{AccountId, Currency};
use platform::{
    ApiError,
    scalars::{DateTime, Decimal, Uuid},
};

use crate::{
    commands::{
        AccountOutcome, AccountsService, AdjustmentOutcome, BatchAnswer, HoldOutcome, HoldView,
        MovementOutcome, ReversalOutcome, TransferOutcome,
    },
    domain,
    store::{HoldRecord, HoldStatus},
};

/// The most holds `Account.holds` lists: the most recently placed first.
pub const ACCOUNT_HOLDS_LISTED_MAX: i64 = 1_000;

pub use platform::{
    enums::{AccountStatus, AdjustmentStatus},
    objects::Adjustment,
};

#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "Account", complex)]
pub struct AccountView {
    pub id: Uuid,
    pub holder: String,
    pub currency: String,
    pub balance: Decimal,
    /// The balance minus the holds active now: what withdrawals, transfers and new holds
    /// may take (plus the overdraft limit).
    pub available_balance: Decimal,
    /// What the holds active now reserve.
    pub held_amount: Decimal,
    pub overdraft_limit: Decimal,
    pub status: AccountStatus,
    pub version: i32,
    pub opened_at: DateTime,
}

#[ComplexObject]
impl AccountView {
    /// The account's holds, most recently placed first (at most 1,000), optionally of one
    /// status. A hold past `expiresAt` is EXPIRED from that instant on, before the sweep
    /// records it.
    async fn holds(
        &self,
        ctx: &Context<'_>,
        status: Option<HoldStatus>,
    ) -> Result<Vec<Hold>, ApiError> {
        let service = ctx
            .data::<AccountsService>()
            .map_err(|_| ApiError::internal("accounts service missing from the schema data"))?;
        let now = Utc::now();
        // An ACTIVE hold past its expiry is EXPIRED already: ask the index for both.
        let stored = match status {
            Some(HoldStatus::Active) | Some(HoldStatus::Expired) | None => {
                service
                    .holds_of(
                        AccountId::from_uuid(self.id.0),
                        None,
                        ACCOUNT_HOLDS_LISTED_MAX,
                    )
                    .await
            }
            Some(other) => {
                service
                    .holds_of(
                        AccountId::from_uuid(self.id.0),
                        Some(other),
                        ACCOUNT_HOLDS_LISTED_MAX,
                    )
                    .await
            }
        }
        .map_err(|e| super::command_error(e, &super::InputFields::of("")))?;
        Ok(stored
            .into_iter()
            .map(|record| Hold::from_record(record, now))
            .filter(|hold| status.is_none_or(|s| hold.status == s))
            .collect())
    }
}

impl TryFrom<domain::Account> for AccountView {
    type Error = ApiError;

    /// The account as it stands now.
    fn try_from(account: domain::Account) -> Result<Self, ApiError> {
        Self::as_at(account, Utc::now())
    }
}

impl AccountView {
    /// The account with its holds counted as they stood at `at` (a command's answer is as
    /// of its booking, also when given again to a retry).
    pub fn as_at(account: domain::Account, at: chrono::DateTime<Utc>) -> Result<Self, ApiError> {
        let available = account.available_balance_at(at);
        let held = account.held_at(at);
        Ok(Self {
            id: Uuid(account.id.as_uuid()),
            holder: account.holder,
            currency: account.currency.code().to_string(),
            balance: Decimal::money(account.balance, account.currency),
            available_balance: Decimal::money(available, account.currency),
            held_amount: Decimal::money(held, account.currency),
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

/// The instant an answer's accounts are shown as of: its booking, or now for an answer
/// stored before bookings were recorded with it.
fn booked(at: Option<chrono::DateTime<Utc>>) -> chrono::DateTime<Utc> {
    at.unwrap_or_else(Utc::now)
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
            account: AccountView::as_at(outcome.account, booked(outcome.booked_at))?,
            position: outcome.position.to_string(),
        })
    }
}

impl TryFrom<MovementOutcome> for MovementPayload {
    type Error = ApiError;

    fn try_from(outcome: MovementOutcome) -> Result<Self, ApiError> {
        Ok(Self {
            account: AccountView::as_at(outcome.account, booked(outcome.booked_at))?,
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
            from: AccountView::as_at(outcome.from, booked(outcome.booked_at))?,
            to: AccountView::as_at(outcome.to, booked(outcome.booked_at))?,
            position: outcome.position.to_string(),
        })
    }
}

/// A hold: funds reserved on an account until captured, released or expired
/// (../shared/API.md, "Holds").
#[derive(SimpleObject, Clone, Debug)]
pub struct Hold {
    pub id: Uuid,
    pub account_id: Uuid,
    /// What it reserved.
    pub amount: Decimal,
    /// What a capture took (the rest was released).
    pub captured_amount: Option<Decimal>,
    /// Where a capture sent the money, when it was a transfer.
    pub to_account_id: Option<Uuid>,
    pub status: HoldStatus,
    pub expires_at: Option<DateTime>,
    pub reference: Option<String>,
    pub placed_at: DateTime,
}

impl Hold {
    /// A hold as the index records it, EXPIRED from `expiresAt` on even before the sweep.
    pub fn from_record(record: HoldRecord, now: chrono::DateTime<Utc>) -> Self {
        let status = match record.status {
            HoldStatus::Active if record.expires_at.is_some_and(|e| e <= now) => {
                HoldStatus::Expired
            }
            other => other,
        };
        let money = |value| Decimal::money(value, record.currency);
        Self {
            id: Uuid(record.hold_id.as_uuid()),
            account_id: Uuid(record.account_id.as_uuid()),
            amount: money(record.amount),
            captured_amount: record.captured_amount.map(money),
            to_account_id: record.to_account_id.map(|a| Uuid(a.as_uuid())),
            status,
            expires_at: record.expires_at.map(DateTime),
            reference: record.reference,
            placed_at: DateTime(record.placed_at),
        }
    }

    fn from_view(view: HoldView, currency: Currency) -> Self {
        let money = |value| Decimal::money(value, currency);
        Self {
            id: Uuid(view.id.as_uuid()),
            account_id: Uuid(view.account_id.as_uuid()),
            amount: money(view.amount),
            captured_amount: view.captured_amount.map(money),
            to_account_id: view.to_account_id.map(|a| Uuid(a.as_uuid())),
            status: view.status,
            expires_at: view.expires_at.map(DateTime),
            reference: view.reference,
            placed_at: DateTime(view.placed_at),
        }
    }
}

/// A hold after a hold command, and its account.
#[derive(SimpleObject)]
pub struct HoldPayload {
    pub hold: Hold,
    pub account: AccountView,
    pub position: String,
    /// The event written on the hold's account (a capture: reverse it by this id when it
    /// was a withdrawal).
    pub event_id: Option<Uuid>,
    /// The transfer a capture to another account made (reverse it by this id).
    pub transfer_id: Option<Uuid>,
}

impl TryFrom<HoldOutcome> for HoldPayload {
    type Error = ApiError;

    fn try_from(outcome: HoldOutcome) -> Result<Self, ApiError> {
        let currency = outcome.account.currency;
        Ok(Self {
            event_id: outcome.event_id.map(|e| Uuid(e.as_uuid())),
            transfer_id: outcome.transfer_id.map(|t| Uuid(t.as_uuid())),
            hold: Hold::from_view(outcome.hold, currency),
            account: AccountView::as_at(outcome.account, booked(outcome.booked_at))?,
            position: outcome.position.to_string(),
        })
    }
}

/// The accounts a reversal wrote to, after it.
#[derive(SimpleObject)]
pub struct ReversalPayload {
    pub reversal_id: Uuid,
    pub accounts: Vec<AccountView>,
    pub position: String,
}

impl TryFrom<ReversalOutcome> for ReversalPayload {
    type Error = ApiError;

    fn try_from(outcome: ReversalOutcome) -> Result<Self, ApiError> {
        Ok(Self {
            reversal_id: Uuid(outcome.reversal_id.as_uuid()),
            accounts: outcome
                .accounts
                .into_iter()
                .map(|a| AccountView::as_at(a, booked(outcome.booked_at)))
                .collect::<Result<_, _>>()?,
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

/// An adjustment after a command, with its account (../shared/API.md `AdjustmentPayload`).
#[derive(SimpleObject)]
pub struct AdjustmentPayload {
    pub adjustment: Adjustment,
    /// The account after the command (an approval's balance includes the adjustment).
    pub account: Option<AccountView>,
    pub position: String,
    /// The event the command wrote; an approval's is the posting (ADJUSTMENT in statements).
    pub event_id: Uuid,
}

/// An adjustment as GraphQL shows it, in its account's currency.
pub fn adjustment_view(adjustment: domain::Adjustment, currency: ledger::Currency) -> Adjustment {
    Adjustment {
        id: Uuid(adjustment.id.as_uuid()),
        account_id: Uuid(adjustment.account_id.as_uuid()),
        amount: Decimal::money(adjustment.amount, currency),
        reason: adjustment.reason,
        value_date: adjustment.value_date.map(DateTime),
        evidence: adjustment.evidence,
        status: match adjustment.status {
            domain::AdjustmentStatus::Pending => AdjustmentStatus::Pending,
            domain::AdjustmentStatus::Approved => AdjustmentStatus::Approved,
            domain::AdjustmentStatus::Rejected => AdjustmentStatus::Rejected,
            domain::AdjustmentStatus::Expired => AdjustmentStatus::Expired,
        },
        requested_by: adjustment.requested_by,
        requested_at: DateTime(adjustment.requested_at),
        expires_at: DateTime(adjustment.expires_at),
        decided_by: adjustment.decided_by,
        decided_at: adjustment.decided_at.map(DateTime),
        comment: adjustment.comment,
    }
}

impl TryFrom<AdjustmentOutcome> for AdjustmentPayload {
    type Error = ApiError;

    fn try_from(outcome: AdjustmentOutcome) -> Result<Self, ApiError> {
        let currency = outcome.account.currency;
        Ok(Self {
            adjustment: adjustment_view(outcome.adjustment, currency),
            account: Some(AccountView::as_at(outcome.account, outcome.booked_at)?),
            position: outcome.position.to_string(),
            event_id: Uuid(outcome.event_id.as_uuid()),
        })
    }
}
