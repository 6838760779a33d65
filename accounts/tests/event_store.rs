//! The PostgreSQL event store on its own: atomic multi-stream appends with expected versions,
//! idempotency rows, immutability of `accounts.events`, the hash chain, and snapshots.

mod support;

use accounts::{
    domain::{Account, AccountStatus},
    store::{
        Appended, AppendedStream, EVENTS_CHANNEL, EventStore, IdempotencyRow, NewEvent, NewStream,
        SNAPSHOT_INTERVAL_EVENTS, SNAPSHOT_SCHEMA_VERSION, StoreError, StreamAppend,
    },
};
use chrono::{Duration as TimeDelta, Utc};
use ledger::{
    AccountEvent, AccountId, EventId, Hash, RecordedEvent, TransferId,
    events::{AccountOpened, Movement, TransferCredited, TransferDebited},
    hashing::EventHashInput,
};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{Executor, postgres::PgListener};
use support::{
    DRIVE_DEADLINE, TestDb, all_event_rows, assert_stream_sound, assert_tx_ids_follow_versions,
    currency, dec, idempotency_key_count, insert_next_deposit, insert_raw_event, metadata,
    microseconds, stream_event_count, until_backends_wait_for_locks,
};

fn opened(id: AccountId, currency_code: &str) -> AccountEvent {
    let currency = currency(currency_code);
    AccountEvent::AccountOpened(AccountOpened {
        account_id: id,
        holder: "Ada Lovelace".into(),
        currency,
        overdraft_limit: currency.zero(),
    })
}

/// Deposits of `value` each, decided one after another against `state`.
fn deposits(state: &Account, value: &str, count: usize) -> Vec<AccountEvent> {
    let mut balance = state.balance;
    (0..count)
        .map(|_| {
            balance += dec(value);
            AccountEvent::MoneyDeposited(Movement {
                amount: dec(value),
                currency: state.currency,
                balance_after: balance,
                reference: None,
                value_date: chrono::Utc::now(),
            })
        })
        .collect()
}

fn withdrawal(state: &Account, value: &str) -> AccountEvent {
    AccountEvent::MoneyWithdrawn(Movement {
        amount: dec(value),
        currency: state.currency,
        balance_after: state.balance - dec(value),
        reference: None,
        value_date: chrono::Utc::now(),
    })
}

/// The two legs of a transfer of `value` from `from` to `to`, decided against their states.
fn legs(from: &Account, to: &Account, value: &str) -> (AccountEvent, AccountEvent) {
    let transfer_id = TransferId::generate();
    let amount = dec(value);
    (
        AccountEvent::TransferDebited(TransferDebited {
            transfer_id,
            to_account_id: to.id,
            amount,
            currency: from.currency,
            balance_after: from.balance - amount,
            reference: None,
            value_date: chrono::Utc::now(),
        }),
        AccountEvent::TransferCredited(TransferCredited {
            transfer_id,
            from_account_id: from.id,
            amount,
            currency: to.currency,
            balance_after: to.balance + amount,
            reference: None,
            value_date: chrono::Utc::now(),
        }),
    )
}

fn on(state: &Account, events: Vec<AccountEvent>) -> StreamAppend {
    StreamAppend {
        stream_id: state.id,
        expected_version: state.version,
        state: Some(state.clone()),
        events,
    }
}

async fn append(store: &EventStore, streams: Vec<StreamAppend>) -> Result<Appended, StoreError> {
    store.append(streams, &metadata("test")).await
}

