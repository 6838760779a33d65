//! The relay against real PostgreSQL and NATS: gap-free publication in a safe order,
//! exactly once per event, a single publisher per database, and republishing.

use std::collections::{HashMap, HashSet};

use accounts::{
    commands::{AccountsService, CommandContext, MovementOutcome},
    domain::{Deposit, Holder, OpenAccount},
    integrity::IntegritySettings,
    relay::{Relay, Step, try_lock},
    store::EventStore,
};
use async_nats::jetstream;
use chrono::{DurationRound, TimeDelta, Utc};
use ledger::{
    AccountId, CommandId, Currency, EventId, EventMetadata, Hash, PositiveAmount, RecordedEvent,
    events::{AccountEvent, AccountOpened},
    hashing::{EventHashInput, event_hash},
};
use platform::{config::NatsSettings, testing};
use rust_decimal::Decimal;
use sqlx::{Connection, PgConnection, PgPool};

struct Harness {
    pool: PgPool,
    service: AccountsService,
    nats: async_nats::Client,
    settings: NatsSettings,
}

impl Harness {
    async fn new() -> Self {
        let (pool, _) = testing::fresh_pool(vec![(accounts::migrator(), accounts::SCHEMA)]).await;
        let settings = testing::fresh_nats().await;
        let nats = async_nats::connect(&settings.url)
            .await
            .expect("NATS reachable; start it with scripts/services");
        Self {
            service: AccountsService::new(EventStore::new(pool.clone())),
            pool,
            nats,
            settings,
        }
    }

    fn relay(&self) -> Relay {
        let key = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
        Relay::new(
            self.pool.clone(),
            self.nats.clone(),
            self.settings.clone(),
            IntegritySettings::with_key(key),
        )
    }

    fn context(&self, key: &str, _command_type: &'static str) -> CommandContext {
        CommandContext {
            actor: "relay-test".into(),
            roles: vec!["teller".into()],
            correlation_id: "relay-test".into(),
            client_addr: None,
            idempotency_key: key.into(),
            request_hash: Hash::from_bytes([7; 32]),
        }
    }

    async fn open(&self) -> AccountId {
        let id = AccountId::generate();
        let command = OpenAccount {
            account_id: id,
            holder: Holder::parse("Relay Test").expect("holder"),
            currency: Currency::parse("USD").expect("usd"),
            overdraft_limit: Decimal::ZERO,
        };
        let key = format!("open-{id}");
        self.service
            .execute(&self.context(&key, "openAccount"), command)
            .await
            .expect("open account");
        id
    }

    async fn deposit(&self, id: AccountId, amount: i64) -> MovementOutcome {
        let command = Deposit {
            account_id: id,
            amount: PositiveAmount::parse(Decimal::from(amount)).expect("amount"),
            reference: None,
            value_date: None,
        };
        let key = format!("deposit-{}", uuid::Uuid::new_v4());
        self.service
            .execute(&self.context(&key, "deposit"), command)
            .await
            .expect("deposit")
    }

    /// Steps the relay on `conn` until it has nothing more to publish.
    async fn drain(&self, relay: &mut Relay, conn: &mut PgConnection) -> usize {
        let mut published = 0;
        for _ in 0..1_000 {
            match relay.step(conn).await.expect("relay step") {
                Step::Published(count) => published += count,
                Step::Idle => return published,
            }
        }
        panic!("the relay never became idle");
    }

