//! Holds, one test per rule and per error code, as given / when / then (DESIGN.md "Holds",
//! ../shared/API.md "Holds").

use chrono::Duration;
use ledger::{
    AccountEvent, Currency, ErrorCode, HoldId, TransferId,
    events::{HoldCaptured, HoldExpired, HoldPlaced, HoldReleased, TransferCredited},
};

use super::{DomainError, fixture::*};

fn usd() -> Currency {
    Currency::parse("USD").expect("usd")
}

fn placed(hold_id: HoldId, value: &str, expires_in: Option<Duration>) -> AccountEvent {
    AccountEvent::HoldPlaced(HoldPlaced {
        hold_id,
        amount: dec(value),
        currency: usd(),
        expires_at: expires_in.map(|d| at() + d),
        reference: None,
    })
}

#[test]
fn a_hold_reserves_funds_without_moving_the_balance() {
    let account = History::opened("USD").deposited("100");
    let hold = HoldId::generate();
    given(&account)
        .when(place_hold(
            account.id,
            hold,
            "30",
            Some(at() + Duration::days(7)),
        ))
        .then(vec![placed(hold, "30.00", Some(Duration::days(7)))]);
    let state = account
        .clone()
        .held(hold, "30", None)
        .state()
        .expect("opened");
    assert_eq!(state.balance, dec("100.00"));
    assert_eq!(state.held_at(at()), dec("30.00"));
    assert_eq!(state.available_balance_at(at()), dec("70.00"));
}

#[test]
fn rejects_a_hold_beyond_the_available_balance() {
    let account = History::opened("USD")
        .deposited("100")
        .held(HoldId::generate(), "80", None);
    given(&account)
        .when(place_hold(account.id, HoldId::generate(), "30", None))
        .then_err(DomainError::InsufficientFunds {
            account_id: account.id,
            requested: dec("30.00"),
            available: dec("20.00"),
            currency: usd(),
        });
}

#[test]
fn a_withdrawal_sees_only_the_available_balance() {
    let account = History::opened("USD")
        .deposited("100")
        .held(HoldId::generate(), "80", None);
    given(&account)
        .when(withdraw(account.id, "30"))
        .then_err_matching(|e| e.code() == ErrorCode::InsufficientFunds);
    given(&account).when(withdraw(account.id, "20")).then_ok();
}

#[test]
fn a_transfer_sees_only_the_available_balance() {
    let from = History::opened("USD")
        .deposited("100")
        .held(HoldId::generate(), "90", None);
    let to = History::opened("USD");
    given_transfer(&from, &to)
        .when(&transfer(&from, &to, "11"))
        .then_err(DomainError::InsufficientFunds {
            account_id: from.id,
            requested: dec("11.00"),
            available: dec("10.00"),
            currency: usd(),
        });
}

#[test]
fn rejects_placing_a_hold_id_that_is_active() {
    let hold = HoldId::generate();
    let account = History::opened("USD")
        .deposited("100")
        .held(hold, "10", None);
    given(&account)
        .when(place_hold(account.id, hold, "10", None))
        .then_err_matching(|e| {
            *e == DomainError::HoldAlreadyExists(hold) && e.code() == ErrorCode::Validation
        });
}

#[test]
fn rejects_a_hold_that_expires_before_it_is_placed() {
    let account = History::opened("USD").deposited("100");
    given(&account)
        .when(place_hold(account.id, HoldId::generate(), "10", Some(at())))
        .then_err(DomainError::ExpiryInThePast {
            expires_at: at(),
            now: at(),
        });
}

#[test]
fn a_partial_capture_withdraws_that_much_and_releases_the_rest() {
    let hold = HoldId::generate();
    let account = History::opened("USD")
        .deposited("100")
        .held(hold, "50", None);
    let command = capture(account.id, hold, Some("30"), None);
    given_accounts(&[&account])
        .when_capture(&command)
        .then(vec![(
            account.id,
            AccountEvent::HoldCaptured(HoldCaptured {
                hold_id: hold,
                amount: dec("30.00"),
                released_amount: dec("20.00"),
                currency: usd(),
                balance_after: dec("70.00"),
                value_date: at(),
                to_account_id: None,
                transfer_id: None,
                reference: None,
            }),
        )]);
}

#[test]
fn a_capture_to_another_account_is_a_transfer() {
    let hold = HoldId::generate();
    let from = History::opened("USD")
        .deposited("100")
        .held(hold, "50", None);
    let to = History::opened("USD").deposited("1");
    let command = capture(from.id, hold, None, Some(to.id));
    let transfer_id: TransferId = command.transfer_id;
    given_accounts(&[&from, &to])
        .when_capture(&command)
        .then(vec![
            (
                from.id,
                AccountEvent::HoldCaptured(HoldCaptured {
                    hold_id: hold,
                    amount: dec("50.00"),
                    released_amount: dec("0.00"),
                    currency: usd(),
                    balance_after: dec("50.00"),
                    value_date: at(),
                    to_account_id: Some(to.id),
                    transfer_id: Some(transfer_id),
                    reference: None,
                }),
            ),
            (
                to.id,
                AccountEvent::TransferCredited(TransferCredited {
                    transfer_id,
                    from_account_id: from.id,
                    amount: dec("50.00"),
                    currency: usd(),
                    balance_after: dec("51.00"),
                    reference: None,
                    value_date: at(),
                }),
            ),
        ]);
}

