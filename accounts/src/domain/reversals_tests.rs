//! Reversals, one test per rule and per error code, as given / when / then
//! (../shared/API.md "Reversals").

use ledger::{
    AccountEvent, Currency, ErrorCode, EventId, HoldId, ReversalId, TransferId,
    events::{
        AccountOpened, HoldCaptured, HoldPlaced, Movement, MovementReversed, ReversedKind,
        StatusChange, TransferCredited, TransferDebited,
    },
};

use super::{DomainError, Reason, Reverse, ReversedMovement, fixture::*, movement_of, transfer_of};

fn usd() -> Currency {
    Currency::parse("USD").expect("usd")
}

fn reason() -> Reason {
    Reason::parse("booked twice").expect("reason")
}

#[test]
fn reversing_a_deposit_books_a_linked_debit() {
    let account = History::opened("USD").deposited("100").deposited("40");
    let deposit = EventId::generate();
    let command = reverse_deposit(account.id, deposit, "40.00");
    given_accounts(&[&account])
        .when_reverse(&command)
        .then(vec![(
            account.id,
            AccountEvent::MovementReversed(MovementReversed {
                reversal_id: command.reversal_id,
                reversed_event_id: deposit,
                reversed_kind: ReversedKind::Deposit,
                amount: dec("-40.00"),
                currency: usd(),
                balance_after: dec("100.00"),
                value_date: at(),
                transfer_id: None,
                counterparty_account_id: None,
                reason: "booked twice".into(),
            }),
        )]);
}

#[test]
fn rejects_reversing_a_movement_twice() {
    let deposit = EventId::generate();
    let account = History::opened("USD")
        .deposited("100")
        .deposited("40")
        .reversed(deposit, "40.00");
    given_accounts(&[&account])
        .when_reverse(&reverse_deposit(account.id, deposit, "40.00"))
        .then_err_matching(|e| {
            *e == DomainError::AlreadyReversed(format!("movement {deposit}"))
                && e.code() == ErrorCode::AlreadyReversed
        });
}

#[test]
fn rejects_reversing_a_deposit_whose_money_is_gone() {
    let account = History::opened("USD").deposited("40").withdrew("30");
    given_accounts(&[&account])
        .when_reverse(&reverse_deposit(account.id, EventId::generate(), "40.00"))
        .then_err(DomainError::InsufficientFunds {
            account_id: account.id,
            requested: dec("40.00"),
            available: dec("10.00"),
            currency: usd(),
        });
}

#[test]
fn reversing_a_withdrawal_credits_it_back() {
    let account = History::opened("USD").deposited("100").withdrew("30");
    let withdrawal = EventId::generate();
    let command = Reverse {
        reversal_id: ReversalId::generate(),
        movement: ReversedMovement::Single {
            account_id: account.id,
            event_id: withdrawal,
            kind: ReversedKind::Withdrawal,
            amount: dec("30.00"),
        },
        reason: reason(),
    };
    let events = given_accounts(&[&account]).when_reverse(&command).result;
    let events = events.expect("a withdrawal is reversed");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1.balance_after(), Some(dec("100.00")));
}

#[test]
fn reversing_a_transfer_moves_both_legs_back_and_nets_to_zero() {
    let from = History::opened("USD").deposited("100").withdrew("30");
    let to = History::opened("USD").deposited("30");
    let transfer_id = TransferId::generate();
    let (debit, credit) = (EventId::generate(), EventId::generate());
    let command = Reverse {
        reversal_id: ReversalId::generate(),
        movement: ReversedMovement::Transfer {
            transfer_id,
            from: from.id,
            to: to.id,
            debit_event_id: debit,
            debit_kind: ReversedKind::TransferOut,
            credit_event_id: credit,
            amount: dec("30.00"),
        },
        reason: reason(),
    };
    let legs = given_accounts(&[&from, &to])
        .when_reverse(&command)
        .result
        .expect("a transfer is reversed");
    let leg = |i: usize| match &legs[i].1 {
        AccountEvent::MovementReversed(r) => r.clone(),
        other => panic!("not a reversal leg: {other:?}"),
    };
    assert_eq!((legs[0].0, legs[1].0), (from.id, to.id));
    assert_eq!(
        (leg(0).amount, leg(1).amount),
        (dec("30.00"), dec("-30.00"))
    );
    assert_eq!(leg(0).balance_after, dec("100.00"));
    assert_eq!(leg(1).balance_after, dec("0.00"));
    assert_eq!(
        (leg(0).reversed_event_id, leg(1).reversed_event_id),
        (debit, credit)
    );
    assert_eq!(leg(0).transfer_id, Some(transfer_id));
    assert_eq!(leg(1).counterparty_account_id, Some(from.id));
}