    /// Steps the relay until it has published `expected` events. Transactions still open in
    /// other databases of the server (other tests) can hold publication back for a moment:
    /// the safe horizon is the server's oldest running transaction.
    async fn drain_until(
        &self,
        relay: &mut Relay,
        conn: &mut PgConnection,
        expected: usize,
    ) -> usize {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        let mut published = 0;
        while published < expected && tokio::time::Instant::now() < deadline {
            match relay.step(conn).await.expect("relay step") {
                Step::Published(count) => published += count,
                Step::Idle => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        published + self.drain(relay, conn).await
    }

    /// Every message in the stream, in stream order.
    async fn published(&self) -> Vec<RecordedEvent> {
        let js = jetstream::new(self.nats.clone());
        let mut stream = js
            .get_stream(&self.settings.stream)
            .await
            .expect("stream exists");
        let last = stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence;
        let mut events = Vec::new();
        for sequence in 1..=last {
            let message = stream.get_raw_message(sequence).await.expect("message");
            let event: RecordedEvent =
                serde_json::from_slice(&message.payload).expect("a recorded event");
            let expected_subject = format!(
                "{}.accounts.{}.{}",
                self.settings.subject_prefix, event.stream_id, event.event_type
            );
            assert_eq!(message.subject.as_str(), expected_subject);
            events.push(event);
        }
        events
    }

    async fn stored_event_ids(&self) -> HashSet<uuid::Uuid> {
        sqlx::query_scalar::<_, uuid::Uuid>("select event_id from accounts.events")
            .fetch_all(&self.pool)
            .await
            .expect("event ids")
            .into_iter()
            .collect()
    }
}

/// Appends an AccountOpened row inside `tx` without committing it, as a slow command would.
async fn open_in_open_transaction(conn: &mut PgConnection) -> AccountId {
    let id = AccountId::generate();
    let event = AccountEvent::AccountOpened(AccountOpened {
        account_id: id,
        holder: "Late Committer".into(),
        currency: Currency::parse("USD").expect("usd"),
        overdraft_limit: Decimal::ZERO,
    });
    let metadata = serde_json::to_value(EventMetadata {
        actor: "relay-test".into(),
        roles: vec!["teller".into()],
        correlation_id: "late".into(),
        causation_id: None,
        command_id: CommandId::generate(),
        command_type: "openAccount".into(),
        idempotency_key: None,
        client_addr: None,
    })
    .expect("metadata");
    let payload = event.to_payload();
    let event_id = EventId::generate();
    let recorded_at = Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .expect("truncate to microseconds");
    let hash = event_hash(
        None,
        &EventHashInput {
            event_id,
            stream_id: id,
            stream_version: 1,
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload: &payload,
            metadata: &metadata,
            recorded_at,
        },
    );
    sqlx::query(
        "insert into accounts.events
             (event_id, stream_id, stream_version, event_type, event_version, payload, metadata, recorded_at, hash)
         values ($1, $2, 1, $3, $4, $5, $6, $7, $8)",
    )
    .bind(event_id.as_uuid())
    .bind(id.as_uuid())
    .bind(event.event_type())
    .bind(event.event_version())
    .bind(payload)
    .bind(metadata)
    .bind(recorded_at)
    .bind(hash.as_bytes().as_slice())
    .execute(&mut *conn)
    .await
    .expect("insert the late event");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_late_is_published_once_and_nothing_is_skipped() {
    let h = Harness::new().await;
    let mut relay = h.relay();
    let mut relay_conn = relay.lock_connection().await.expect("relay connection");
    platform::messaging::ensure_stream(&jetstream::new(h.nats.clone()), &h.settings)
        .await
        .expect("stream");

    let early = h.open().await;
    h.deposit(early, 10).await;
    assert_eq!(
        h.drain_until(&mut relay, &mut relay_conn, 2).await,
        2,
        "the first two events are published"
    );

    // A transaction takes a position and stays open while later ones commit.
    let mut slow = PgConnection::connect_with(&h.pool.connect_options())
        .await
        .expect("connect");
    sqlx::query("begin")
        .execute(&mut slow)
        .await
        .expect("begin");
    let late = open_in_open_transaction(&mut slow).await;
    let late_position: i64 =
        sqlx::query_scalar("select position from accounts.events where stream_id = $1")
            .bind(late.as_uuid())
            .fetch_one(&mut slow)
            .await
            .expect("late position");

    for amount in 1..=5 {
        h.deposit(early, amount).await;
    }
    let other = h.open().await;
    h.deposit(other, 7).await;
    let committed_after: i64 = sqlx::query_scalar("select max(position) from accounts.events")
        .fetch_one(&h.pool)
        .await
        .expect("max position");
    assert!(
        committed_after > late_position,
        "later commits took higher positions"
    );

    // Nothing that committed after the open transaction began may be published yet:
    // publishing it would let a reader checkpoint past the late event.
    assert_eq!(h.drain(&mut relay, &mut relay_conn).await, 0);

    sqlx::query("commit")
        .execute(&mut slow)
        .await
        .expect("commit");
    assert_eq!(
        h.drain_until(&mut relay, &mut relay_conn, 1 + 5 + 2).await,
        1 + 5 + 2
    );

    let published = h.published().await;
    let published_ids: Vec<uuid::Uuid> = published.iter().map(|e| e.event_id.as_uuid()).collect();
    let unique: HashSet<uuid::Uuid> = published_ids.iter().copied().collect();
    assert_eq!(
        unique.len(),
        published_ids.len(),
        "no event published twice"
    );
    assert_eq!(
        unique,
        h.stored_event_ids().await,
        "every stored event published"
    );

    let mut next_version: HashMap<AccountId, i64> = HashMap::new();
    for event in &published {
        let expected = next_version.entry(event.stream_id).or_insert(1);
        assert_eq!(
            event.stream_version, *expected,
            "per-account versions in order"
        );
        *expected += 1;
        assert!(event.hash_is_intact(), "published exactly as stored");
    }
    assert_eq!(next_version[&late], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relay_publishes_per_database_and_a_standby_takes_over() {
    let h = Harness::new().await;
    let first = h.relay();
    let mut leader = first.lock_connection().await.expect("connection");
    assert!(
        try_lock(&mut leader).await.expect("lock"),
        "the first relay leads"
    );
    let mut standby = first.lock_connection().await.expect("connection");
    assert!(
        !try_lock(&mut standby).await.expect("lock"),
        "a second relay stands by"
    );

    // The leader's connection goes away (its process died): the standby takes the lead.
    leader.close().await.expect("close");
    let mut took_over = false;
    for _ in 0..100 {
        if try_lock(&mut standby).await.expect("lock") {
            took_over = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        took_over,
        "the standby takes the lead once the leader's connection is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishing_adds_no_duplicates_within_the_duplicate_window() {
    let h = Harness::new().await;
    let mut relay = h.relay();
    let mut conn = relay.lock_connection().await.expect("connection");
    platform::messaging::ensure_stream(&jetstream::new(h.nats.clone()), &h.settings)
        .await
        .expect("stream");
    let id = h.open().await;
    for amount in 1..=3 {
        h.deposit(id, amount).await;
    }
    assert_eq!(h.drain_until(&mut relay, &mut conn, 4).await, 4);

    accounts::relay::rewind(&h.pool, &h.settings.stream)
        .await
        .expect("rewind");
    assert_eq!(
        h.drain_until(&mut relay, &mut conn, 4).await,
        4,
        "everything is sent again"
    );
    assert_eq!(
        h.published().await.len(),
        4,
        "JetStream dropped the duplicates by Nats-Msg-Id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_relay_publishes_commands_as_they_commit() {
    let h = Harness::new().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(h.relay().run(stopped));
    let id = h.open().await;
    h.deposit(id, 25).await;

    let mut count = 0;
    for _ in 0..250 {
        let js = jetstream::new(h.nats.clone());
        if let Ok(mut stream) = js.get_stream(&h.settings.stream).await {
            count = stream.info().await.map(|i| i.state.messages).unwrap_or(0);
            if count == 2 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(count, 2, "both events reached JetStream");
    stop.send(true).expect("stop");
    task.await.expect("relay stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_is_signed_when_the_interval_passes_before_enough_events() {
    let h = Harness::new().await;
    let mut integrity =
        IntegritySettings::with_key(ed25519_dalek::SigningKey::from_bytes(&[12; 32]));
    integrity.checkpoint_events = 1_000;
    integrity.checkpoint_interval = std::time::Duration::ZERO;
    let public_key = integrity.public_key();
    let mut relay = Relay::new(
        h.pool.clone(),
        h.nats.clone(),
        h.settings.clone(),
        integrity,
    );
    let mut conn = relay.lock_connection().await.expect("connection");
    platform::messaging::ensure_stream(&jetstream::new(h.nats.clone()), &h.settings)
        .await
        .expect("stream");
    let id = h.open().await;
    h.deposit(id, 5).await;
    assert_eq!(h.drain_until(&mut relay, &mut conn, 2).await, 2);
    // The interval has passed: what was folded is signed without waiting for 1000 events.
    assert_eq!(relay.step(&mut conn).await.expect("idle step"), Step::Idle);

    let checkpoint = accounts::integrity::latest_checkpoint(&h.pool)
        .await
        .expect("read")
        .expect("a checkpoint although far fewer than 1000 events were published");
    assert_eq!(checkpoint.event_count, 2);
    assert_eq!(checkpoint.verify_signature(&public_key), Ok(()));
}
