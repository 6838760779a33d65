//! The stored v1 account stream (`fixtures/account_stream_v1.json`, kept forever) loads in
//! today's shape and takes new events on top of its hash chain.

mod support;

use accounts::domain::{Account, AccountStatus};
use chrono::{DateTime, Utc};
use ledger::{
    AccountEvent, AccountId, EventId, Hash,
    events::{AccountOpened, Movement},
    hashing::EventHashInput,
};
use serde::Deserialize;
use serde_json::Value;
use support::{
    TestDb, account_of, assert_stream_sound, currency, dec, deposit_command, insert_raw_event, run,
};
use uuid::Uuid;

const FIXTURE: &str = include_str!("fixtures/account_stream_v1.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoredStream {
    #[serde(rename = "about")]
    _about: String,
    stream_id: Uuid,
    events: Vec<StoredEvent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoredEvent {
    event_id: Uuid,
    stream_version: i64,
    event_type: String,
    event_version: i16,
    payload: Value,
    metadata: Value,
    recorded_at: DateTime<Utc>,
    /// The hash the row had when it was written.
    hash: String,
}

fn fixture() -> StoredStream {
    serde_json::from_str(FIXTURE).expect("the v1 fixture parses")
}

/// Inserts the fixture's rows as raw SQL, chaining each hash from the one before; checks each
/// computed hash against the one the fixture pins. Returns the stream id and its head hash.
async fn insert_fixture(db: &TestDb) -> (AccountId, Hash) {
    let stored = fixture();
    let stream_id = AccountId::from_uuid(stored.stream_id);
    let mut conn = db.connection().await;
    let mut prev: Option<Hash> = None;
    for event in &stored.events {
        let hash = insert_raw_event(
            &mut conn,
            prev,
            &EventHashInput {
                event_id: EventId::from_uuid(event.event_id),
                stream_id,
                stream_version: event.stream_version,
                event_type: &event.event_type,
                event_version: event.event_version,
                payload: &event.payload,
                metadata: &event.metadata,
                recorded_at: event.recorded_at,
            },
        )
        .await;
        assert_eq!(
            hash.to_hex(),
            event.hash,
            "hash of fixture version {}: the canonical encoding changed",
            event.stream_version
        );
        prev = Some(hash);
    }
    (stream_id, prev.expect("the fixture has events"))
}

#[test]
fn the_fixture_holds_the_old_shapes() {
    let stored = fixture();
    let shapes: Vec<(&str, i16)> = stored
        .events
        .iter()
        .map(|e| (e.event_type.as_str(), e.event_version))
        .collect();
    assert_eq!(
        shapes,
        [
            ("AccountOpened", 1),
            ("MoneyDeposited", 1),
            ("MoneyDeposited", 1),
            ("MoneyWithdrawn", 1)
        ]
    );
    assert!(stored.events[0].payload.get("owner").is_some());
    assert!(stored.events[0].payload.get("holder").is_none());
    assert!(stored.events[1].payload["amountMinor"].is_i64());
    assert!(stored.events[2].payload.get("reference").is_none());
}

#[tokio::test]
async fn the_stored_v1_stream_loads_in_the_current_shape() {
    let db = TestDb::new().await;
    let store = db.store();
    let (id, head) = insert_fixture(&db).await;
    let opened_at = fixture().events[0].recorded_at;

    let loaded = store.load(id).await.expect("load the v1 stream");
    assert!(!loaded.from_snapshot);
    assert_eq!(loaded.events_replayed, 4);
    assert_eq!(loaded.head_hash, Some(head));
    let account = loaded.account.expect("the account");
    assert_eq!(
        account,
        Account {
            id,
            holder: "Grace Hopper".into(),
            currency: currency("USD"),
            balance: dec("125.50"),
            overdraft_limit: dec("0.00"),
            status: AccountStatus::Open,
            version: 4,
            opened_at,
            holds: Default::default(),
            reversed: Default::default(),
            adjustments: Default::default(),
        }
    );
    assert_eq!(account.balance.to_string(), "125.50");
    assert_eq!(account.overdraft_limit.to_string(), "0.00");

    let events = assert_stream_sound(&store, id).await;
    let decoded: Vec<AccountEvent> = events
        .iter()
        .map(|e| e.decode().expect("every stored event decodes"))
        .collect();
    assert_eq!(
        decoded[0],
        AccountEvent::AccountOpened(AccountOpened {
            account_id: id,
            holder: "Grace Hopper".into(),
            currency: currency("USD"),
            overdraft_limit: dec("0.00"),
        })
    );
    assert_eq!(
        decoded[1],
        AccountEvent::MoneyDeposited(Movement {
            amount: dec("100.00"),
            currency: currency("USD"),
            balance_after: dec("100.00"),
            reference: Some("opening deposit".into()),
            // v1 had no value date: it is the booking instant.
            value_date: fixture().events[1].recorded_at,
        })
    );
    assert_eq!(
        decoded[2],
        AccountEvent::MoneyDeposited(Movement {
            amount: dec("50.50"),
            currency: currency("USD"),
            balance_after: dec("150.50"),
            reference: None,
            value_date: fixture().events[2].recorded_at,
        })
    );
    let AccountEvent::MoneyDeposited(movement) = &decoded[2] else {
        panic!("a deposit");
    };
    assert_eq!(movement.amount.to_string(), "50.50");
    // Reading upcasts; the stored rows stay exactly as written.
    assert_eq!(events[0].event_version, 1);
    assert_eq!(events[0].payload["owner"], "Grace Hopper");
    assert_eq!(events[1].payload["amountMinor"], 10_000);
}

#[tokio::test]
async fn a_deposit_appends_on_top_of_the_v1_stream() {
    let db = TestDb::new().await;
    let store = db.store();
    let service = db.service();
    let (id, head) = insert_fixture(&db).await;

    let outcome = run(&service, deposit_command(id, "10.00"))
        .await
        .expect("deposit onto the v1 stream");
    let account = account_of(&outcome);
    assert_eq!(account.balance.to_string(), "135.50");
    assert_eq!(account.version, 5);
    assert_eq!(account.holder, "Grace Hopper");

    let events = assert_stream_sound(&store, id).await;
    assert_eq!(events.len(), 5);
    let new = &events[4];
    assert_eq!(new.prev_hash, Some(head), "chained to the v1 head");
    assert_eq!(new.event_type, "MoneyDeposited");
    assert_eq!(
        new.event_version, 3,
        "new events are written in today's shape"
    );
    assert_eq!(new.payload["amount"], "10.00");
    assert_eq!(new.payload["balanceAfter"], "135.50");
    assert!(new.recorded_at > events[3].recorded_at);

    let reloaded = store
        .load(id)
        .await
        .expect("load")
        .account
        .expect("account");
    assert_eq!(&reloaded, account);
}
