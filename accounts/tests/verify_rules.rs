//! `folio verify` checks the rules of holds, reversals and value dates over stored history:
//! events that break them are appended past the writer (as a defect or a forger with the
//! store's own append would) and each is named by its kind and place.

mod support;

use accounts::{
    integrity::{ProblemKind, Report, VerifyOptions, verify},
    store::{EventStore, StreamAppend},
};
use chrono::{Duration, Utc};
use ledger::{
    AccountEvent, AccountId, Currency, EventId, HoldId, ReversalId,
    events::{
        AccountOpened, HoldCaptured, HoldPlaced, HoldReleased, Movement, MovementReversed,
        ReversedKind,
    },
};
use support::{TestDb, dec, metadata};

fn usd() -> Currency {
    Currency::parse("USD").expect("USD")
}

fn deposit(value: &str, after: &str, value_date: chrono::DateTime<Utc>) -> AccountEvent {
    AccountEvent::MoneyDeposited(Movement {
        amount: dec(value),
        currency: usd(),
        balance_after: dec(after),
        reference: None,
        value_date,
    })
}

fn placed(hold_id: HoldId, value: &str) -> AccountEvent {
    AccountEvent::HoldPlaced(HoldPlaced {
        hold_id,
        amount: dec(value),
        currency: usd(),
        expires_at: None,
        reference: None,
    })
}

fn captured(hold_id: HoldId, value: &str, released: &str, after: &str) -> AccountEvent {
    AccountEvent::HoldCaptured(HoldCaptured {
        hold_id,
        amount: dec(value),
        released_amount: dec(released),
        currency: usd(),
        balance_after: dec(after),
        value_date: Utc::now(),
        to_account_id: None,
        transfer_id: None,
        reference: None,
    })
}

fn reversal(of: EventId, amount: &str, after: &str) -> AccountEvent {
    AccountEvent::MovementReversed(MovementReversed {
        reversal_id: ReversalId::generate(),
        reversed_event_id: of,
        reversed_kind: ReversedKind::Deposit,
        amount: dec(amount),
        currency: usd(),
        balance_after: dec(after),
        value_date: Utc::now(),
        transfer_id: None,
        counterparty_account_id: None,
        reason: "test".into(),
    })
}

/// An opened account with `events` after the opening; the stored event ids in order.
async fn account_with(store: &EventStore, events: Vec<AccountEvent>) -> (AccountId, Vec<EventId>) {
    let id = AccountId::generate();
    let mut all = vec![AccountEvent::AccountOpened(AccountOpened {
        account_id: id,
        holder: "Ada".into(),
        currency: usd(),
        overdraft_limit: dec("0"),
    })];
    all.extend(events);
    store
        .append(
            vec![StreamAppend {
                stream_id: id,
                expected_version: 0,
                state: None,
                events: all,
            }],
            &metadata("test"),
        )
        .await
        .expect("append");
    let ids = store
        .read_stream_from(id, 1)
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    (id, ids)
}

async fn report(db: &TestDb) -> Report {
    verify(
        &db.pool,
        &VerifyOptions {
            public_key: ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key(),
            account: None,
            external: None,
            events_max: None,
            progress: None,
            backdate_max: Duration::days(62),
        },
    )
    .await
    .expect("verify")
}

/// The problems of `kind`, as (account, version).
fn found(report: &Report, kind: ProblemKind) -> Vec<(AccountId, i64)> {
    report
        .problems
        .iter()
        .filter(|p| p.kind == kind)
        .map(|p| {
            (
                p.stream_id.expect("a stream"),
                p.stream_version.expect("a version"),
            )
        })
        .collect()
}

