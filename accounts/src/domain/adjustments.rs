//! Four-eyes adjustments (SOX maker-checker over manual entries; ../shared/API.md,
//! "Four-eyes adjustments"): a maker requests a signed correction, nothing moves; a second
//! person, a supervisor other than the maker, approves it and the money moves in the same
//! event, or rejects it; a request nobody decides expires.
//!
//! An adjustment has its own identity and lifecycle ([`AdjustmentStatus`], folded by
//! [`Adjustment::evolve`]); its events are recorded on the account's stream, so that the
//! approval is decided against the account's limits under the same expected version as
//! every other debit, and the posting is one event that names both people
//! (docs/architecture.md, "Four-eyes adjustments"). The account keeps its pending
//! adjustments (like its active holds); a decided one leaves it.

use chrono::{DateTime, Duration, Utc};
use ledger::{
    AccountEvent, AccountId, AdjustmentId, PositiveAmount,
    events::{AdjustmentExpired, AdjustmentPosted, AdjustmentRejected, AdjustmentRequested},
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{
    Account, Booking, DomainError, Evidence, Reason, ensure_covers, ensure_takes_credits, money_for,
};

/// Where an adjustment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AdjustmentStatus {
    Pending,
    Approved,
    Rejected,
    Expired,
}

/// A signed correction: money in (credit) or out (debit), never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdjustmentAmount {
    Credit(PositiveAmount),
    Debit(PositiveAmount),
}

impl AdjustmentAmount {
    /// The amount as a client writes it: credits > 0, debits < 0; INVALID_AMOUNT for zero.
    pub fn parse(signed: Decimal) -> Result<Self, ledger::MoneyError> {
        let magnitude = PositiveAmount::parse(signed.abs())?;
        Ok(if signed.is_sign_negative() {
            Self::Debit(magnitude)
        } else {
            Self::Credit(magnitude)
        })
    }

    fn magnitude(&self) -> PositiveAmount {
        match self {
            Self::Credit(a) | Self::Debit(a) => *a,
        }
    }
}

/// An adjustment as its events describe it (its own aggregate state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adjustment {
    pub id: AdjustmentId,
    pub account_id: AccountId,
    /// Signed: credits > 0, debits < 0.
    pub amount: Decimal,
    pub reason: String,
    pub value_date: Option<DateTime<Utc>>,
    pub evidence: Option<String>,
    pub status: AdjustmentStatus,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub comment: Option<String>,
}

impl Adjustment {
    /// Folds one event of the account's stream into the adjustment it concerns (`None`
    /// before its request; events about other adjustments leave it as it is).
    pub fn evolve(
        state: Option<Self>,
        account_id: AccountId,
        event: &AccountEvent,
        recorded_at: DateTime<Utc>,
    ) -> Option<Self> {
        match (state, event) {
            (None, AccountEvent::AdjustmentRequested(r)) => Some(Self {
                id: r.adjustment_id,
                account_id,
                amount: r.amount,
                reason: r.reason.clone(),
                value_date: r.value_date,
                evidence: r.evidence.clone(),
                status: AdjustmentStatus::Pending,
                requested_by: r.requested_by.clone(),
                requested_at: recorded_at,
                expires_at: r.expires_at,
                decided_by: None,
                decided_at: None,
                comment: None,
            }),
            (Some(mut a), AccountEvent::AdjustmentPosted(p)) if p.adjustment_id == a.id => {
                a.status = AdjustmentStatus::Approved;
                a.value_date = Some(p.value_date);
                a.decided_by = Some(p.approved_by.clone());
                a.decided_at = Some(recorded_at);
                a.comment = p.comment.clone();
                Some(a)
            }
            (Some(mut a), AccountEvent::AdjustmentRejected(r)) if r.adjustment_id == a.id => {
                a.status = AdjustmentStatus::Rejected;
                a.decided_by = Some(r.rejected_by.clone());
                a.decided_at = Some(recorded_at);
                a.comment = r.comment.clone();
                Some(a)
            }
            (Some(mut a), AccountEvent::AdjustmentExpired(x)) if x.adjustment_id == a.id => {
                a.status = AdjustmentStatus::Expired;
                a.decided_at = Some(recorded_at);
                Some(a)
            }
            (state, _) => state,
        }
    }

    /// Whether it can still be approved or rejected at `now`.
    pub fn is_pending_at(&self, now: DateTime<Utc>) -> bool {
        self.status == AdjustmentStatus::Pending && now < self.expires_at
    }
}

/// Ask for a correction (teller or supervisor): `requestAdjustment`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestAdjustment {
    pub account_id: AccountId,
    pub adjustment_id: AdjustmentId,
    pub amount: AdjustmentAmount,
    pub reason: Reason,
    pub value_date: Option<DateTime<Utc>>,
    pub evidence: Option<Evidence>,
    /// The maker: the requesting principal.
    pub requested_by: String,
    /// How long it may wait for a decision (`FOLIO_ADJUSTMENT_EXPIRY_DAYS`).
    pub expires_after: Duration,
}

/// Approve or reject a pending adjustment (supervisor): `approveAdjustment`,
/// `rejectAdjustment`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecideAdjustment {
    pub account_id: AccountId,
    pub adjustment_id: AdjustmentId,
    /// The checker: the deciding principal.
    pub decided_by: String,
    pub comment: Option<Reason>,
}

/// Record that a pending adjustment reached its expiry (the sweep's command).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpireAdjustment {
    pub account_id: AccountId,
    pub adjustment_id: AdjustmentId,
}