/// Appends through the transaction a command uses, with an idempotency key whose stored
/// answer is `{"position": ...}`: heads, the expected-version check, events, key, commit.
async fn append_with_key(
    store: &EventStore,
    key: &str,
    streams: Vec<StreamAppend>,
) -> Result<Appended, StoreError> {
    let metadata = serde_json::to_value(metadata("transfer")).expect("metadata");
    let ids: Vec<AccountId> = streams.iter().map(|s| s.stream_id).collect();
    let mut tx = store.begin().await?;
    let heads = tx.heads(&ids).await?;
    let expected: Vec<(AccountId, i64)> = streams
        .iter()
        .map(|s| (s.stream_id, s.expected_version))
        .collect();
    if expected.iter().any(|(id, v)| heads.version(*id) != *v) {
        tx.rollback().await?;
        return Err(StoreError::Conflict {
            moved: store.moved(&expected).await?,
        });
    }
    let new: Vec<NewStream> = streams
        .iter()
        .map(|s| NewStream {
            stream_id: s.stream_id,
            events: s
                .events
                .iter()
                .map(|e| NewEvent {
                    event: e.clone(),
                    metadata: metadata.clone(),
                })
                .collect(),
        })
        .collect();
    let recorded = match tx.append(&heads, &new).await {
        Ok(recorded) => recorded,
        Err(StoreError::Conflict { .. }) => {
            drop(tx);
            return Err(StoreError::Conflict {
                moved: store.moved(&expected).await?,
            });
        }
        Err(other) => return Err(other),
    };
    let position = recorded.iter().map(|e| e.position).max().unwrap_or(0);
    let taken = tx
        .record_keys(&[IdempotencyRow {
            actor: "teller-ada".into(),
            key: key.into(),
            command_type: "transfer".into(),
            request_hash: Hash::from_bytes([7; 32]),
            response: json!({ "position": position }),
            position,
        }])
        .await?;
    if !taken.is_empty() {
        tx.rollback().await?;
        return Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "idempotency key {key:?} was recorded by another command"
        ))));
    }
    tx.commit().await?;
    let mut appended = Appended {
        streams: Vec::new(),
        position,
    };
    for stream in streams {
        let events: Vec<RecordedEvent> = recorded
            .iter()
            .filter(|e| e.stream_id == stream.stream_id)
            .cloned()
            .collect();
        let mut state = stream.state;
        for (event, stored) in stream.events.iter().zip(&events) {
            state = accounts::domain::evolve(state, event, stored.recorded_at);
        }
        appended.streams.push(AppendedStream {
            stream_id: stream.stream_id,
            events,
            state_after: state.expect("an opened stream"),
        });
    }
    Ok(appended)
}

fn state_after(appended: &Appended, id: AccountId) -> Account {
    appended
        .stream(id)
        .expect("stream appended")
        .state_after
        .clone()
}

async fn open_stream(store: &EventStore, id: AccountId, currency_code: &str) -> Account {
    let appended = append(
        store,
        vec![StreamAppend {
            stream_id: id,
            expected_version: 0,
            state: None,
            events: vec![opened(id, currency_code)],
        }],
    )
    .await
    .expect("open the stream");
    state_after(&appended, id)
}

async fn open_funded(store: &EventStore, id: AccountId, value: &str) -> Account {
    let state = open_stream(store, id, "USD").await;
    let appended = append(store, vec![on(&state, deposits(&state, value, 1))])
        .await
        .expect("fund the stream");
    state_after(&appended, id)
}

/// Two new account ids, the first sorting before the second (the store's lock order).
fn two_ids() -> (AccountId, AccountId) {
    let (x, y) = (AccountId::generate(), AccountId::generate());
    if x < y { (x, y) } else { (y, x) }
}

/// A transfer between two streams where one of them received a deposit after it was
/// loaded: the append must fail with a conflict on that stream and write nothing at all.
async fn stale_leg_writes_neither_leg(stale_sorts_last: bool) {
    let db = TestDb::new().await;
    let store = db.store();
    let (low, high) = two_ids();
    let (source_id, destination_id) = if stale_sorts_last {
        (low, high)
    } else {
        (high, low)
    };
    let source = open_funded(&store, source_id, "100.00").await;
    let destination = open_stream(&store, destination_id, "USD").await;
    let loaded = store.load(destination_id).await.expect("load destination");
    assert_eq!(loaded.account.as_ref(), Some(&destination));

    // A deposit lands on the destination after it was loaded.
    append(
        &store,
        vec![on(&destination, deposits(&destination, "5.00", 1))],
    )
    .await
    .expect("the deposit that lands in between");
    let source_before = store.read_stream_from(source_id, 1).await.expect("read");
    let destination_before = store
        .read_stream_from(destination_id, 1)
        .await
        .expect("read");
    let keys_before = idempotency_key_count(&db.pool).await;

    let (debit, credit) = legs(&source, &destination, "30.00");
    let result = append_with_key(
        &store,
        "stale-transfer",
        vec![on(&source, vec![debit]), on(&destination, vec![credit])],
    )
    .await;

    assert!(
        matches!(
            result,
            Err(StoreError::Conflict { ref moved }) if moved == &vec![destination_id]
        ),
        "{result:?}"
    );
    assert_eq!(
        store.read_stream_from(source_id, 1).await.expect("read"),
        source_before
    );
    assert_eq!(
        store
            .read_stream_from(destination_id, 1)
            .await
            .expect("read"),
        destination_before
    );
    assert_eq!(source_before.len(), 2);
    assert_eq!(destination_before.len(), 2);
    assert_eq!(store.load(source_id).await.expect("load").version, 2);
    assert_eq!(store.load(destination_id).await.expect("load").version, 2);
    assert_eq!(
        store
            .stored_response("teller-ada", "stale-transfer")
            .await
            .expect("read"),
        None
    );
    assert_eq!(idempotency_key_count(&db.pool).await, keys_before);
}