#[tokio::test]
async fn sound_holds_and_reversals_verify_clean() {
    let db = TestDb::new().await;
    let store = db.store();
    let hold = HoldId::generate();
    let (id, ids) = account_with(
        &store,
        vec![
            deposit("100", "100", Utc::now() - Duration::days(3)),
            placed(hold, "40"),
            captured(hold, "30", "10", "70"),
        ],
    )
    .await;
    let state = store.load(id).await.expect("load").account;
    store
        .append(
            vec![StreamAppend {
                stream_id: id,
                expected_version: 4,
                state,
                events: vec![reversal(ids[1], "-100", "-30")],
            }],
            &metadata("reverse"),
        )
        .await
        .expect("append");
    let report = report(&db).await;
    assert!(
        report.problems.is_empty(),
        "{:?}",
        report
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    assert_eq!(report.events, 5);
}

#[tokio::test]
async fn a_hold_captured_twice_or_for_more_than_it_held_is_reported() {
    let db = TestDb::new().await;
    let store = db.store();
    let (twice, hold) = (HoldId::generate(), HoldId::generate());
    let (id, _) = account_with(
        &store,
        vec![
            deposit("100", "100", Utc::now()),
            placed(twice, "10"),
            captured(twice, "10", "0", "90"),
            captured(twice, "5", "0", "85"),
            placed(hold, "10"),
            captured(hold, "12", "0", "73"),
            AccountEvent::HoldReleased(HoldReleased {
                hold_id: HoldId::generate(),
                amount: dec("1"),
                reason: None,
            }),
        ],
    )
    .await;
    let report = report(&db).await;
    assert_eq!(
        found(&report, ProblemKind::HoldInconsistent),
        vec![(id, 5), (id, 7), (id, 8)],
        "{:?}",
        report.problems
    );
}

#[tokio::test]
async fn a_reversal_twice_of_a_non_movement_or_of_the_wrong_amount_is_reported() {
    let db = TestDb::new().await;
    let store = db.store();
    let (first, ids) = account_with(&store, vec![deposit("50", "50", Utc::now())]).await;
    let (opening, deposit_id) = (ids[0], ids[1]);
    let (second, _) = account_with(&store, vec![deposit("80", "80", Utc::now())]).await;
    // Appended after: each names an event of `first`.
    let state = store.load(first).await.expect("load").account;
    store
        .append(
            vec![StreamAppend {
                stream_id: first,
                expected_version: 2,
                state,
                events: vec![
                    reversal(deposit_id, "-50", "0"),
                    reversal(deposit_id, "-50", "-50"),
                    reversal(opening, "-1", "-51"),
                ],
            }],
            &metadata("reverse"),
        )
        .await
        .expect("append");
    let state = store.load(second).await.expect("load").account;
    store
        .append(
            vec![StreamAppend {
                stream_id: second,
                expected_version: 2,
                state,
                events: vec![reversal(deposit_id, "-50", "30")],
            }],
            &metadata("reverse"),
        )
        .await
        .expect("append");
    let report = report(&db).await;
    let mut reported = found(&report, ProblemKind::ReversalInconsistent);
    reported.sort();
    // Three reversals name the deposit: each is one of three. The opening moved no money;
    // the second account's reversal names another account's event.
    let mut expected = vec![(first, 3), (first, 4), (first, 5), (second, 3), (second, 3)];
    expected.sort();
    assert_eq!(reported, expected, "{:?}", report.problems);
    let details: Vec<&str> = report.problems.iter().map(|p| p.detail.as_str()).collect();
    assert!(
        details.iter().any(|d| d.contains("is reversed 3 times")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("moved no money of its own")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("not an earlier event of this account")),
        "{details:?}"
    );
}

#[tokio::test]
async fn a_value_date_outside_its_window_is_reported() {
    let db = TestDb::new().await;
    let store = db.store();
    let (id, _) = account_with(
        &store,
        vec![
            deposit("1", "1", Utc::now() - Duration::days(10)),
            deposit("1", "2", Utc::now() - Duration::days(70)),
            deposit("1", "3", Utc::now() + Duration::days(1)),
        ],
    )
    .await;
    let report = report(&db).await;
    assert_eq!(
        found(&report, ProblemKind::ValueDateOutOfRange),
        vec![(id, 3), (id, 4)]
    );
}
