//! Booking at a chosen past instant ([`HistoricalClock`], what `folio demo` seeds history
//! with): the events carry that instant and their hash chains hold, and an instant in the
//! future or before the store's newest event is refused, writing nothing.

mod support;

use accounts::{
    commands::{AccountsService, CommandError},
    store::{HistoricalClock, StoreError},
};
use chrono::{Duration, Utc};
use ledger::AccountId;
use support::{
    TestDb, assert_stream_sound, deposit_command, event_count, microseconds, open_command, run,
};

#[tokio::test]
async fn appends_are_booked_at_the_historical_clock_and_chain_as_usual() {
    let db = TestDb::new().await;
    let opened_at = Utc::now() - Duration::days(90);
    let clock = HistoricalClock::starting_at(opened_at);
    let service = AccountsService::new(db.store().with_historical_clock(clock.clone()));
    let id = AccountId::generate();
    run(&service, open_command(id, "USD", "0"))
        .await
        .expect("open");
    clock.set(opened_at + Duration::days(30));
    run(&service, deposit_command(id, "10.00"))
        .await
        .expect("deposit");

    let events = assert_stream_sound(&db.store(), id).await;
    let booked: Vec<_> = events.iter().map(|e| e.recorded_at).collect();
    assert_eq!(
        booked,
        [
            microseconds(opened_at),
            microseconds(opened_at + Duration::days(30))
        ]
    );
    let account = service.account(id).await.expect("load").expect("exists");
    assert_eq!(account.opened_at, microseconds(opened_at));
}

#[tokio::test]
async fn an_instant_in_the_future_or_before_the_newest_event_is_refused() {
    let db = TestDb::new().await;
    let start = Utc::now() - Duration::days(10);
    let clock = HistoricalClock::starting_at(start);
    let service = AccountsService::new(db.store().with_historical_clock(clock.clone()));
    let id = AccountId::generate();
    run(&service, open_command(id, "EUR", "0"))
        .await
        .expect("open");
    let written = event_count(&db.pool).await;

    for (at, relation) in [
        (Utc::now() + Duration::hours(1), "after the database clock"),
        (start - Duration::seconds(1), "before the newest event's"),
    ] {
        clock.set(at);
        let refused = run(&service, deposit_command(id, "5.00"))
            .await
            .expect_err("refused");
        match &refused {
            CommandError::Internal(source) => assert!(
                matches!(
                    source.as_ref(),
                    StoreError::BookingInstantRefused { relation: r, .. } if *r == relation
                ),
                "{source}"
            ),
            other => panic!("{relation}: {other}"),
        }
        assert_eq!(event_count(&db.pool).await, written, "{relation}");
    }

    // The instant of the newest event itself is allowed: time does not run backwards.
    clock.set(start);
    run(&service, deposit_command(id, "5.00"))
        .await
        .expect("booked at the newest instant");
}