#[tokio::test]
async fn a_transfer_whose_second_leg_conflicts_writes_neither_leg() {
    stale_leg_writes_neither_leg(true).await;
}

#[tokio::test]
async fn a_transfer_whose_first_leg_conflicts_writes_neither_leg() {
    stale_leg_writes_neither_leg(false).await;
}

/// A rival transaction writes the destination's next version but has not committed when
/// the transfer checks its heads; the transfer's insert then waits on the rival and fails
/// once the rival commits. Returns the transfer's result, its streams and their states.
async fn transfer_loses_to_an_uncommitted_rival(
    db: &TestDb,
) -> (Result<Appended, StoreError>, Account, Account) {
    let store = db.store();
    let (source_id, destination_id) = two_ids();
    let source = open_funded(&store, source_id, "100.00").await;
    let destination = open_stream(&store, destination_id, "USD").await;

    let mut rival = db.connection().await;
    rival.execute("begin").await.expect("begin");
    let taken = insert_next_deposit(&mut rival, &store, destination_id, "5.00").await;
    assert_eq!(taken, 2);

    let (debit, credit) = legs(&source, &destination, "30.00");
    let streams = vec![on(&source, vec![debit]), on(&destination, vec![credit])];
    let transfer = tokio::spawn({
        let store = store.clone();
        async move { append_with_key(&store, "raced-transfer", streams).await }
    });
    until_backends_wait_for_locks(&db.pool, 1).await;
    rival.execute("commit").await.expect("the rival commits");
    let result = transfer.await.expect("transfer task");
    (result, source, destination)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_taken_between_the_check_and_the_write_rolls_back_the_whole_transfer() {
    let db = TestDb::new().await;
    let store = db.store();
    let (result, source, destination) = transfer_loses_to_an_uncommitted_rival(&db).await;

    assert!(
        matches!(result, Err(StoreError::Conflict { .. })),
        "{result:?}"
    );
    assert_eq!(stream_event_count(&db.pool, source.id).await, 2);
    let destination_events = assert_stream_sound(&store, destination.id).await;
    assert_eq!(destination_events.len(), 2, "only the rival's deposit");
    assert_eq!(destination_events[1].event_type, "MoneyDeposited");
    assert_eq!(
        store.load(source.id).await.expect("load").account,
        Some(source)
    );
    assert_eq!(
        store
            .stored_response("teller-ada", "raced-transfer")
            .await
            .expect("read"),
        None
    );
    assert_eq!(idempotency_key_count(&db.pool).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_found_while_writing_names_the_stream_that_moved() {
    let db = TestDb::new().await;
    let (result, source, destination) = transfer_loses_to_an_uncommitted_rival(&db).await;

    match result {
        Err(StoreError::Conflict { moved }) => {
            assert!(
                !moved.contains(&source.id),
                "the source stream did not move, yet the conflict names it"
            );
            assert_eq!(moved, vec![destination.id], "the destination moved");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn updates_deletes_and_truncates_of_events_are_refused_and_change_nothing() {
    let db = TestDb::new().await;
    let store = db.store();
    let (a, b) = two_ids();
    let source = open_funded(&store, a, "100.00").await;
    let destination = open_stream(&store, b, "USD").await;
    let (debit, credit) = legs(&source, &destination, "40.00");
    append(
        &store,
        vec![on(&source, vec![debit]), on(&destination, vec![credit])],
    )
    .await
    .expect("transfer");
    let before = all_event_rows(&db.pool).await;
    assert_eq!(before.len(), 5);

    let mutations = [
        "update accounts.events set payload = '{}'::jsonb",
        "update accounts.events set stream_version = stream_version + 100 where stream_version = 1",
        "delete from accounts.events",
        "delete from accounts.events where stream_version = 2",
        "truncate accounts.events",
        "truncate accounts.events restart identity cascade",
    ];
    for sql in mutations {
        let error = sqlx::query(sql)
            .execute(&db.pool)
            .await
            .expect_err("accounts.events is append-only");
        let db_error = error
            .as_database_error()
            .unwrap_or_else(|| panic!("{sql}: not a database error: {error}"));
        assert!(
            db_error.message().contains("append-only"),
            "{sql}: {}",
            db_error.message()
        );
        assert_eq!(
            db_error.code().as_deref(),
            Some("23001"),
            "{sql}: restrict_violation"
        );
    }
    assert_eq!(all_event_rows(&db.pool).await, before);
    assert_stream_sound(&store, a).await;
    assert_stream_sound(&store, b).await;
}

#[tokio::test]
async fn ten_thousand_events_load_through_their_snapshot() {
    const BATCHES: usize = 40;
    const BATCH_EVENTS: usize = 250;
    const TAIL_EVENTS: usize = 7;
    let db = TestDb::new().await;
    let store = db.store();
    let id = AccountId::generate();

    let mut state = open_stream(&store, id, "USD").await;
    for _ in 0..BATCHES {
        let events = deposits(&state, "1.00", BATCH_EVENTS);
        let appended = append(&store, vec![on(&state, events)])
            .await
            .expect("append a batch");
        state = state_after(&appended, id);
    }
    assert_eq!(state.version, 10_001);
    assert_eq!(state.balance.to_string(), "10000.00");

    let loaded = store.load(id).await.expect("load");
    assert!(
        loaded.from_snapshot,
        "a long stream loads from its snapshot"
    );
    assert!(loaded.events_replayed < SNAPSHOT_INTERVAL_EVENTS as usize);
    assert_eq!(loaded.version, 10_001);
    assert_eq!(loaded.account.as_ref(), Some(&state));

    // Events after the snapshot are replayed on top of it.
    for _ in 0..TAIL_EVENTS {
        let appended = append(&store, vec![on(&state, vec![withdrawal(&state, "1.00")])])
            .await
            .expect("append one withdrawal");
        state = state_after(&appended, id);
    }
    let loaded = store.load(id).await.expect("load");
    assert!(loaded.from_snapshot);
    assert_eq!(loaded.events_replayed, TAIL_EVENTS);
    assert_eq!(loaded.version, 10_008);
    let account = loaded.account.expect("account");
    assert_eq!(account.balance.to_string(), "9993.00");
    assert_eq!(account, state);

    let events = assert_stream_sound(&store, id).await;
    assert_eq!(events.len(), 10_008);
    let snapshot_head: Vec<u8> =
        sqlx::query_scalar("select last_hash from accounts.snapshots where stream_id = $1")
            .bind(id.as_uuid())
            .fetch_one(&db.pool)
            .await
            .expect("snapshot row");
    assert_eq!(
        snapshot_head,
        events[10_000].hash.as_bytes().to_vec(),
        "the snapshot names the hash of the event it was taken at"
    );
}

/// Builds a stream long enough to have a snapshot and returns it as loaded through it.
async fn stream_with_snapshot(store: &EventStore, id: AccountId) -> accounts::store::Loaded {
    let state = open_stream(store, id, "USD").await;
    let appended = append(store, vec![on(&state, deposits(&state, "2.50", 150))])
        .await
        .expect("append 150 deposits");
    assert_eq!(state_after(&appended, id).version, 151);
    let loaded = store.load(id).await.expect("load");
    assert!(loaded.from_snapshot);
    assert_eq!(loaded.events_replayed, 0);
    loaded
}

#[tokio::test]
async fn a_snapshot_of_an_unknown_schema_is_ignored_and_the_stream_replays_to_the_same_state() {
    let db = TestDb::new().await;
    let store = db.store();
    let id = AccountId::generate();
    let through_snapshot = stream_with_snapshot(&store, id).await;

    for schema_version in [
        SNAPSHOT_SCHEMA_VERSION + 1,
        SNAPSHOT_SCHEMA_VERSION - 1,
        999,
    ] {
        sqlx::query("update accounts.snapshots set schema_version = $1 where stream_id = $2")
            .bind(schema_version)
            .bind(id.as_uuid())
            .execute(&db.pool)
            .await
            .expect("change the snapshot's schema version");
        let replayed = store.load(id).await.expect("load by replay");
        assert!(!replayed.from_snapshot, "schema {schema_version} ignored");
        assert_eq!(replayed.events_replayed, 151);
        assert_eq!(replayed.version, through_snapshot.version);
        assert_eq!(replayed.head_hash, through_snapshot.head_hash);
        assert_eq!(replayed.account, through_snapshot.account);
    }
    let account = through_snapshot.account.expect("account");
    assert_eq!(account.balance.to_string(), "375.00");
}

#[tokio::test]
async fn an_unreadable_snapshot_is_ignored_and_the_stream_replays_to_the_same_state() {
    let db = TestDb::new().await;
    let store = db.store();
    let id = AccountId::generate();
    let through_snapshot = stream_with_snapshot(&store, id).await;

    sqlx::query(
        "update accounts.snapshots set state = '{\"shape\": \"from the future\"}'::jsonb
         where stream_id = $1",
    )
    .bind(id.as_uuid())
    .execute(&db.pool)
    .await
    .expect("spoil the snapshot");
    let replayed = store.load(id).await.expect("load by replay");
    assert!(!replayed.from_snapshot);
    assert_eq!(replayed.events_replayed, 151);
    assert_eq!(replayed.account, through_snapshot.account);
}

#[tokio::test]
async fn every_appended_event_is_chained_to_the_one_before_and_read_back_as_written() {
    let db = TestDb::new().await;
    let store = db.store();
    let (a, b) = two_ids();
    let mut written: Vec<RecordedEvent> = Vec::new();

    let opening = append(
        &store,
        vec![
            StreamAppend {
                stream_id: a,
                expected_version: 0,
                state: None,
                events: vec![opened(a, "USD")],
            },
            StreamAppend {
                stream_id: b,
                expected_version: 0,
                state: None,
                events: vec![opened(b, "USD")],
            },
        ],
    )
    .await
    .expect("open both in one append");
    let (mut state_a, mut state_b) = (state_after(&opening, a), state_after(&opening, b));
    written.extend(opening.streams.iter().flat_map(|s| s.events.clone()));

    let three = append(&store, vec![on(&state_a, deposits(&state_a, "10.00", 3))])
        .await
        .expect("three deposits in one append");
    state_a = state_after(&three, a);
    let tx_ids: Vec<i64> = sqlx::query_scalar(
        "select tx_id::text::bigint from accounts.events where stream_id = $1 and stream_version > 1",
    )
    .bind(a.as_uuid())
    .fetch_all(&db.pool)
    .await
    .expect("tx ids");
    assert!(
        tx_ids.len() == 3 && tx_ids.iter().all(|t| *t == tx_ids[0]),
        "one append is one transaction: {tx_ids:?}"
    );
    let events = &three.streams[0].events;
    assert!(
        events
            .iter()
            .all(|e| e.recorded_at == events[0].recorded_at),
        "one append has one time"
    );
    assert_eq!(three.position, events[2].position);
    written.extend(three.streams[0].events.clone());

    let (debit, credit) = legs(&state_a, &state_b, "12.34");
    let moved = append(
        &store,
        vec![on(&state_b, vec![credit]), on(&state_a, vec![debit])],
    )
    .await
    .expect("transfer");
    state_a = state_after(&moved, a);
    state_b = state_after(&moved, b);
    written.extend(moved.streams.iter().flat_map(|s| s.events.clone()));

    let frozen = append(
        &store,
        vec![on(
            &state_b,
            vec![AccountEvent::AccountFrozen(ledger::events::StatusChange {
                reason: "review".into(),
            })],
        )],
    )
    .await
    .expect("freeze");
    written.extend(frozen.streams[0].events.clone());
    assert_eq!(state_after(&frozen, b).status, AccountStatus::Frozen);

    let stored_a = assert_stream_sound(&store, a).await;
    let stored_b = assert_stream_sound(&store, b).await;
    assert_eq!(stored_a.len(), 5);
    assert_eq!(stored_b.len(), 3);
    // What the append returned is exactly what is stored.
    let mut stored: Vec<RecordedEvent> = stored_a.iter().chain(&stored_b).cloned().collect();
    stored.sort_by_key(|e| e.position);
    written.sort_by_key(|e| e.position);
    assert_eq!(stored, written);
    assert_eq!(state_a.balance, dec("17.66"));

    let tail = store.read_stream_from(a, 3).await.expect("tail");
    assert_eq!(
        tail.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert_eq!(tail[0].prev_hash, Some(stored_a[1].hash));
    assert_tx_ids_follow_versions(&db.pool).await;
}

#[tokio::test]
async fn an_append_after_an_event_stamped_in_the_future_is_not_stamped_earlier() {
    let db = TestDb::new().await;
    let store = db.store();
    let id = AccountId::generate();
    let state = open_stream(&store, id, "USD").await;
    let head = store.read_stream_from(id, 1).await.expect("read")[0].clone();

    // A row written while the clock ran an hour ahead.
    let ahead = microseconds(Utc::now() + TimeDelta::hours(1));
    let event = deposits(&state, "1.00", 1).remove(0);
    let payload = event.to_payload();
    let meta = serde_json::to_value(metadata("deposit")).expect("metadata");
    let mut conn = db.connection().await;
    insert_raw_event(
        &mut conn,
        Some(head.hash),
        &EventHashInput {
            event_id: EventId::generate(),
            stream_id: id,
            stream_version: 2,
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload: &payload,
            metadata: &meta,
            recorded_at: ahead,
        },
    )
    .await;

    let loaded = store.load(id).await.expect("load");
    let state = loaded.account.expect("account");
    let appended = append(&store, vec![on(&state, deposits(&state, "1.00", 1))])
        .await
        .expect("append after the future event");
    assert!(appended.streams[0].events[0].recorded_at >= ahead);
    let events = assert_stream_sound(&store, id).await;
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn a_used_idempotency_key_refuses_a_second_append_and_writes_nothing() {
    let db = TestDb::new().await;
    let store = db.store();
    let (a, b) = two_ids();
    let state_a = open_stream(&store, a, "USD").await;
    let state_b = open_stream(&store, b, "USD").await;

    let first = append_with_key(
        &store,
        "once",
        vec![on(&state_a, deposits(&state_a, "1.00", 1))],
    )
    .await
    .expect("first use of the key");
    let stored = store
        .stored_response("teller-ada", "once")
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(stored.response, json!({ "position": first.position }));
    assert_eq!(stored.command_type, "transfer");
    let recorded_position: i64 = sqlx::query_scalar(
        "select position from accounts.idempotency_keys where idempotency_key = 'once'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("key row");
    assert_eq!(recorded_position, first.position);

    let events_before = all_event_rows(&db.pool).await;
    let second = append_with_key(
        &store,
        "once",
        vec![on(&state_b, deposits(&state_b, "1.00", 1))],
    )
    .await;
    assert!(
        matches!(&second, Err(StoreError::Database(sqlx::Error::Protocol(reason)))
            if reason.contains("\"once\" was recorded by another command")),
        "{second:?}"
    );
    assert_eq!(all_event_rows(&db.pool).await, events_before);
    assert_eq!(store.load(b).await.expect("load").version, 1);
}

#[tokio::test]
async fn appends_at_a_version_the_stream_is_not_at_conflict_and_write_nothing() {
    let db = TestDb::new().await;
    let store = db.store();
    let id = AccountId::generate();
    let state = open_stream(&store, id, "USD").await;

    let mut ahead = on(&state, deposits(&state, "1.00", 1));
    ahead.expected_version = 5;
    let reopen = StreamAppend {
        stream_id: id,
        expected_version: 0,
        state: None,
        events: vec![opened(id, "USD")],
    };
    for (stream, expected) in [(ahead, 5), (reopen, 0)] {
        let result = append(&store, vec![stream]).await;
        assert!(
            matches!(&result, Err(StoreError::Conflict { moved }) if moved == &vec![id]),
            "expected version {expected}: {result:?}"
        );
        assert!(result.is_err(), "{result:?}");
    }
    assert_eq!(stream_event_count(&db.pool, id).await, 1);
}

#[tokio::test]
async fn a_stream_that_does_not_start_with_its_opening_is_refused() {
    let db = TestDb::new().await;
    let store = db.store();
    let id = AccountId::generate();
    let result = append(
        &store,
        vec![StreamAppend {
            stream_id: id,
            expected_version: 0,
            state: None,
            events: vec![AccountEvent::MoneyDeposited(Movement {
                amount: dec("1.00"),
                currency: currency("USD"),
                balance_after: dec("1.00"),
                reference: None,
                value_date: chrono::Utc::now(),
            })],
        }],
    )
    .await;
    assert!(
        matches!(result, Err(StoreError::Corrupt { stream_id, .. }) if stream_id == id),
        "{result:?}"
    );
    assert_eq!(stream_event_count(&db.pool, id).await, 0);
}

#[tokio::test]
async fn loading_an_unknown_account_finds_nothing_at_version_zero() {
    let db = TestDb::new().await;
    let loaded = db.store().load(AccountId::generate()).await.expect("load");
    assert_eq!(loaded.account, None);
    assert_eq!(loaded.version, 0);
    assert_eq!(loaded.head_hash, None);
    assert!(!loaded.from_snapshot);
}

#[tokio::test]
async fn commands_wake_other_processes_relays_after_they_commit_at_a_bounded_rate() {
    let db = TestDb::new().await;
    let service = db.service();
    let mut listener = PgListener::connect_with(&db.pool).await.expect("listener");
    listener.listen(EVENTS_CHANNEL).await.expect("listen");

    let started = std::time::Instant::now();
    let id = support::open_with(&service, "USD", "0").await;
    for _ in 0..50 {
        support::run(&service, support::deposit_command(id, "1.00"))
            .await
            .expect("deposit");
    }
    let elapsed = started.elapsed();
    let first = tokio::time::timeout(DRIVE_DEADLINE, listener.recv())
        .await
        .expect("a notification within the deadline")
        .expect("notification");
    assert_eq!(first.channel(), EVENTS_CHANNEL);
    let mut notifications = 1u128;
    while let Ok(Ok(_)) =
        tokio::time::timeout(std::time::Duration::from_millis(200), listener.recv()).await
    {
        notifications += 1;
    }
    let bound = (elapsed + std::time::Duration::from_millis(200)).as_millis()
        / accounts::writer::CROSS_PROCESS_WAKE_INTERVAL.as_millis()
        + 2;
    assert!(
        notifications <= bound,
        "{notifications} notifications for 51 commits in {elapsed:?}: at most one per interval"
    );
}

/// The triggers stop ordinary writers and replica-mode sessions; a superuser can still switch
/// them off. The hash chain is what makes such an edit visible.
#[tokio::test]
async fn an_edit_made_behind_the_triggers_back_breaks_the_hash_chain() {
    let db = TestDb::new().await;
    let store = db.store();
    let id = AccountId::generate();
    let state = open_stream(&store, id, "USD").await;
    append(&store, vec![on(&state, deposits(&state, "10.00", 3))])
        .await
        .expect("deposits");

    let mut conn = db.connection().await;
    // Replica mode does not switch the triggers off: they are ENABLE ALWAYS.
    conn.execute("set session_replication_role = replica")
        .await
        .expect("replica mode");
    let refused = sqlx::query(
        "update accounts.events set event_version = event_version where stream_id = $1",
    )
    .bind(id.as_uuid())
    .execute(&mut conn)
    .await;
    assert!(
        refused.is_err(),
        "replica mode must not bypass the triggers"
    );
    conn.execute("reset session_replication_role")
        .await
        .expect("reset");
    conn.execute("alter table accounts.events disable trigger events_are_immutable")
        .await
        .expect("a superuser disables the trigger");
    sqlx::query(
        "update accounts.events set payload = jsonb_set(payload, '{amount}', '\"1000.00\"')
         where stream_id = $1 and stream_version = 2",
    )
    .bind(id.as_uuid())
    .execute(&mut conn)
    .await
    .expect("edit history");

    let events = store.read_stream_from(id, 1).await.expect("read");
    let intact: Vec<bool> = events.iter().map(RecordedEvent::hash_is_intact).collect();
    assert_eq!(intact, [true, false, true, true]);
    let decoded = events[1].decode().expect("decode");
    assert_eq!(decoded.balance_change(), Some(Decimal::new(100_000, 2)));
}
