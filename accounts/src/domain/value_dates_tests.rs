//! Value dates, one test per rule and per error code, as given / when / then (DESIGN.md
//! "Two time axes", ../shared/API.md "Value dates").

use chrono::Duration;
use ledger::{AccountEvent, ErrorCode, HoldId};

use super::{Booking, DomainError, fixture::*, still_valid_at};

#[test]
fn a_movement_without_a_value_date_is_valued_at_its_booking() {
    let account = History::opened("USD");
    let events = given(&account).when(deposit(account.id, "10")).then_ok();
    assert_eq!(events[0].value_date(), Some(at()));
}

#[test]
fn a_backdated_deposit_within_the_window_keeps_its_value_date() {
    let account = History::opened("USD");
    let last_month = at() - Duration::days(30);
    let events = given(&account)
        .when(deposit_valued(account.id, "10", last_month))
        .then_ok();
    assert_eq!(events[0].value_date(), Some(last_month));
}

#[test]
fn rejects_a_value_date_in_the_future() {
    let account = History::opened("USD");
    let tomorrow = at() + Duration::days(1);
    given(&account)
        .when(deposit_valued(account.id, "10", tomorrow))
        .then_err_matching(|e| {
            *e == DomainError::ValueDateOutOfRange {
                value_date: tomorrow,
                earliest: at() - Duration::days(WINDOW_DAYS),
                latest: at(),
            } && e.code() == ErrorCode::ValueDateOutOfRange
        });
}

#[test]
fn rejects_a_value_date_before_the_window() {
    let account = History::opened("USD");
    let too_old = at() - Duration::days(WINDOW_DAYS) - Duration::seconds(1);
    given(&account)
        .when(deposit_valued(account.id, "10", too_old))
        .then_err_matching(|e| e.code() == ErrorCode::ValueDateOutOfRange);
    let oldest = at() - Duration::days(WINDOW_DAYS);
    given(&account)
        .when(deposit_valued(account.id, "10", oldest))
        .then_ok();
}

#[test]
fn a_value_date_may_precede_the_accounts_opening_in_folio() {
    let opened_yesterday = History::opened("USD");
    let mut state = opened_yesterday.state().expect("opened");
    state.opened_at = at() - Duration::days(1);
    let last_month = at() - Duration::days(30);
    let events = super::decide(
        Some(&state),
        &deposit_valued(state.id, "10", last_month),
        &booking(),
    )
    .expect("money that moved before the account was opened here");
    assert_eq!(events[0].value_date(), Some(last_month));
}

#[test]
fn rejects_a_value_date_in_a_closed_period() {
    let account = History::opened("USD");
    let month_end = at() - Duration::days(3);
    given(&account)
        .closed_through(month_end)
        .when(deposit_valued(account.id, "10", month_end))
        .then_err_matching(|e| {
            *e == DomainError::PeriodClosed {
                value_date: month_end,
                closed_through: month_end,
            } && e.code() == ErrorCode::PeriodClosed
        });
    given(&account)
        .closed_through(month_end)
        .when(deposit_valued(
            account.id,
            "10",
            month_end + Duration::seconds(1),
        ))
        .then_ok();
}

#[test]
fn rejects_every_kind_of_movement_valued_in_a_closed_period() {
    let month_end = at() - Duration::days(3);
    let source = History::opened("USD").deposited("100");
    let destination = History::opened("USD");
    let closed = |e: &DomainError| e.code() == ErrorCode::PeriodClosed;
    let mut withdrawal = withdraw(source.id, "10");
    if let super::Command::Withdraw(w) = &mut withdrawal {
        w.value_date = Some(month_end);
    }
    given(&source)
        .closed_through(month_end)
        .when(withdrawal)
        .then_err_matching(closed);
    let mut booking = booking();
    booking.closed_through = Some(month_end);
    let mut moved = transfer(&source, &destination, "10");
    moved.value_date = Some(month_end);
    let refused = super::decide_transfer(
        source.state().as_ref(),
        destination.state().as_ref(),
        &moved,
        &booking,
    );
    assert!(matches!(&refused, Err(e) if closed(e)), "{refused:?}");
    let hold_id = HoldId::generate();
    let held = source.clone().held(hold_id, "5", None);
    let mut taken = capture(held.id, hold_id, None, None);
    taken.value_date = Some(month_end);
    given_accounts(&[&held])
        .closed_through(month_end)
        .when_capture(&taken)
        .then_err_matching(closed);
}

#[test]
fn limits_are_decided_on_the_current_balance_not_the_value_dated_one() {
    // Nothing was on the account last month, but it holds 100 now: a withdrawal valued last
    // month is within the limits, because limits look at the current balance.
    let account = History::opened("USD").deposited("100");
    let last_month = at() - Duration::days(30);
    let command = super::Command::Withdraw(super::Withdraw {
        account_id: account.id,
        amount: amount("100"),
        reference: None,
        value_date: Some(last_month),
    });
    let events = given(&account).when(command).then_ok();
    assert_eq!(events[0].balance_after(), Some(dec("0.00")));
}

#[test]
fn a_kept_decision_is_checked_against_the_later_booking_instant() {
    let account = History::opened("USD").deposited("100");
    let edge = at() - Duration::days(WINDOW_DAYS);
    let events = given(&account)
        .when(deposit_valued(account.id, "10", edge))
        .then_ok();
    let tagged: Vec<_> = events.into_iter().map(|e| (account.id, e)).collect();
    let states = [(account.id, account.state().expect("opened"))]
        .into_iter()
        .collect();
    assert!(still_valid_at(&tagged, &states, &booking()));
    let later = Booking::at(at() + Duration::seconds(1), Duration::days(WINDOW_DAYS));
    assert!(
        !still_valid_at(&tagged, &states, &later),
        "a value date that fell out of the window is decided again"
    );

    let hold = HoldId::generate();
    let held = account.held(hold, "10", Some(at() + Duration::seconds(1)));
    let capture = capture(held.id, hold, None, None);
    let captured = given_accounts(&[&held])
        .when_capture(&capture)
        .result
        .expect("captured before expiry");
    let states = [(held.id, held.state().expect("opened"))]
        .into_iter()
        .collect();
    assert!(still_valid_at(&captured, &states, &booking()));
    assert!(
        !still_valid_at(&captured, &states, &later),
        "a capture retried after the hold's expiry is decided again"
    );
    assert!(matches!(captured[0].1, AccountEvent::HoldCaptured(_)));
}
