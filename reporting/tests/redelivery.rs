//! The projection consumer against real NATS and PostgreSQL: redelivered events change
//! the read models once, a projector killed in the middle of a batch is resumed from its
//! own checkpoint at once, and an event that arrives before its predecessor is parked and
//! holds the watermark back until the missing event arrives.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use chrono::{TimeZone, Utc};
use ledger::{RecordedEvent, subjects, testing::FakeLedger};
use platform::{config::NatsSettings, testing};
use reporting::{
    consumer::{Processed, ProjectionConsumer},
    projection::Projector,
};
use rust_decimal::Decimal;
use sqlx::PgPool;

const DEADLINE: Duration = Duration::from_secs(15);

struct Harness {
    pool: PgPool,
    js: jetstream::Context,
    settings: NatsSettings,
    consumer: ProjectionConsumer,
}

impl Harness {
    async fn new() -> Self {
        let (pool, _) = testing::fresh_pool(vec![(reporting::migrator(), reporting::SCHEMA)]).await;
        let settings = testing::fresh_nats().await;
        let nats = async_nats::connect(&settings.url)
            .await
            .expect("NATS reachable; start it with scripts/services");
        let projector = Projector::new(pool.clone(), settings.stream.clone());
        let consumer = ProjectionConsumer::new(nats.clone(), settings.clone(), projector);
        consumer.stream().await.expect("stream");
        Self {
            pool,
            js: jetstream::new(nats),
            settings,
            consumer,
        }
    }

    /// Publishes as the relay does; `message_id` lets a test bypass JetStream's deduplication.
    async fn publish_as(&self, event: &RecordedEvent, message_id: &str) {
        let subject = subjects::event_subject(
            &self.settings.subject_prefix,
            event.stream_id,
            &event.event_type,
        );
        let body = serde_json::to_vec(event).expect("json");
        self.js
            .send_publish(
                subject,
                PublishMessage::build()
                    .message_id(message_id)
                    .payload(body.into()),
            )
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    async fn publish(&self, event: &RecordedEvent) {
        self.publish_as(event, &event.event_id.to_string()).await;
    }

    /// Processes until the consumer has done `until` or the deadline passes.
    async fn process_until(&self, until: impl Fn(&Processed) -> bool) -> Processed {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut total = Processed::default();
        while tokio::time::Instant::now() < deadline {
            let step = self.consumer.try_process_next().await.expect("process");
            total.applied += step.applied;
            total.already_applied += step.already_applied;
            total.waiting += step.waiting;
            total.refused += step.refused;
            total.unparked += step.unparked;
            if until(&total) {
                return total;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the consumer did not get there in time: {total:?}");
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select count(*) from reporting.{table}"
        )))
        .fetch_one(&self.pool)
        .await
        .expect("count")
    }

    /// `(delivered, watermark)` stream sequences as committed.
    async fn sequences(&self) -> (i64, i64) {
        sqlx::query_as(
            "select delivered_sequence, watermark_sequence from reporting.projection_checkpoints where stream = $1",
        )
        .bind(&self.settings.stream)
        .fetch_one(&self.pool)
        .await
        .expect("checkpoint")
    }

    /// Whether `atLeast` would accept the event's position now.
    async fn at_least_accepts(&self, event: &RecordedEvent) -> bool {
        let position = reporting::queries::Position::parse("atLeast", &event.position.to_string())
            .expect("position");
        reporting::queries::wait_for_position(
            &self.pool,
            &self.settings.stream,
            position,
            Duration::ZERO,
        )
        .await
        .is_ok()
    }

    async fn balance(&self, event: &RecordedEvent) -> Decimal {
        sqlx::query_scalar("select balance from reporting.account_balances where account_id = $1")
            .bind(event.stream_id.as_uuid())
            .fetch_one(&self.pool)
            .await
            .expect("balance")
    }
}

