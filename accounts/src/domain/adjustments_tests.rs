//! Four-eyes adjustments, one test per rule and per error code, as given / when / then
//! (../shared/API.md "Four-eyes adjustments"; SOX maker-checker).

use chrono::Duration;
use ledger::{
    AccountEvent, AdjustmentId, ErrorCode,
    events::{AdjustmentExpired, AdjustmentPosted, AdjustmentRejected, AdjustmentRequested},
};

use super::{DomainError, fixture::*};

fn week_later() -> chrono::DateTime<chrono::Utc> {
    at() + Duration::days(ADJUSTMENT_EXPIRY_DAYS)
}

#[test]
fn a_request_moves_no_money_and_names_its_maker() {
    let account = History::opened("USD").deposited("100");
    let id = AdjustmentId::generate();
    given(&account)
        .when(request_adjustment(account.id, id, "-4.20", "maker"))
        .then(vec![AccountEvent::AdjustmentRequested(
            AdjustmentRequested {
                adjustment_id: id,
                amount: dec("-4.20"),
                currency: account.state().expect("opened").currency,
                reason: "fee charged twice".into(),
                value_date: None,
                evidence: None,
                requested_by: "maker".into(),
                expires_at: week_later(),
            },
        )]);
}

#[test]
fn approval_by_a_second_person_posts_the_adjustment_with_both_names() {
    let id = AdjustmentId::generate();
    let account = History::opened("USD")
        .deposited("100")
        .adjustment_requested(id, "-4.20", "maker", week_later());
    let events = given(&account)
        .when(approve_adjustment(account.id, id, "checker"))
        .then_ok();
    let [AccountEvent::AdjustmentPosted(posted)] = events.as_slice() else {
        panic!("expected one AdjustmentPosted, got {events:?}");
    };
    assert_eq!(
        posted,
        &AdjustmentPosted {
            adjustment_id: id,
            amount: dec("-4.20"),
            currency: posted.currency,
            balance_after: dec("95.80"),
            value_date: at(),
            reason: "fee charged twice".into(),
            evidence: None,
            requested_by: "maker".into(),
            requested_at: at(),
            approved_by: "checker".into(),
            comment: None,
        }
    );
}

#[test]
fn rejects_approval_by_the_maker_as_self_approval() {
    let id = AdjustmentId::generate();
    let account = History::opened("USD").adjustment_requested(id, "50", "maker", week_later());
    given(&account)
        .when(approve_adjustment(account.id, id, "maker"))
        .then_err_matching(|e| {
            *e == DomainError::SelfApproval {
                adjustment_id: id,
                requested_by: "maker".into(),
            } && e.code() == ErrorCode::SelfApproval
        });
}

#[test]
fn rejects_approval_by_the_maker_spelled_in_another_case_as_self_approval() {
    let id = AdjustmentId::generate();
    let account =
        History::opened("USD").adjustment_requested(id, "50", "controller-carol", week_later());
    for checker in ["Controller-Carol", "CONTROLLER-CAROL", " controller-carol"] {
        given(&account)
            .when(approve_adjustment(account.id, id, checker))
            .then_err_matching(|e| e.code() == ErrorCode::SelfApproval);
    }
}

#[test]
fn rejects_approval_of_a_rejected_adjustment_as_not_pending() {
    let id = AdjustmentId::generate();
    let account = History::opened("USD")
        .adjustment_requested(id, "50", "maker", week_later())
        .adjustment_rejected(id, "checker");
    given(&account)
        .when(approve_adjustment(account.id, id, "second checker"))
        .then_err_matching(|e| e.code() == ErrorCode::AdjustmentNotPending);
}

#[test]
fn rejects_approval_of_an_expired_adjustment_as_not_pending_even_before_the_sweep() {
    let id = AdjustmentId::generate();
    let account = History::opened("USD").adjustment_requested(id, "50", "maker", week_later());
    given(&account)
        .at(week_later())
        .when(approve_adjustment(account.id, id, "checker"))
        .then_err_matching(|e| {
            e.code() == ErrorCode::AdjustmentNotPending && e.to_string().contains("expired")
        });
}