#[test]
fn a_transfer_reversal_is_refused_whole_when_the_destination_spent_the_money() {
    let from = History::opened("USD").deposited("100");
    let to = History::opened("USD").deposited("30").withdrew("25");
    let command = Reverse {
        reversal_id: ReversalId::generate(),
        movement: ReversedMovement::Transfer {
            transfer_id: TransferId::generate(),
            from: from.id,
            to: to.id,
            debit_event_id: EventId::generate(),
            debit_kind: ReversedKind::TransferOut,
            credit_event_id: EventId::generate(),
            amount: dec("30.00"),
        },
        reason: reason(),
    };
    given_accounts(&[&from, &to])
        .when_reverse(&command)
        .then_err_matching(|e| e.code() == ErrorCode::InsufficientFunds);
}

#[test]
fn rejects_reversing_a_non_movement() {
    let account = History::opened("USD");
    let id = account.id;
    let not_movements = [
        AccountEvent::AccountOpened(AccountOpened {
            account_id: id,
            holder: "Ada".into(),
            currency: usd(),
            overdraft_limit: dec("0"),
        }),
        AccountEvent::AccountFrozen(StatusChange {
            reason: "review".into(),
        }),
        AccountEvent::HoldPlaced(HoldPlaced {
            hold_id: HoldId::generate(),
            amount: dec("1"),
            currency: usd(),
            expires_at: None,
            reference: None,
        }),
        AccountEvent::MovementReversed(MovementReversed {
            reversal_id: ReversalId::generate(),
            reversed_event_id: EventId::generate(),
            reversed_kind: ReversedKind::Deposit,
            amount: dec("-1"),
            currency: usd(),
            balance_after: dec("0"),
            value_date: at(),
            transfer_id: None,
            counterparty_account_id: None,
            reason: "x".into(),
        }),
        AccountEvent::TransferDebited(TransferDebited {
            transfer_id: TransferId::generate(),
            to_account_id: id,
            amount: dec("1"),
            currency: usd(),
            balance_after: dec("0"),
            reference: None,
            value_date: at(),
        }),
    ];
    for event in &not_movements {
        let refused = movement_of(id, EventId::generate(), event);
        assert!(
            matches!(&refused, Err(e) if e.code() == ErrorCode::NotReversible),
            "{event:?}: {refused:?}"
        );
    }
    let deposit = AccountEvent::MoneyDeposited(Movement {
        amount: dec("5"),
        currency: usd(),
        balance_after: dec("5"),
        reference: None,
        value_date: at(),
    });
    let event_id = EventId::generate();
    assert_eq!(
        movement_of(id, event_id, &deposit),
        Ok(ReversedMovement::Single {
            account_id: id,
            event_id,
            kind: ReversedKind::Deposit,
            amount: dec("5"),
        })
    );
}

#[test]
fn a_transfer_is_found_by_its_legs_and_an_unknown_one_is_not_found() {
    let (from, to) = (History::opened("USD").id, History::opened("USD").id);
    let transfer_id = TransferId::generate();
    let (debit, credit) = (EventId::generate(), EventId::generate());
    let legs = vec![
        (
            from,
            debit,
            AccountEvent::HoldCaptured(HoldCaptured {
                hold_id: HoldId::generate(),
                amount: dec("7"),
                released_amount: dec("0"),
                currency: usd(),
                balance_after: dec("0"),
                value_date: at(),
                to_account_id: Some(to),
                transfer_id: Some(transfer_id),
                reference: None,
            }),
        ),
        (
            to,
            credit,
            AccountEvent::TransferCredited(TransferCredited {
                transfer_id,
                from_account_id: from,
                amount: dec("7"),
                currency: usd(),
                balance_after: dec("7"),
                reference: None,
                value_date: at(),
            }),
        ),
    ];
    assert_eq!(
        transfer_of(transfer_id, &legs),
        Ok(Some(ReversedMovement::Transfer {
            transfer_id,
            from,
            to,
            debit_event_id: debit,
            debit_kind: ReversedKind::HoldCapture,
            credit_event_id: credit,
            amount: dec("7"),
        }))
    );
    let unknown = TransferId::generate();
    let missing = transfer_of(unknown, &[]);
    assert!(
        matches!(&missing, Err(e) if e.code() == ErrorCode::MovementNotFound),
        "{missing:?}"
    );
}