fn at(minute: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 3, 17, minute, 0)
        .single()
        .expect("time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_delivered_twice_changes_the_read_models_once() {
    let h = Harness::new().await;
    let mut ledger = FakeLedger::new();
    let (id, opened) = ledger.open("USD", at(0));
    let deposit = ledger.deposit(id, "100.00", at(1));
    h.publish(&opened).await;
    h.publish(&deposit).await;
    let first = h.process_until(|p| p.applied == 2).await;
    assert_eq!(first.already_applied, 0);

    // The same event again, under another message id so JetStream cannot drop it.
    h.publish_as(&deposit, "redelivered-deposit").await;
    let second = h.process_until(|p| p.already_applied == 1).await;
    assert_eq!(second.applied, 0);

    assert_eq!(h.balance(&deposit).await, Decimal::new(10000, 2));
    assert_eq!(h.count("ledger_entries").await, 1);
    assert_eq!(h.count("audit_log").await, 2);
    assert_eq!(h.count("balance_history").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_inside_a_batch_is_resumed_from_its_checkpoint_at_once() {
    let h = Harness::new().await;
    let mut ledger = FakeLedger::new();
    let (id, opened) = ledger.open("EUR", at(0));
    h.publish(&opened).await;
    h.process_until(|p| p.applied == 1).await;

    // Hold the read models so the running projector's next batch blocks inside its transaction.
    let mut blocker = h.pool.begin().await.expect("begin");
    sqlx::query("lock table reporting.account_balances in share mode")
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(h.consumer.clone().run(stopped));
    let deposit = ledger.deposit(id, "42.00", at(1));
    h.publish(&deposit).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let waiting: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_stat_activity where datname = current_database()
                            and wait_event_type = 'Lock' and pid <> pg_backend_pid())",
        )
        .fetch_one(&h.pool)
        .await
        .expect("activity");
        if waiting {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the projector never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Kill it: the task and its connection vanish without any goodbye.
    running.abort();
    let _ = running.await;
    drop(stop);
    blocker.rollback().await.expect("rollback");

    // A new projector (another process, after a restart) applies the deposit at once: it
    // resumes from its own committed sequence; there is no acknowledgement deadline to wait out.
    let restarted = Projector::new(h.pool.clone(), h.settings.stream.clone());
    let nats = async_nats::connect(&h.settings.url).await.expect("nats");
    let consumer = ProjectionConsumer::new(nats, h.settings.clone(), restarted);
    let started = tokio::time::Instant::now();
    let step = consumer.try_process_next().await.expect("process");
    assert_eq!(step.applied, 1, "{step:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(h.balance(&deposit).await, Decimal::new(4200, 2));
    assert_eq!(h.count("ledger_entries").await, 1);
    assert!(h.at_least_accepts(&deposit).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_projector_continues_where_it_stopped() {
    let h = Harness::new().await;
    let mut ledger = FakeLedger::new();
    let (id, opened) = ledger.open("USD", at(0));
    h.publish(&opened).await;
    h.publish(&ledger.deposit(id, "1.00", at(1))).await;
    h.process_until(|p| p.applied == 2).await;
    assert_eq!(h.sequences().await, (2, 2));

    h.publish(&ledger.deposit(id, "2.00", at(2))).await;
    let nats = async_nats::connect(&h.settings.url).await.expect("nats");
    let restarted = ProjectionConsumer::new(
        nats,
        h.settings.clone(),
        Projector::new(h.pool.clone(), h.settings.stream.clone()),
    );
    let step = restarted.try_process_next().await.expect("process");
    assert_eq!(
        (step.applied, step.already_applied),
        (1, 0),
        "only the new event is read again"
    );
    assert_eq!(h.sequences().await, (3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_before_its_predecessor_is_parked_and_holds_the_watermark_back() {
    let h = Harness::new().await;
    let mut ledger = FakeLedger::new();
    let (id, opened) = ledger.open("USD", at(0));
    let (other, other_opened) = ledger.open("USD", at(0));
    let first = ledger.deposit(id, "1.00", at(1));
    let second = ledger.deposit(id, "2.00", at(2));
    let unrelated = ledger.deposit(other, "5.00", at(3));
    h.publish(&opened).await;
    h.publish(&other_opened).await;
    h.publish(&second).await;
    h.publish(&unrelated).await;
    let before = h.process_until(|p| p.applied == 3 && p.waiting == 1).await;
    assert_eq!(before.applied, 3, "everything but the early event applies");
    assert_eq!(h.balance(&opened).await, Decimal::new(0, 2));
    assert_eq!(h.balance(&unrelated).await, Decimal::new(500, 2));
    assert_eq!(h.count("parked_events").await, 1);
    // The unrelated deposit is applied, but it was published after a parked event: atLeast waits.
    assert_eq!(h.sequences().await, (4, 2));
    assert!(!h.at_least_accepts(&unrelated).await);
    assert!(h.at_least_accepts(&other_opened).await);

    h.publish(&first).await;
    let after = h.process_until(|p| p.applied == 1).await;
    assert_eq!(after.unparked, 1);
    assert_eq!(h.balance(&second).await, Decimal::new(300, 2));
    assert_eq!(h.count("ledger_entries").await, 3);
    assert_eq!(h.count("parked_events").await, 0);
    assert_eq!(h.sequences().await, (5, 5));
    assert!(h.at_least_accepts(&unrelated).await);
    assert!(h.at_least_accepts(&second).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_breaks_the_hash_chain_is_refused_and_halts_the_account() {
    let h = Harness::new().await;
    let mut ledger = FakeLedger::new();
    let (id, opened) = ledger.open("USD", at(0));
    let deposit = ledger.deposit(id, "10.00", at(1));
    let later = ledger.deposit(id, "5.00", at(2));
    h.publish(&opened).await;
    h.process_until(|p| p.applied == 1).await;

    // Someone edited the amount after the hash was computed.
    let mut tampered = deposit.clone();
    tampered.payload["amount"] = serde_json::json!("1000.00");
    tampered.payload["balanceAfter"] = serde_json::json!("1000.00");
    h.publish_as(&tampered, "tampered").await;
    h.process_until(|p| p.refused == 1).await;

    // The genuine event cannot be applied any more either: the account is halted.
    h.publish(&deposit).await;
    h.publish(&later).await;
    let after = h.process_until(|p| p.refused + p.waiting >= 2).await;
    assert_eq!(after.applied, 0);

    assert_eq!(
        h.balance(&opened).await,
        Decimal::new(0, 2),
        "nothing tampered was applied"
    );
    let alerts: Vec<(uuid::Uuid, i64, String)> =
        sqlx::query_as("select account_id, stream_version, reason from reporting.integrity_alerts")
            .fetch_all(&h.pool)
            .await
            .expect("alerts");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].0, id.as_uuid());
    assert_eq!(alerts[0].1, 2);
    assert!(alerts[0].2.contains("does not match"), "{}", alerts[0].2);
    let halted: bool =
        sqlx::query_scalar("select halted from reporting.account_balances where account_id = $1")
            .bind(id.as_uuid())
            .fetch_one(&h.pool)
            .await
            .expect("halted");
    assert!(halted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_previous_hash_does_not_match_is_refused() {
    let h = Harness::new().await;
    let mut honest = FakeLedger::new();
    let (id, opened) = honest.open("USD", at(0));
    h.publish(&opened).await;
    h.process_until(|p| p.applied == 1).await;

    // A well-formed event whose chain starts somewhere else (say, a forged history).
    let mut forged = honest.deposit(id, "10.00", at(1));
    forged.prev_hash = Some(ledger::Hash::from_bytes([9; 32]));
    forged.hash = forged.expected_hash();
    assert!(forged.hash_is_intact(), "the forgery is self-consistent");
    h.publish(&forged).await;
    h.process_until(|p| p.refused == 1).await;

    let reason: String = sqlx::query_scalar("select reason from reporting.integrity_alerts")
        .fetch_one(&h.pool)
        .await
        .expect("alert");
    assert!(reason.starts_with("previousHash"), "{reason}");
    assert_eq!(h.count("ledger_entries").await, 0);
}