pub(super) fn request(
    account: &Account,
    request: &RequestAdjustment,
    booking: &Booking,
) -> Result<AccountEvent, DomainError> {
    ensure_takes_credits(account)?;
    if account.adjustments.contains_key(&request.adjustment_id) {
        return Err(DomainError::AdjustmentAlreadyExists(request.adjustment_id));
    }
    let money = money_for(account, request.amount.magnitude())?;
    // Checked now so that the maker hears of a closed period at once; checked again when
    // the approval books it.
    if let Some(value_date) = request.value_date {
        booking.value_date(Some(value_date))?;
    }
    let amount = match request.amount {
        AdjustmentAmount::Credit(_) => money.amount(),
        AdjustmentAmount::Debit(_) => -money.amount(),
    };
    Ok(AccountEvent::AdjustmentRequested(AdjustmentRequested {
        adjustment_id: request.adjustment_id,
        amount,
        currency: account.currency,
        reason: request.reason.as_str().to_string(),
        value_date: request.value_date,
        evidence: request.evidence.as_ref().map(|e| e.as_str().to_string()),
        requested_by: request.requested_by.clone(),
        expires_at: booking.at + request.expires_after,
    }))
}

/// The adjustment, if it can still be decided at the booking instant.
fn pending<'a>(
    account: &'a Account,
    adjustment_id: AdjustmentId,
    booking: &Booking,
) -> Result<&'a Adjustment, DomainError> {
    // The account keeps its pending adjustments only: a decided one is gone from it.
    let adjustment = account.adjustments.get(&adjustment_id).ok_or_else(|| {
        DomainError::AdjustmentNotPending {
            adjustment_id,
            why: "it has been approved, rejected or has expired".into(),
        }
    })?;
    if adjustment.is_pending_at(booking.at) {
        return Ok(adjustment);
    }
    Err(DomainError::AdjustmentNotPending {
        adjustment_id,
        why: format!(
            "it expired at {} without a decision",
            super::instant(&adjustment.expires_at)
        ),
    })
}

/// Whether two actors (token subjects) name the same person for the four-eyes rule: equal
/// once trimmed and compared without case, because directories such as Active Directory
/// and most identity providers treat user names that way (`Carol` and `carol` are one
/// login). A maker must not become their own checker by asking for a token spelled
/// differently.
pub fn same_person(a: &str, b: &str) -> bool {
    let fold = |s: &str| s.trim().to_lowercase();
    fold(a) == fold(b)
}

pub(super) fn approve(
    account: &Account,
    decision: &DecideAdjustment,
    booking: &Booking,
) -> Result<AccountEvent, DomainError> {
    let adjustment = pending(account, decision.adjustment_id, booking)?;
    if same_person(&adjustment.requested_by, &decision.decided_by) {
        return Err(DomainError::SelfApproval {
            adjustment_id: adjustment.id,
            requested_by: adjustment.requested_by.clone(),
        });
    }
    ensure_takes_credits(account)?;
    if adjustment.amount.is_sign_negative() {
        ensure_covers(account, -adjustment.amount, booking.at)?;
    }
    let value_date = booking.value_date(adjustment.value_date)?;
    Ok(AccountEvent::AdjustmentPosted(AdjustmentPosted {
        adjustment_id: adjustment.id,
        amount: adjustment.amount,
        currency: account.currency,
        balance_after: account.balance + adjustment.amount,
        value_date,
        reason: adjustment.reason.clone(),
        evidence: adjustment.evidence.clone(),
        requested_by: adjustment.requested_by.clone(),
        requested_at: adjustment.requested_at,
        approved_by: decision.decided_by.clone(),
        comment: decision.comment.as_ref().map(|c| c.as_str().to_string()),
    }))
}

pub(super) fn reject(
    account: &Account,
    decision: &DecideAdjustment,
    booking: &Booking,
) -> Result<AccountEvent, DomainError> {
    let adjustment = pending(account, decision.adjustment_id, booking)?;
    Ok(AccountEvent::AdjustmentRejected(AdjustmentRejected {
        adjustment_id: adjustment.id,
        rejected_by: decision.decided_by.clone(),
        comment: decision.comment.as_ref().map(|c| c.as_str().to_string()),
    }))
}

pub(super) fn expire(
    account: &Account,
    expire: &ExpireAdjustment,
    booking: &Booking,
) -> Result<AccountEvent, DomainError> {
    let adjustment = account
        .adjustments
        .get(&expire.adjustment_id)
        .ok_or_else(|| DomainError::AdjustmentNotPending {
            adjustment_id: expire.adjustment_id,
            why: "it has been approved, rejected or has expired".into(),
        })?;
    if adjustment.is_pending_at(booking.at) {
        return Err(DomainError::AdjustmentNotPending {
            adjustment_id: adjustment.id,
            why: "it has not reached its expiry".into(),
        });
    }
    Ok(AccountEvent::AdjustmentExpired(AdjustmentExpired {
        adjustment_id: adjustment.id,
    }))
}

/// Whether `event`, decided for an earlier booking instant, still holds at `booking`: an
/// approval or rejection needs the adjustment still pending.
pub(super) fn still_pending(
    account: Option<&Account>,
    event: &AccountEvent,
    at: DateTime<Utc>,
) -> bool {
    let id = match event {
        AccountEvent::AdjustmentPosted(p) => p.adjustment_id,
        AccountEvent::AdjustmentRejected(r) => r.adjustment_id,
        _ => return true,
    };
    account
        .and_then(|a| a.adjustments.get(&id))
        .is_some_and(|a| a.is_pending_at(at))
}