#[test]
fn rejects_a_debit_adjustment_beyond_the_accounts_limits() {
    let id = AdjustmentId::generate();
    let account = History::opened_with_overdraft("USD", "10")
        .deposited("30")
        .adjustment_requested(id, "-40.01", "maker", week_later());
    given(&account)
        .when(approve_adjustment(account.id, id, "checker"))
        .then_err_matching(|e| {
            *e == DomainError::InsufficientFunds {
                account_id: account.id,
                requested: dec("40.01"),
                available: dec("40.00"),
                currency: account.state().expect("opened").currency,
            } && e.code() == ErrorCode::InsufficientFunds
        });
}

#[test]
fn rejecting_twice_is_not_pending() {
    let id = AdjustmentId::generate();
    let account = History::opened("USD").adjustment_requested(id, "50", "maker", week_later());
    given(&account)
        .when(reject_adjustment(account.id, id, "checker"))
        .then(vec![AccountEvent::AdjustmentRejected(AdjustmentRejected {
            adjustment_id: id,
            rejected_by: "checker".into(),
            comment: None,
        })]);
    let rejected = account.adjustment_rejected(id, "checker");
    given(&rejected)
        .when(reject_adjustment(rejected.id, id, "checker"))
        .then_err_matching(|e| e.code() == ErrorCode::AdjustmentNotPending);
}

#[test]
fn approving_twice_is_not_pending() {
    let id = AdjustmentId::generate();
    let account = History::opened("USD").adjustment_requested(id, "50", "maker", week_later());
    let posted = given(&account)
        .when(approve_adjustment(account.id, id, "checker"))
        .then_ok();
    let mut state = account.state().expect("opened");
    state = super::evolve(Some(state), &posted[0], at()).expect("posted");
    assert_eq!(state.balance, dec("50"));
    let again = super::decide(
        Some(&state),
        &approve_adjustment(account.id, id, "checker"),
        &booking(),
    );
    assert!(
        matches!(&again, Err(e) if e.code() == ErrorCode::AdjustmentNotPending),
        "{again:?}"
    );
}

#[test]
fn the_sweep_expires_only_adjustments_past_their_expiry() {
    let id = AdjustmentId::generate();
    let account = History::opened("USD").adjustment_requested(id, "50", "maker", week_later());
    given(&account)
        .when(expire_adjustment(account.id, id))
        .then_err_matching(|e| e.code() == ErrorCode::AdjustmentNotPending);
    given(&account)
        .at(week_later())
        .when(expire_adjustment(account.id, id))
        .then(vec![AccountEvent::AdjustmentExpired(AdjustmentExpired {
            adjustment_id: id,
        })]);
}

#[test]
fn rejects_a_zero_adjustment_and_one_finer_than_the_currency_as_invalid_amounts() {
    let refused = super::AdjustmentAmount::parse(dec("0"));
    assert!(refused.is_err(), "{refused:?}");
    let account = History::opened("JPY");
    given(&account)
        .when(request_adjustment(
            account.id,
            AdjustmentId::generate(),
            "1.5",
            "maker",
        ))
        .then_err_matching(|e| e.code() == ErrorCode::InvalidAmount);
}

#[test]
fn an_adjustment_valued_in_a_closed_period_is_refused_at_request_and_at_approval() {
    let month_end = at() - Duration::days(3);
    let account = History::opened("USD");
    let id = AdjustmentId::generate();
    let mut request = request_adjustment(account.id, id, "5", "maker");
    if let super::Command::RequestAdjustment(r) = &mut request {
        r.value_date = Some(month_end);
    }
    given(&account)
        .closed_through(month_end)
        .when(request.clone())
        .then_err_matching(|e| e.code() == ErrorCode::PeriodClosed);
    // Requested before the close, approved after it.
    let requested = given(&account).when(request).then_ok();
    let mut state = account.state().expect("opened");
    state = super::evolve(Some(state), &requested[0], at()).expect("requested");
    let mut closed = booking();
    closed.closed_through = Some(month_end);
    let approval = super::decide(
        Some(&state),
        &approve_adjustment(account.id, id, "checker"),
        &closed,
    );
    assert!(
        matches!(&approval, Err(e) if e.code() == ErrorCode::PeriodClosed),
        "{approval:?}"
    );
}