#[test]
fn rejects_a_capture_above_the_held_amount() {
    let hold = HoldId::generate();
    let account = History::opened("USD")
        .deposited("100")
        .held(hold, "50", None);
    given_accounts(&[&account])
        .when_capture(&capture(account.id, hold, Some("50.01"), None))
        .then_err_matching(|e| {
            *e == DomainError::CaptureExceedsHold {
                hold_id: hold,
                requested: dec("50.01"),
                held: dec("50.00"),
                currency: usd(),
            } && e.code() == ErrorCode::InvalidAmount
        });
}

#[test]
fn rejects_a_capture_after_expiry() {
    let hold = HoldId::generate();
    let account =
        History::opened("USD")
            .deposited("100")
            .held(hold, "50", Some(at() + Duration::hours(1)));
    given_accounts(&[&account])
        .at(at() + Duration::hours(1))
        .when_capture(&capture(account.id, hold, None, None))
        .then_err_matching(|e| e.code() == ErrorCode::HoldNotActive);
}

#[test]
fn an_expired_hold_counts_for_nothing_before_its_event() {
    let account = History::opened("USD").deposited("100").held(
        HoldId::generate(),
        "100",
        Some(at() + Duration::hours(1)),
    );
    given(&account)
        .when(withdraw(account.id, "1"))
        .then_err_matching(|e| e.code() == ErrorCode::InsufficientFunds);
    given(&account)
        .at(at() + Duration::hours(1))
        .when(withdraw(account.id, "100"))
        .then_ok();
}

#[test]
fn rejects_a_second_capture() {
    let hold = HoldId::generate();
    let account = History::opened("USD")
        .deposited("100")
        .held(hold, "50", None)
        .captured(hold, "20", "50");
    given_accounts(&[&account])
        .when_capture(&capture(account.id, hold, Some("10"), None))
        .then_err_matching(|e| {
            matches!(e, DomainError::HoldNotActive { hold_id, .. } if *hold_id == hold)
                && e.code() == ErrorCode::HoldNotActive
        });
}

#[test]
fn rejects_a_capture_after_a_release() {
    let hold = HoldId::generate();
    let account = History::opened("USD")
        .deposited("100")
        .held(hold, "50", None)
        .released(hold, "50");
    given_accounts(&[&account])
        .when_capture(&capture(account.id, hold, None, None))
        .then_err_matching(|e| e.code() == ErrorCode::HoldNotActive);
    assert_eq!(
        account.state().expect("opened").available_balance_at(at()),
        dec("100.00"),
        "a released hold reserves nothing"
    );
}

#[test]
fn a_capture_of_a_hold_on_no_account_is_hold_not_found() {
    let ghost = History::never_opened();
    let hold = HoldId::generate();
    given_accounts(&[&ghost])
        .when_capture(&capture(ghost.id, hold, None, None))
        .then_err_matching(|e| {
            *e == DomainError::HoldNotFound(hold) && e.code() == ErrorCode::HoldNotFound
        });
}

#[test]
fn rejects_closing_an_account_with_active_holds() {
    let hold = HoldId::generate();
    // At zero balance, reserving on the overdraft.
    let account = History::opened_with_overdraft("USD", "10").held(hold, "5", None);
    given(&account)
        .when(close(account.id))
        .then_err(DomainError::ActiveHolds {
            account_id: account.id,
            count: 1,
            held: dec("5.00"),
            currency: usd(),
        });
    let released = account.released(hold, "5");
    given(&released).when(close(released.id)).then_ok();
}

#[test]
fn a_frozen_account_refuses_a_capture_but_allows_a_release() {
    let hold = HoldId::generate();
    let account = History::opened("USD")
        .deposited("100")
        .held(hold, "50", None)
        .frozen();
    given_accounts(&[&account])
        .when_capture(&capture(account.id, hold, None, None))
        .then_err(DomainError::AccountFrozen(account.id));
    given(&account)
        .when(release(account.id, hold))
        .then(vec![AccountEvent::HoldReleased(HoldReleased {
            hold_id: hold,
            amount: dec("50.00"),
            reason: None,
        })]);
}

#[test]
fn the_sweep_expires_a_hold_only_once_it_is_due() {
    let hold = HoldId::generate();
    let account =
        History::opened("USD")
            .deposited("100")
            .held(hold, "50", Some(at() + Duration::minutes(5)));
    given(&account)
        .when(expire(account.id, hold))
        .then_err_matching(|e| e.code() == ErrorCode::HoldNotActive);
    given(&account)
        .at(at() + Duration::minutes(5))
        .when(expire(account.id, hold))
        .then(vec![AccountEvent::HoldExpired(HoldExpired {
            hold_id: hold,
            amount: dec("50.00"),
        })]);
}
