//! Tamper detection: a superuser who edits, deletes, reorders or forges the event store's
//! history (or its signed checkpoints) is caught by `verify`, which names where history
//! diverges; audit proofs check offline with the public key alone.
//!
//! One store is built per run through `EventStore::append`: about 3,000 events (30
//! accounts, deposits, withdrawals and transfers), published by the real relay, which signs a
//! checkpoint every 250 events. Every test gets a copy of its own (`create database ...
//! template`), tampers with it the way someone with superuser access to PostgreSQL would
//! (disable the immutability trigger, change rows with SQL), and checks the report.

use std::collections::HashMap;

use accounts::{
    domain::Account,
    integrity::{
        IntegritySettings, Problem, ProblemKind, ProofError as StoreProofError, Report,
        VerifyOptions, audit_proof, latest_checkpoint, stored_checkpoints, verify,
    },
    relay::{Relay, Step},
    store::{EVENT_COLUMNS, EventStore, StreamAppend, recorded_event},
};
use async_nats::jetstream;
use chrono::TimeDelta;
use ed25519_dalek::{SigningKey, VerifyingKey};
use ledger::{
    AccountEvent, AccountId, CommandId, Currency, EventId, EventMetadata, Hash, RecordedEvent,
    TransferId,
    events::{AccountOpened, Movement, TransferCredited, TransferDebited},
    integrity::{
        AuditProof, CheckpointError, ProofError as OfflineProofError, SignedCheckpoint,
        fold_digest, key_id,
    },
};
use platform::config::NatsSettings;
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::{
    Connection, PgConnection, PgPool, Postgres, Row, Transaction, postgres::PgConnectOptions,
};
use tokio::{sync::OnceCell, time::Instant};

/// The platform's signing key in these tests; the public half is what a regulator holds.
const PLATFORM_KEY: [u8; 32] = [0x5a; 32];
/// A key that is not the platform's: what a tamperer could sign with.
const FORGER_KEY: [u8; 32] = [0xe7; 32];
/// Accounts that take part in transfers, opened at the start of history.
const TRANSFER_ACCOUNTS: usize = 27;
/// Accounts that never take part in a transfer, opened halfway through history.
const SOLO_ACCOUNTS: usize = 3;
/// Rounds of activity after the accounts are opened; each is one append (one transaction).
const ROUNDS: usize = 26;
/// The round in which the solo accounts are opened.
const SOLO_OPENED_IN_ROUND: usize = ROUNDS / 2;
/// A checkpoint is signed once this many events are folded since the last one.
const CHECKPOINT_EVENTS: i64 = 250;
/// Deposits appended after the last checkpoint, so some events are not yet covered.
const TAIL_DEPOSITS: usize = 10;
/// The account most cases tamper with (one that takes part in transfers).
const VICTIM: usize = 10;
/// How long the relay may take to catch up before a test gives up; catching up sooner ends
/// the wait at once.
const DRIVE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// A version no stream reaches, to move a row out of the way of the unique constraint.
const PARKED_VERSION_OFFSET: i64 = 1_000_000;

fn platform_key() -> SigningKey {
    SigningKey::from_bytes(&PLATFORM_KEY)
}

fn public_key() -> VerifyingKey {
    platform_key().verifying_key()
}

fn forger_key() -> SigningKey {
    SigningKey::from_bytes(&FORGER_KEY)
}

fn cents(value: i64) -> Decimal {
    Decimal::new(value, 2)
}

fn usd() -> Currency {
    Currency::parse("USD").expect("USD")
}

/// One stored event with the transaction that wrote it: the relay's order is `(tx, position)`.
#[derive(Clone, Debug)]
struct Stored {
    tx: u64,
    event: RecordedEvent,
}

impl Stored {
    fn key(&self) -> (u64, i64) {
        (self.tx, self.event.position)
    }
}

fn checkpoint_key(checkpoint: &SignedCheckpoint) -> (u64, i64) {
    (
        checkpoint.tx_id.parse().expect("a decimal tx id"),
        checkpoint.position,
    )
}

/// What every test's store starts from: built once per test run, then copied.
struct Base {
    /// How to reach the database the base was built in (copied as a template).
    connect: PgConnectOptions,
    nats: NatsSettings,
    ids: Vec<AccountId>,
    accounts: Vec<Option<Account>>,
    events: Vec<Stored>,
    checkpoints: Vec<SignedCheckpoint>,
}

static BASE: OnceCell<Base> = OnceCell::const_new();

/// A store built through `EventStore::append`, published and checkpointed by the real relay.
struct Ledger {
    pool: PgPool,
    store: EventStore,
    nats: NatsSettings,
    /// The relay and its connection, once a test publishes.
    relay: Option<(Relay, PgConnection)>,
    /// Every account's state, by index; solo accounts are the last [`SOLO_ACCOUNTS`].
    accounts: Vec<Option<Account>>,
    ids: Vec<AccountId>,
    /// Every event, in the relay's order, as last read from the store (before tampering).
    events: Vec<Stored>,
    /// The stored checkpoints, oldest first, as last read from the store.
    checkpoints: Vec<SignedCheckpoint>,
}

impl Ledger {
    /// A store of its own: a new database (named like every test database, so leftovers are
    /// swept) copied from the base store, which is built the first time a test asks.
    async fn fresh() -> Self {
        let base = BASE.get_or_init(Self::build_base).await;
        let template = base
            .connect
            .get_database()
            .expect("the base has a database name");
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = format!(
            "{}{seconds}_{}",
            platform::testing::TEST_DATABASE_PREFIX,
            uuid::Uuid::new_v4().simple()
        );
        let mut admin = PgConnection::connect_with(&base.connect.clone().database("postgres"))
            .await
            .expect("connect to the server");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "create database \"{name}\" template \"{template}\""
        )))
        .execute(&mut admin)
        .await
        .expect("copy the base store");
        let pool = PgPool::connect_with(base.connect.clone().database(&name))
            .await
            .expect("connect to the copy");
        Self {
            store: EventStore::new(pool.clone()),
            pool,
            nats: base.nats.clone(),
            relay: None,
            accounts: base.accounts.clone(),
            ids: base.ids.clone(),
            events: base.events.clone(),
            checkpoints: base.checkpoints.clone(),
        }
    }

    /// A fresh database and JetStream stream, about 3,000 events, every one published and
    /// folded, several signed checkpoints, and a few events after the newest checkpoint.
    async fn build_base() -> Base {
        let (pool, _) =
            platform::testing::fresh_pool(vec![(accounts::migrator(), accounts::SCHEMA)]).await;
        let nats = platform::testing::fresh_nats().await;
        let accounts_total = TRANSFER_ACCOUNTS + SOLO_ACCOUNTS;
        let mut ledger = Self {
            store: EventStore::new(pool.clone()),
            pool,
            nats,
            relay: None,
            accounts: vec![None; accounts_total],
            ids: (0..accounts_total).map(|_| AccountId::generate()).collect(),
            events: Vec::new(),
            checkpoints: Vec::new(),
        };
        for round in 0..=ROUNDS {
            ledger.append_round(round).await;
        }
        ledger.drain().await;
        ledger.append_tail().await;
        ledger.drain().await;
        ledger.reload().await;
        // A database is copied only while nobody is connected to it.
        if let Some((_, conn)) = ledger.relay.take() {
            conn.close().await.expect("close the relay connection");
        }
        ledger.pool.close().await;
        Base {
            connect: ledger.pool.connect_options().as_ref().clone(),
            nats: ledger.nats,
            ids: ledger.ids,
            accounts: ledger.accounts,
            events: ledger.events,
            checkpoints: ledger.checkpoints,
        }
    }

    /// The relay for this store, checkpointing every [`CHECKPOINT_EVENTS`] events.
    async fn relay(&mut self) -> &mut (Relay, PgConnection) {
        if self.relay.is_none() {
            let client = async_nats::connect(&self.nats.url)
                .await
                .expect("NATS reachable; start it with scripts/services");
            platform::messaging::ensure_stream(&jetstream::new(client.clone()), &self.nats)
                .await
                .expect("JetStream stream");
            let mut integrity = IntegritySettings::with_key(platform_key());
            integrity.checkpoint_events = CHECKPOINT_EVENTS;
            // Only the event count decides when a checkpoint is due, never the clock.
            integrity.checkpoint_interval = std::time::Duration::from_secs(24 * 60 * 60);
            let relay = Relay::new(self.pool.clone(), client, self.nats.clone(), integrity);
            let conn = relay.lock_connection().await.expect("relay connection");
            self.relay = Some((relay, conn));
        }
        self.relay.as_mut().expect("a relay")
    }

    fn victim(&self) -> AccountId {
        self.ids[VICTIM]
    }

    fn solo(&self) -> AccountId {
        self.ids[TRANSFER_ACCOUNTS]
    }

    /// One round of activity as one append: per account a deposit and a withdrawal, and per
    /// transfer account one transfer to another account (both legs in this transaction).
    async fn append_round(&mut self, round: usize) {
        let mut plan = Plan::new(self);
        for i in 0..TRANSFER_ACCOUNTS + SOLO_ACCOUNTS {
            let solo = i >= TRANSFER_ACCOUNTS;
            let opens_now = if solo {
                round == SOLO_OPENED_IN_ROUND
            } else {
                round == 0
            };
            if opens_now {
                plan.push(
                    i,
                    AccountEvent::AccountOpened(AccountOpened {
                        account_id: self.ids[i],
                        holder: format!("Holder {i}"),
                        currency: usd(),
                        overdraft_limit: Decimal::ZERO,
                    }),
                );
                plan.deposit(i, cents(100_000));
                continue;
            }
            if self.accounts[i].is_none() {
                continue;
            }
            let (i64_i, i64_r) = (i as i64, round as i64);
            plan.deposit(i, cents(5_000 + (i64_i * 37 + i64_r * 101) % 20_000));
            plan.withdraw(i, cents(1_000 + (i64_i * 53 + i64_r * 29) % 5_000));
            if !solo {
                let offset = 1 + round % (TRANSFER_ACCOUNTS - 1);
                let to = (i + offset) % TRANSFER_ACCOUNTS;
                plan.transfer(i, to, cents(500 + (i64_i * 71 + i64_r * 17) % 3_000));
            }
        }
        self.commit(plan, round).await;
    }

    /// A few deposits after the last checkpoint was signed: published, not yet covered.
    async fn append_tail(&mut self) {
        let mut plan = Plan::new(self);
        for i in 0..TAIL_DEPOSITS {
            plan.deposit(VICTIM - TAIL_DEPOSITS / 2 + i, cents(4_200 + i as i64));
        }
        self.commit(plan, ROUNDS + 1).await;
    }

    /// More rounds after the build, for tests that grow the store.
    async fn append_more_rounds(&mut self, rounds: usize) {
        for round in ROUNDS + 2..ROUNDS + 2 + rounds {
            self.append_round(round).await;
        }
        self.drain().await;
        self.reload().await;
    }

    async fn commit(&mut self, plan: Plan, round: usize) {
        let Plan { streams, .. } = plan;
        let metadata = EventMetadata {
            actor: format!("teller-{}", round % 3),
            roles: vec!["teller".into()],
            correlation_id: format!("round-{round}"),
            causation_id: None,
            command_id: CommandId::generate(),
            command_type: "batch".into(),
            idempotency_key: None,
            client_addr: Some("192.0.2.10".into()),
        };
        let mut appends = Vec::with_capacity(streams.len());
        for (i, events) in streams {
            let state = self.accounts[i].clone();
            appends.push(StreamAppend {
                stream_id: self.ids[i],
                expected_version: state.as_ref().map_or(0, |a| a.version),
                state,
                events,
            });
        }
        let appended = self
            .store
            .append(appends, &metadata)
            .await
            .expect("append a round");
        for stream in appended.streams {
            let i = self
                .ids
                .iter()
                .position(|id| *id == stream.stream_id)
                .expect("one of ours");
            self.accounts[i] = Some(stream.state_after);
        }
    }

    /// Steps the relay until everything stored is published and folded into the digest.
    /// A step can find nothing while another database's transaction holds the server's
    /// oldest snapshot back; then it is stepped again, within a bounded deadline.
    async fn drain(&mut self) {
        let deadline = Instant::now() + DRIVE_DEADLINE;
        loop {
            let (relay, conn) = self.relay().await;
            match relay.step(conn).await.expect("relay step") {
                Step::Published(_) => {}
                Step::Idle => {
                    let behind: bool = sqlx::query_scalar(
                        "select exists (select 1 from accounts.events e, accounts.digest_cursor c
                                        where (e.tx_id, e.position) > (c.tx_id, c.position))",
                    )
                    .fetch_one(&self.pool)
                    .await
                    .expect("compare the digest cursor with the store");
                    if !behind {
                        return;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "the relay did not catch up with the store"
                    );
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    /// Reads back every event and checkpoint as stored.
    async fn reload(&mut self) {
        self.events = all_events(&self.pool).await;
        self.checkpoints = stored_checkpoints(&self.pool).await.expect("checkpoints");
    }

    async fn verify(&self) -> Report {
        self.verify_with(options()).await
    }

    async fn verify_with(&self, options: VerifyOptions<'_>) -> Report {
        verify(&self.pool, &options).await.expect("verify runs")
    }

    /// A stream's events as built, in version order.
    fn stream(&self, id: AccountId) -> Vec<RecordedEvent> {
        let mut events: Vec<RecordedEvent> = self
            .events
            .iter()
            .filter(|s| s.event.stream_id == id)
            .map(|s| s.event.clone())
            .collect();
        events.sort_by_key(|e| e.stream_version);
        events
    }

    fn stored(&self, event: &RecordedEvent) -> &Stored {
        self.events
            .iter()
            .find(|s| s.event.event_id == event.event_id)
            .expect("a stored event")
    }

    fn checkpoint(&self, sequence: i64) -> &SignedCheckpoint {
        self.checkpoints
            .iter()
            .find(|c| c.sequence == sequence)
            .expect("the store has that checkpoint")
    }

    /// The first checkpoint whose range takes in the event at `key` (relay order).
    fn covering(&self, key: (u64, i64)) -> &SignedCheckpoint {
        self.checkpoints
            .iter()
            .find(|c| checkpoint_key(c) >= key)
            .expect("a checkpoint covers it")
    }

    /// The range `(after, up_to]` of checkpoint `sequence`, in relay order.
    fn range(&self, sequence: i64) -> ((u64, i64), (u64, i64)) {
        let after = if sequence == 1 {
            (0, 0)
        } else {
            checkpoint_key(self.checkpoint(sequence - 1))
        };
        (after, checkpoint_key(self.checkpoint(sequence)))
    }

    /// An event of `stream` of `event_type` strictly inside checkpoint `sequence`'s range,
    /// not the last of its stream and not that checkpoint's last event.
    fn pick(&self, stream: AccountId, event_type: &str, sequence: i64) -> RecordedEvent {
        let (after, up_to) = self.range(sequence);
        let events = self.stream(stream);
        let last_version = events.last().map_or(0, |e| e.stream_version);
        events
            .into_iter()
            .find(|e| {
                let key = self.stored(e).key();
                e.event_type == event_type
                    && e.stream_version > 2
                    && e.stream_version < last_version
                    && key > after
                    && key < up_to
            })
            .unwrap_or_else(|| panic!("no {event_type} of {stream} inside checkpoint #{sequence}"))
    }

    /// A transaction as a superuser who has switched off the immutability triggers.
    async fn superuser(&self) -> Transaction<'static, Postgres> {
        let mut tx = self.pool.begin().await.expect("begin");
        for sql in [
            "alter table accounts.events disable trigger events_are_immutable",
            "alter table accounts.checkpoints disable trigger checkpoints_are_immutable",
        ] {
            sqlx::query(sql)
                .execute(&mut *tx)
                .await
                .expect("a superuser disables the trigger");
        }
        tx
    }
}

/// Switches the triggers back on (so the change leaves no trace in the schema) and commits.
async fn cover_tracks(mut tx: Transaction<'static, Postgres>) {
    for sql in [
        "alter table accounts.events enable always trigger events_are_immutable",
        "alter table accounts.checkpoints enable always trigger checkpoints_are_immutable",
    ] {
        sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .expect("re-enable the trigger");
    }
    tx.commit().await.expect("commit the tampering");
}

/// The events of one append, per account, with balances carried along.
struct Plan {
    ids: Vec<AccountId>,
    streams: Vec<(usize, Vec<AccountEvent>)>,
    balances: HashMap<usize, Decimal>,
}

impl Plan {
    fn new(ledger: &Ledger) -> Self {
        let balances = ledger
            .accounts
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.as_ref().map(|a| (i, a.balance)))
            .collect();
        Self {
            ids: ledger.ids.clone(),
            streams: Vec::new(),
            balances,
        }
    }

    fn push(&mut self, i: usize, event: AccountEvent) {
        if let Some(balance) = event.balance_after() {
            self.balances.insert(i, balance);
        }
        match self.streams.iter_mut().find(|(j, _)| *j == i) {
            Some((_, events)) => events.push(event),
            None => self.streams.push((i, vec![event])),
        }
    }

    fn balance(&self, i: usize) -> Decimal {
        self.balances.get(&i).copied().unwrap_or(Decimal::ZERO)
    }

    fn deposit(&mut self, i: usize, amount: Decimal) {
        let balance_after = self.balance(i) + amount;
        self.push(
            i,
            AccountEvent::MoneyDeposited(Movement {
                amount,
                currency: usd(),
                balance_after,
                reference: Some("cash in".into()),
                value_date: chrono::Utc::now(),
            }),
        );
    }

    fn withdraw(&mut self, i: usize, amount: Decimal) {
        let balance_after = self.balance(i) - amount;
        self.push(
            i,
            AccountEvent::MoneyWithdrawn(Movement {
                amount,
                currency: usd(),
                balance_after,
                reference: None,
                value_date: chrono::Utc::now(),
            }),
        );
    }

    fn transfer(&mut self, from: usize, to: usize, amount: Decimal) {
        let transfer_id = TransferId::generate();
        let (from_id, to_id) = (self.ids[from], self.ids[to]);
        let debit_after = self.balance(from) - amount;
        let credit_after = self.balance(to) + amount;
        self.push(
            from,
            AccountEvent::TransferDebited(TransferDebited {
                transfer_id,
                to_account_id: to_id,
                amount,
                currency: usd(),
                balance_after: debit_after,
                reference: Some("rent".into()),
                value_date: chrono::Utc::now(),
            }),
        );
        self.push(
            to,
            AccountEvent::TransferCredited(TransferCredited {
                transfer_id,
                from_account_id: from_id,
                amount,
                currency: usd(),
                balance_after: credit_after,
                reference: Some("rent".into()),
                value_date: chrono::Utc::now(),
            }),
        );
    }
}

/// Every event in the store, in the relay's order.
async fn all_events(pool: &PgPool) -> Vec<Stored> {
    let sql = format!(
        "select tx_id::text as tx_id_text, {EVENT_COLUMNS} from accounts.events order by tx_id, position"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .expect("read every event");
    rows.iter()
        .map(|row| Stored {
            tx: row
                .get::<String, _>("tx_id_text")
                .parse()
                .expect("a decimal tx id"),
            event: recorded_event(row).expect("a readable event"),
        })
        .collect()
}

/// How many events [`Ledger::build`] writes.
fn built_event_count() -> usize {
    let opening = 2; // AccountOpened and the first deposit
    let transfer_rounds = TRANSFER_ACCOUNTS * (opening + ROUNDS * 4);
    let solo_rounds = SOLO_ACCOUNTS * (opening + (ROUNDS - SOLO_OPENED_IN_ROUND) * 2);
    transfer_rounds + solo_rounds + TAIL_DEPOSITS
}

fn money(event: &RecordedEvent, field: &str) -> Decimal {
    event.payload[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{field} of {}", event.event_type))
}

fn add_money(event: &mut RecordedEvent, field: &str, delta: Decimal) {
    let value = money(event, field) + delta;
    event.payload[field] = Value::String(value.to_string());
}

/// Adds `delta` to the balance an event left, if it moves money.
fn shift_balance(event: &mut RecordedEvent, delta: Decimal) {
    if event.payload.get("balanceAfter").is_some() {
        add_money(event, "balanceAfter", delta);
    }
}

/// Recomputes the hash chain of one stream's events (in version order) from index `from`.
fn rechain(events: &mut [RecordedEvent], from: usize) {
    let mut prev = from.checked_sub(1).map(|i| events[i].hash);
    for event in &mut events[from..] {
        event.prev_hash = prev;
        event.hash = event.expected_hash();
        prev = Some(event.hash);
    }
}

/// What a careful tamperer does: raises deposit `e` by `delta`, raises every later balance
/// of its stream to match, and recomputes the rest of the stream's hash chain, so that
/// every stream, balance and link checks out again.
async fn rewrite_rest_of_stream(l: &Ledger, e: &RecordedEvent, delta: Decimal) {
    let mut stream = l.stream(e.stream_id);
    let from = e.stream_version as usize - 1;
    add_money(&mut stream[from], "amount", delta);
    for later in &mut stream[from..] {
        shift_balance(later, delta);
    }
    rechain(&mut stream, from);
    let mut tx = l.superuser().await;
    for event in &stream[from..] {
        write_row(&mut tx, event).await;
    }
    cover_tracks(tx).await;
}

/// What a tamperer without the platform's key can do about the checkpoints: recompute every
/// digest over the tampered store and sign each checkpoint again with `key`.
async fn re_sign_every_checkpoint(l: &Ledger, key: &SigningKey) {
    let events = all_events(&l.pool).await;
    let mut events = events.iter();
    let mut digest = Hash::ZERO;
    let mut previous = Hash::ZERO;
    let mut count = 0;
    let mut tx = l.superuser().await;
    for checkpoint in &l.checkpoints {
        let boundary = checkpoint_key(checkpoint);
        for stored in events.by_ref() {
            digest = fold_digest(&digest, stored.event.position, &stored.event.hash);
            count += 1;
            if stored.key() == boundary {
                break;
            }
        }
        let forged = SignedCheckpoint::sign(
            key,
            checkpoint.sequence,
            boundary.0,
            checkpoint.position,
            count,
            digest,
            previous,
            checkpoint.signed_at,
        );
        store_signature(&mut tx, &forged).await;
        previous = digest;
    }
    cover_tracks(tx).await;
}

/// Overwrites a stored checkpoint's digests, key id and signature with `checkpoint`'s.
async fn store_signature(conn: &mut PgConnection, checkpoint: &SignedCheckpoint) {
    let updated = sqlx::query(
        "update accounts.checkpoints
         set digest = $2, previous_digest = $3, key_id = $4, signature = $5
         where sequence = $1",
    )
    .bind(checkpoint.sequence)
    .bind(checkpoint.digest.as_bytes().to_vec())
    .bind(checkpoint.previous_digest.as_bytes().to_vec())
    .bind(&checkpoint.key_id)
    .bind(hex::decode(&checkpoint.signature).expect("hex signature"))
    .execute(conn)
    .await
    .expect("overwrite a checkpoint");
    assert_eq!(updated.rows_affected(), 1, "one checkpoint rewritten");
}

/// Overwrites a stored row with `event`'s content and hashes (matched by event id).
async fn write_row(conn: &mut PgConnection, event: &RecordedEvent) {
    let updated = sqlx::query(
        "update accounts.events
         set stream_version = $2, payload = $3, metadata = $4, recorded_at = $5, prev_hash = $6, hash = $7
         where event_id = $1",
    )
    .bind(event.event_id.as_uuid())
    .bind(event.stream_version)
    .bind(&event.payload)
    .bind(&event.metadata)
    .bind(event.recorded_at)
    .bind(event.prev_hash.map(|h| h.as_bytes().to_vec()))
    .bind(event.hash.as_bytes().to_vec())
    .execute(conn)
    .await
    .expect("overwrite an event row");
    assert_eq!(updated.rows_affected(), 1, "one row rewritten");
}

/// Inserts a forged row; it takes the next position, as any insert does.
async fn insert_row(conn: &mut PgConnection, event: &RecordedEvent) {
    sqlx::query(
        "insert into accounts.events
             (event_id, stream_id, stream_version, event_type, event_version, payload, metadata,
              recorded_at, prev_hash, hash)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(event.event_id.as_uuid())
    .bind(event.stream_id.as_uuid())
    .bind(event.stream_version)
    .bind(&event.event_type)
    .bind(event.event_version)
    .bind(&event.payload)
    .bind(&event.metadata)
    .bind(event.recorded_at)
    .bind(event.prev_hash.map(|h| h.as_bytes().to_vec()))
    .bind(event.hash.as_bytes().to_vec())
    .execute(conn)
    .await
    .expect("insert a forged row");
}

/// Moves a stream's versions from `from` on out of the way of the unique constraint.
async fn park_versions(conn: &mut PgConnection, stream: AccountId, from: i64) {
    sqlx::query(
        "update accounts.events set stream_version = stream_version + $3
         where stream_id = $1 and stream_version >= $2",
    )
    .bind(stream.as_uuid())
    .bind(from)
    .bind(PARKED_VERSION_OFFSET)
    .execute(conn)
    .await
    .expect("park versions");
}

async fn delete_event(conn: &mut PgConnection, event: &RecordedEvent) {
    let deleted = sqlx::query("delete from accounts.events where event_id = $1")
        .bind(event.event_id.as_uuid())
        .execute(conn)
        .await
        .expect("delete an event");
    assert_eq!(deleted.rows_affected(), 1);
}

async fn delete_stream(conn: &mut PgConnection, stream: AccountId) {
    let deleted = sqlx::query("delete from accounts.events where stream_id = $1")
        .bind(stream.as_uuid())
        .execute(conn)
        .await
        .expect("delete a stream");
    assert!(deleted.rows_affected() > 0, "the stream had events");
}

/// Where a problem is reported: what `verify` says beside its free-text detail.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Place {
    kind: ProblemKind,
    stream_id: Option<AccountId>,
    stream_version: Option<i64>,
    position: Option<i64>,
}

impl Place {
    fn of(problem: &Problem) -> Self {
        Self {
            kind: problem.kind,
            stream_id: problem.stream_id,
            stream_version: problem.stream_version,
            position: problem.position,
        }
    }

    /// At one stored event.
    fn event(kind: ProblemKind, event: &RecordedEvent) -> Self {
        Self {
            kind,
            stream_id: Some(event.stream_id),
            stream_version: Some(event.stream_version),
            position: Some(event.position),
        }
    }

    /// At a checkpoint: the position of the last event it covers.
    fn checkpoint(kind: ProblemKind, checkpoint: &SignedCheckpoint) -> Self {
        Self {
            kind,
            stream_id: None,
            stream_version: None,
            position: Some(checkpoint.position),
        }
    }
}

fn listing(report: &Report) -> String {
    report.problems.iter().map(|p| format!("\n  {p}")).collect()
}

/// What a tampering must produce.
struct Expected {
    /// The first problem reported.
    first: Place,
    /// Text the first problem's detail must contain.
    detail: Vec<String>,
    /// Further problems that must be reported too.
    also: Vec<Place>,
    /// The exact number of problems, when it is known.
    count: Option<usize>,
    /// The streams `verify` must count.
    streams: u64,
}

impl Expected {
    fn at(first: Place) -> Self {
        Self {
            first,
            detail: Vec::new(),
            also: Vec::new(),
            count: None,
            streams: (TRANSFER_ACCOUNTS + SOLO_ACCOUNTS) as u64,
        }
    }

    fn detail(mut self, text: impl Into<String>) -> Self {
        self.detail.push(text.into());
        self
    }

    fn also(mut self, place: Place) -> Self {
        self.also.push(place);
        self
    }

    fn count(mut self, count: usize) -> Self {
        self.count = Some(count);
        self
    }

    fn streams(mut self, streams: u64) -> Self {
        self.streams = streams;
        self
    }
}

/// How a superuser tampers with history; each case runs on its own fresh store.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    /// Changes the amount in an old deposit's payload.
    EditAmount,
    /// Changes the amount of the first movement after the opening (balance before: zero).
    EditFirstMovement,
    /// Changes who the metadata says caused an event.
    EditActor,
    /// Deletes one deposit in the middle of a stream.
    DeleteMiddleEvent,
    /// Deletes a whole stream whose account took part in transfers.
    DeleteStreamWithTransfers,
    /// Deletes a whole stream whose account never took part in a transfer.
    DeleteStreamWithoutTransfers,
    /// Swaps two neighbouring events' versions within a stream.
    SwapVersions,
    /// Raises a deposit (amount and balance after) and recomputes that event's hash.
    RehashEditedEvent,
    /// Raises a deposit's amount only and recomputes that event's hash.
    RehashEditedAmountOnly,
    /// Raises a deposit and recomputes every later balance and the rest of the stream's chain.
    RehashRestOfStream,
    /// Deletes the newest events, including the last one the newest checkpoint covers.
    DeleteCheckpointedTail,
    /// Moves an event's `recorded_at` before the event that precedes it.
    BackdateRecordedAt,
    /// Moves an event into an earlier transaction (`tx_id`), reordering the relay's order.
    MoveToEarlierTransaction,
    /// Swaps the global positions of two neighbouring events of one stream.
    SwapPositions,
    /// Inserts a forged deposit in the middle of a stream, shifting later versions up.
    InsertForgedEvent,
    /// Inserts a forged deposit and recomputes the rest of the stream (balances and chain).
    InsertForgedEventRechained,
    /// Deletes a stored checkpoint in the middle.
    DeleteStoredCheckpoint,
}

impl Tamper {
    async fn apply(self, l: &Ledger) -> Expected {
        use ProblemKind::*;
        let victim = l.victim();
        let delta = cents(10_000);
        match self {
            Self::EditAmount => {
                let e = l.pick(victim, "MoneyDeposited", 2);
                edit_amount(l, &e, "999999.00").await;
                Expected::at(Place::event(HashMismatch, &e))
                    .detail("does not match the event's content")
                    .also(Place::event(BalanceDoesNotFollow, &e))
                    .count(2)
            }
            Self::EditFirstMovement => {
                let e = l
                    .stream(victim)
                    .into_iter()
                    .nth(1)
                    .expect("a movement after the opening");
                edit_amount(l, &e, "999999.00").await;
                Expected::at(Place::event(HashMismatch, &e))
                    .also(Place::event(BalanceDoesNotFollow, &e))
            }
            Self::EditActor => {
                let e = l.pick(victim, "MoneyWithdrawn", 2);
                let mut tx = l.superuser().await;
                sqlx::query(
                    "update accounts.events set metadata = jsonb_set(metadata, '{actor}', '\"mallory\"')
                     where event_id = $1",
                )
                .bind(e.event_id.as_uuid())
                .execute(&mut *tx)
                .await
                .expect("edit the actor");
                cover_tracks(tx).await;
                Expected::at(Place::event(HashMismatch, &e)).count(1)
            }
            Self::DeleteMiddleEvent => {
                let e = l.pick(victim, "MoneyDeposited", 2);
                let stream = l.stream(victim);
                let k = e.stream_version as usize;
                let after = &stream[k];
                let mut tx = l.superuser().await;
                delete_event(&mut tx, &e).await;
                cover_tracks(tx).await;
                Expected::at(Place {
                    kind: VersionGap,
                    stream_id: Some(victim),
                    stream_version: Some(e.stream_version),
                    position: Some(after.position),
                })
                .detail(format!("version {} is missing", e.stream_version))
                .also(Place::event(BalanceDoesNotFollow, after))
                .also(Place::checkpoint(
                    CheckpointMismatch,
                    l.covering(l.stored(&e).key()),
                ))
            }
            Self::DeleteStreamWithTransfers => {
                let victim_text = victim.to_string();
                let orphan = l
                    .events
                    .iter()
                    .map(|s| &s.event)
                    .filter(|e| {
                        e.stream_id != victim
                            && ["toAccountId", "fromAccountId"]
                                .iter()
                                .any(|f| e.payload[*f].as_str() == Some(&victim_text))
                    })
                    .min_by_key(|e| e.position)
                    .expect("the victim took part in transfers")
                    .clone();
                let opened = l.stored(&l.stream(victim)[0]).key();
                let mut tx = l.superuser().await;
                delete_stream(&mut tx, victim).await;
                cover_tracks(tx).await;
                Expected::at(Place::event(MissingTransferLeg, &orphan))
                    .detail(victim_text)
                    .also(Place::checkpoint(CheckpointMismatch, l.covering(opened)))
                    .streams((TRANSFER_ACCOUNTS + SOLO_ACCOUNTS - 1) as u64)
            }
            Self::DeleteStreamWithoutTransfers => {
                let solo = l.solo();
                let opened = l.stored(&l.stream(solo)[0]).key();
                let checkpoint = l.covering(opened);
                assert!(
                    checkpoint.sequence > 1,
                    "the solo account opens after the first checkpoint"
                );
                let since = l.checkpoint(checkpoint.sequence - 1);
                let mut tx = l.superuser().await;
                delete_stream(&mut tx, solo).await;
                cover_tracks(tx).await;
                Expected::at(Place::checkpoint(CheckpointMismatch, checkpoint))
                    .detail(format!(
                        "history between position {} (checkpoint #{}, which still matches) and position {}",
                        since.position, since.sequence, checkpoint.position
                    ))
                    .count(1)
                    .streams((TRANSFER_ACCOUNTS + SOLO_ACCOUNTS - 1) as u64)
            }
            Self::SwapVersions => {
                let a = l.pick(victim, "MoneyDeposited", 2);
                let b = l.stream(victim)[a.stream_version as usize].clone();
                let mut tx = l.superuser().await;
                for (event, version) in [
                    (&a, a.stream_version + PARKED_VERSION_OFFSET),
                    (&b, a.stream_version),
                    (&a, b.stream_version),
                ] {
                    sqlx::query(
                        "update accounts.events set stream_version = $2 where event_id = $1",
                    )
                    .bind(event.event_id.as_uuid())
                    .bind(version)
                    .execute(&mut *tx)
                    .await
                    .expect("move a version");
                }
                cover_tracks(tx).await;
                Expected::at(Place {
                    kind: HashMismatch,
                    stream_id: Some(victim),
                    stream_version: Some(a.stream_version),
                    position: Some(b.position),
                })
            }
            Self::RehashEditedEvent => {
                let mut e = l.pick(victim, "MoneyDeposited", 2);
                let next = l.stream(victim)[e.stream_version as usize].clone();
                add_money(&mut e, "amount", delta);
                shift_balance(&mut e, delta);
                e.hash = e.expected_hash();
                assert!(e.hash_is_intact());
                let mut tx = l.superuser().await;
                write_row(&mut tx, &e).await;
                cover_tracks(tx).await;
                Expected::at(Place::event(BrokenLink, &e))
                    .detail(format!(
                        "version {} was changed after version {} was written",
                        e.stream_version, next.stream_version
                    ))
                    .also(Place::event(BalanceDoesNotFollow, &next))
                    .also(Place::checkpoint(
                        CheckpointMismatch,
                        l.covering(l.stored(&e).key()),
                    ))
                    .count(3)
            }
            Self::RehashEditedAmountOnly => {
                let mut e = l.pick(victim, "MoneyDeposited", 2);
                add_money(&mut e, "amount", delta);
                e.hash = e.expected_hash();
                let mut tx = l.superuser().await;
                write_row(&mut tx, &e).await;
                cover_tracks(tx).await;
                Expected::at(Place::event(BalanceDoesNotFollow, &e))
                    .also(Place::event(BrokenLink, &e))
                    .also(Place::checkpoint(
                        CheckpointMismatch,
                        l.covering(l.stored(&e).key()),
                    ))
                    .count(3)
            }
            Self::RehashRestOfStream => {
                let e = l.pick(victim, "MoneyDeposited", 3);
                let checkpoint = l.covering(l.stored(&e).key());
                assert_eq!(checkpoint.sequence, 3);
                let since = l.checkpoint(2);
                rewrite_rest_of_stream(l, &e, delta).await;
                Expected::at(Place::checkpoint(CheckpointMismatch, checkpoint))
                    .detail(format!(
                        "history between position {} (checkpoint #2, which still matches) and position {}",
                        since.position, checkpoint.position
                    ))
                    .count(1)
            }
            Self::DeleteCheckpointedTail => {
                let newest = l.checkpoints.last().expect("checkpoints");
                let last_covered = l
                    .events
                    .iter()
                    .find(|s| s.key() == checkpoint_key(newest))
                    .expect("the newest checkpoint's last event");
                let first_deleted = l
                    .events
                    .iter()
                    .find(|s| s.tx == last_covered.tx)
                    .expect("its transaction");
                let before_newest = l.checkpoint(newest.sequence - 1);
                assert!(
                    checkpoint_key(before_newest) < first_deleted.key(),
                    "only events after the second newest checkpoint are deleted"
                );
                let mut tx = l.superuser().await;
                let deleted =
                    sqlx::query("delete from accounts.events where tx_id >= $1::text::xid8")
                        .bind(last_covered.tx.to_string())
                        .execute(&mut *tx)
                        .await
                        .expect("delete the newest events");
                assert!(deleted.rows_affected() > TAIL_DEPOSITS as u64);
                cover_tracks(tx).await;
                Expected::at(Place::checkpoint(CheckpointMismatch, newest))
                    .detail("events it covers were deleted")
                    .count(1)
            }
            Self::BackdateRecordedAt => {
                let e = l.pick(victim, "MoneyWithdrawn", 2);
                let before = &l.stream(victim)[e.stream_version as usize - 2];
                let mut tx = l.superuser().await;
                sqlx::query("update accounts.events set recorded_at = $2 where event_id = $1")
                    .bind(e.event_id.as_uuid())
                    .bind(before.recorded_at - TimeDelta::hours(1))
                    .execute(&mut *tx)
                    .await
                    .expect("backdate an event");
                cover_tracks(tx).await;
                // Booked an hour before its own value date, too.
                Expected::at(Place::event(HashMismatch, &e))
                    .also(Place::event(ValueDateOutOfRange, &e))
                    .count(2)
            }
            Self::MoveToEarlierTransaction => {
                let e = l.pick(victim, "MoneyWithdrawn", 3);
                let (after, _) = l.range(2);
                let earlier = l
                    .events
                    .iter()
                    .find(|s| s.key() > after)
                    .expect("an event in checkpoint #2");
                let moved_to = (earlier.tx, e.position);
                let first_changed = moved_to.min(l.stored(&e).key());
                let mut tx = l.superuser().await;
                sqlx::query(
                    "update accounts.events set tx_id = $2::text::xid8 where event_id = $1",
                )
                .bind(e.event_id.as_uuid())
                .bind(earlier.tx.to_string())
                .execute(&mut *tx)
                .await
                .expect("move an event to another transaction");
                cover_tracks(tx).await;
                Expected::at(Place::checkpoint(
                    CheckpointMismatch,
                    l.covering(first_changed),
                ))
                .count(1)
            }
            Self::SwapPositions => {
                let a = l.pick(victim, "MoneyDeposited", 2);
                let b = l.stream(victim)[a.stream_version as usize].clone();
                assert_eq!(
                    l.stored(&a).tx,
                    l.stored(&b).tx,
                    "a deposit and the withdrawal after it share a round's transaction"
                );
                let mut tx = l.superuser().await;
                sqlx::query(
                    "alter table accounts.events alter column position set generated by default",
                )
                .execute(&mut *tx)
                .await
                .expect("allow writing positions");
                for (event, position) in [(&a, -a.position), (&b, a.position), (&a, b.position)] {
                    sqlx::query("update accounts.events set position = $2 where event_id = $1")
                        .bind(event.event_id.as_uuid())
                        .bind(position)
                        .execute(&mut *tx)
                        .await
                        .expect("move a position");
                }
                sqlx::query(
                    "alter table accounts.events alter column position set generated always",
                )
                .execute(&mut *tx)
                .await
                .expect("restore the identity column");
                cover_tracks(tx).await;
                let first_changed = l.stored(&a).key().min(l.stored(&b).key());
                Expected::at(Place::checkpoint(
                    CheckpointMismatch,
                    l.covering(first_changed),
                ))
                .count(1)
            }
            Self::InsertForgedEvent | Self::InsertForgedEventRechained => {
                let rechained = matches!(self, Self::InsertForgedEventRechained);
                let e = l.pick(victim, "MoneyDeposited", if rechained { 3 } else { 2 });
                let mut stream = l.stream(victim);
                let at = e.stream_version as usize - 1;
                let before = &stream[at - 1];
                let forged_amount = cents(500_000);
                let forged_payload = AccountEvent::MoneyDeposited(Movement {
                    amount: forged_amount,
                    currency: usd(),
                    balance_after: money(before, "balanceAfter") + forged_amount,
                    reference: Some("cash in".into()),
                    // As a careful forger would: valued when it claims to be booked.
                    value_date: e.recorded_at,
                })
                .to_payload();
                let mut forged = RecordedEvent {
                    position: 0,
                    event_id: EventId::generate(),
                    stream_version: e.stream_version,
                    event_type: "MoneyDeposited".into(),
                    event_version: e.event_version,
                    payload: forged_payload,
                    prev_hash: Some(before.hash),
                    ..e.clone()
                };
                forged.hash = forged.expected_hash();
                stream.insert(at, forged);
                for later in &mut stream[at + 1..] {
                    later.stream_version += 1;
                    if rechained {
                        shift_balance(later, forged_amount);
                    }
                }
                if rechained {
                    rechain(&mut stream, at);
                }
                let mut tx = l.superuser().await;
                park_versions(&mut tx, victim, e.stream_version).await;
                insert_row(&mut tx, &stream[at]).await;
                for later in &stream[at + 1..] {
                    write_row(&mut tx, later).await;
                }
                cover_tracks(tx).await;
                if rechained {
                    Expected::at(Place::checkpoint(
                        CheckpointMismatch,
                        l.covering(l.stored(&e).key()),
                    ))
                    .count(1)
                } else {
                    Expected::at(Place {
                        kind: HashMismatch,
                        stream_id: Some(victim),
                        stream_version: Some(e.stream_version + 1),
                        position: Some(e.position),
                    })
                }
            }
            Self::DeleteStoredCheckpoint => {
                let next = l.checkpoint(3);
                let mut tx = l.superuser().await;
                sqlx::query("delete from accounts.checkpoints where sequence = 2")
                    .execute(&mut *tx)
                    .await
                    .expect("delete a checkpoint");
                cover_tracks(tx).await;
                Expected::at(Place::checkpoint(CheckpointInvalid, next))
                    .detail("checkpoint #2 is missing")
                    .count(2)
            }
        }
    }
}

/// Sets an event's payload amount as a superuser would, behind the trigger's back.
async fn edit_amount(l: &Ledger, e: &RecordedEvent, amount: &str) {
    let mut tx = l.superuser().await;
    sqlx::query(
        "update accounts.events set payload = jsonb_set(payload, '{amount}', to_jsonb($2::text))
         where event_id = $1",
    )
    .bind(e.event_id.as_uuid())
    .bind(amount)
    .execute(&mut *tx)
    .await
    .expect("edit the amount");
    cover_tracks(tx).await;
}

/// Copies the base store (which verifies clean, see the first test), tampers, and checks what `verify` reports.
async fn detects(tamper: Tamper) {
    let ledger = Ledger::fresh().await;
    let expected = tamper.apply(&ledger).await;
    let report = ledger.verify().await;
    let problems = listing(&report);
    assert!(
        !report.is_clean(),
        "{tamper:?} went unnoticed: verify reported no problem"
    );
    let first = &report.problems[0];
    assert_eq!(
        Place::of(first),
        expected.first,
        "{tamper:?}: the first problem names the wrong place; reported:{problems}"
    );
    for text in &expected.detail {
        assert!(
            first.detail.contains(text.as_str()),
            "{tamper:?}: the first problem's detail {:?} does not say {text:?}",
            first.detail
        );
    }
    for place in &expected.also {
        assert!(
            report.problems.iter().any(|p| Place::of(p) == *place),
            "{tamper:?}: expected also {place:?}; reported:{problems}"
        );
    }
    if let Some(count) = expected.count {
        assert_eq!(
            report.problems.len(),
            count,
            "{tamper:?}: number of problems; reported:{problems}"
        );
    }
    assert_eq!(report.streams, expected.streams, "{tamper:?}: streams");
    assert!(!report.truncated, "{tamper:?}: a full run");
}

macro_rules! tamper_cases {
    ($($name:ident => $tamper:expr,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                detects($tamper).await;
            }
        )*
    };
}

tamper_cases! {
    an_edited_amount_is_a_hash_mismatch_at_that_event => Tamper::EditAmount,
    an_edited_first_movement_is_a_hash_mismatch_and_a_balance_that_does_not_follow => Tamper::EditFirstMovement,
    an_edited_actor_is_a_hash_mismatch_at_that_event => Tamper::EditActor,
    a_deleted_event_is_a_version_gap_at_the_missing_version => Tamper::DeleteMiddleEvent,
    a_deleted_stream_leaves_its_counterparties_transfer_legs_orphaned => Tamper::DeleteStreamWithTransfers,
    a_deleted_stream_without_transfers_breaks_the_checkpoint_covering_it => Tamper::DeleteStreamWithoutTransfers,
    swapped_versions_are_a_hash_mismatch_at_the_first_of_them => Tamper::SwapVersions,
    an_edit_with_its_hash_recomputed_breaks_the_link_from_the_next_event => Tamper::RehashEditedEvent,
    an_amount_edit_with_its_hash_recomputed_breaks_the_balance => Tamper::RehashEditedAmountOnly,
    a_rewritten_rest_of_stream_is_caught_by_the_checkpoint_covering_the_edit => Tamper::RehashRestOfStream,
    deleting_the_newest_checkpointed_events_breaks_that_checkpoint => Tamper::DeleteCheckpointedTail,
    a_backdated_event_is_a_hash_mismatch_at_that_event => Tamper::BackdateRecordedAt,
    an_event_moved_to_an_earlier_transaction_breaks_a_checkpoint => Tamper::MoveToEarlierTransaction,
    swapped_positions_within_a_stream_break_the_checkpoint => Tamper::SwapPositions,
    a_forged_event_inserted_mid_stream_breaks_the_event_after_it => Tamper::InsertForgedEvent,
    a_forged_event_with_the_stream_rechained_breaks_the_checkpoint => Tamper::InsertForgedEventRechained,
    a_deleted_stored_checkpoint_is_reported_missing => Tamper::DeleteStoredCheckpoint,
}

fn options() -> VerifyOptions<'static> {
    VerifyOptions {
        public_key: public_key(),
        account: None,
        external: None,
        events_max: None,
        progress: None,
        backdate_max: chrono::Duration::days(accounts::writer::BACKDATE_DAYS_MAX_DEFAULT),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untampered_store_verifies_clean() {
    let ledger = Ledger::fresh().await;
    assert_eq!(ledger.events.len(), built_event_count());

    let report = ledger.verify().await;

    assert!(report.is_clean(), "problems:{}", listing(&report));
    assert_eq!(report.streams, (TRANSFER_ACCOUNTS + SOLO_ACCOUNTS) as u64);
    assert_eq!(report.events, built_event_count() as u64);
    assert_eq!(report.checkpoints, ledger.checkpoints.len() as u64);
    assert!(
        ledger.checkpoints.len() >= 5,
        "the relay signed several checkpoints, got {}",
        ledger.checkpoints.len()
    );
    // The relay's checkpoints, checked independently of `verify`: numbered from 1, signed
    // by the platform, chained, at least CHECKPOINT_EVENTS apart, each the digest of every
    // event up to it in (tx_id, position) order.
    let mut digest = Hash::ZERO;
    let mut folded = ledger.events.iter();
    let mut previous: Option<&SignedCheckpoint> = None;
    for (index, checkpoint) in ledger.checkpoints.iter().enumerate() {
        assert_eq!(checkpoint.sequence, index as i64 + 1);
        assert_eq!(checkpoint.verify_signature(&public_key()), Ok(()));
        assert_eq!(checkpoint.key_id, key_id(&public_key()));
        assert_eq!(
            checkpoint.previous_digest,
            previous.map_or(Hash::ZERO, |p| p.digest)
        );
        assert!(
            checkpoint.event_count - previous.map_or(0, |p| p.event_count) >= CHECKPOINT_EVENTS
        );
        for stored in folded.by_ref() {
            digest = fold_digest(&digest, stored.event.position, &stored.event.hash);
            if stored.key() == checkpoint_key(checkpoint) {
                break;
            }
        }
        assert_eq!(
            checkpoint.digest, digest,
            "checkpoint #{}",
            checkpoint.sequence
        );
        previous = Some(checkpoint);
    }
    let newest = previous.expect("checkpoints");
    let uncovered = ledger.events.len() as i64 - newest.event_count;
    assert!(
        (TAIL_DEPOSITS as i64..CHECKPOINT_EVENTS).contains(&uncovered),
        "the newest events ({uncovered}) are not covered yet"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_re_signed_with_another_key_is_invalid() {
    let ledger = Ledger::fresh().await;
    let genuine = ledger.checkpoint(2).clone();
    let forged = SignedCheckpoint::sign(
        &forger_key(),
        genuine.sequence,
        checkpoint_key(&genuine).0,
        genuine.position,
        genuine.event_count,
        genuine.digest,
        genuine.previous_digest,
        genuine.signed_at,
    );
    assert_eq!(genuine.verify_signature(&public_key()), Ok(()));
    assert_eq!(
        genuine.verify_signature(&forger_key().verifying_key()),
        Err(CheckpointError::BadSignature(key_id(
            &forger_key().verifying_key()
        )))
    );
    assert_eq!(
        forged.verify_signature(&forger_key().verifying_key()),
        Ok(())
    );
    assert_eq!(
        forged.verify_signature(&public_key()),
        Err(CheckpointError::BadSignature(key_id(&public_key())))
    );

    let mut tx = ledger.superuser().await;
    store_signature(&mut tx, &forged).await;
    cover_tracks(tx).await;
    let report = ledger.verify().await;

    assert_eq!(
        report.problems.iter().map(Place::of).collect::<Vec<_>>(),
        vec![Place::checkpoint(ProblemKind::CheckpointInvalid, &genuine)],
        "reported:{}",
        listing(&report)
    );
    assert!(
        report.problems[0].detail.contains("checkpoint #2")
            && report.problems[0].detail.contains(&key_id(&public_key())),
        "{}",
        report.problems[0]
    );
    let stored = stored_checkpoints(&ledger.pool).await.expect("checkpoints");
    assert_eq!(stored[1].key_id, key_id(&forger_key().verifying_key()));
    assert!(stored[1].verify_signature(&public_key()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_history_with_every_checkpoint_re_signed_fails_only_on_the_signatures() {
    let ledger = Ledger::fresh().await;
    let e = ledger.pick(ledger.victim(), "MoneyDeposited", 2);
    rewrite_rest_of_stream(&ledger, &e, cents(10_000)).await;
    re_sign_every_checkpoint(&ledger, &forger_key()).await;

    // The rewrite is consistent: with the tamperer's own key it verifies clean...
    let forger = ledger
        .verify_with(VerifyOptions {
            public_key: forger_key().verifying_key(),
            ..options()
        })
        .await;
    assert!(forger.is_clean(), "reported:{}", listing(&forger));

    // ...and only the platform's key gives it away: every checkpoint's signature fails.
    let report = ledger.verify().await;
    let expected: Vec<Place> = ledger
        .checkpoints
        .iter()
        .map(|c| Place::checkpoint(ProblemKind::CheckpointInvalid, c))
        .collect();
    assert_eq!(
        report.problems.iter().map(Place::of).collect::<Vec<_>>(),
        expected,
        "reported:{}",
        listing(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_checkpoint_verifies_as_the_store_grows_and_fails_once_covered_history_is_edited()
 {
    let mut ledger = Ledger::fresh().await;
    let exported = latest_checkpoint(&ledger.pool)
        .await
        .expect("read the newest checkpoint")
        .expect("there is one");
    // Kept outside the platform (by the regulator, say) as JSON.
    let kept: SignedCheckpoint =
        serde_json::from_str(&serde_json::to_string(&exported).expect("export")).expect("import");
    assert_eq!(kept, exported);
    let checkpoints_then = ledger.checkpoints.len();

    ledger.append_more_rounds(5).await;
    assert!(
        ledger.checkpoints.len() > checkpoints_then,
        "the relay signed checkpoints since"
    );
    let grown = ledger
        .verify_with(VerifyOptions {
            external: Some(kept.clone()),
            ..options()
        })
        .await;
    assert!(grown.is_clean(), "reported:{}", listing(&grown));
    assert_eq!(grown.events, ledger.events.len() as u64);
    assert_eq!(grown.checkpoints, ledger.checkpoints.len() as u64);

    // An external checkpoint that was changed after export is not trusted.
    let mut doctored = kept.clone();
    doctored.event_count -= 1;
    let report = ledger
        .verify_with(VerifyOptions {
            external: Some(doctored),
            ..options()
        })
        .await;
    assert_eq!(
        report.problems.iter().map(Place::of).collect::<Vec<_>>(),
        vec![Place::checkpoint(ProblemKind::CheckpointInvalid, &kept)],
        "reported:{}",
        listing(&report)
    );

    // A tamperer rewrites history the external checkpoint covers and removes every stored
    // checkpoint: nothing left inside the store contradicts the rewrite...
    let e = ledger.pick(ledger.victim(), "MoneyDeposited", kept.sequence);
    rewrite_rest_of_stream(&ledger, &e, cents(10_000)).await;
    let mut tx = ledger.superuser().await;
    sqlx::query("delete from accounts.checkpoints")
        .execute(&mut *tx)
        .await
        .expect("delete the checkpoints");
    cover_tracks(tx).await;
    let inside = ledger.verify().await;
    assert_eq!(inside.checkpoints, 0);
    assert!(inside.is_clean(), "reported:{}", listing(&inside));

    // ...but the checkpoint kept outside does.
    let report = ledger
        .verify_with(VerifyOptions {
            external: Some(kept.clone()),
            ..options()
        })
        .await;
    assert_eq!(
        report.problems.iter().map(Place::of).collect::<Vec<_>>(),
        vec![Place::checkpoint(ProblemKind::CheckpointMismatch, &kept)],
        "reported:{}",
        listing(&report)
    );
    assert!(
        report.problems[0]
            .detail
            .starts_with(&format!("external checkpoint #{}", kept.sequence)),
        "{}",
        report.problems[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_of_published_events_not_yet_signed_is_caught_by_the_next_checkpoint() {
    let mut ledger = Ledger::fresh().await;
    let newest = ledger.checkpoints.last().expect("checkpoints").clone();
    // The victim's newest event is a deposit after the newest checkpoint: published and
    // folded into the running digest, but not signed yet.
    let mut e = ledger.stream(ledger.victim()).pop().expect("events");
    assert!(ledger.stored(&e).key() > checkpoint_key(&newest));
    assert_eq!(e.event_type, "MoneyDeposited");

    // Raised, with a balance and hash that check out: nothing in the stream shows it.
    let delta = cents(10_000);
    add_money(&mut e, "amount", delta);
    shift_balance(&mut e, delta);
    e.hash = e.expected_hash();
    let mut tx = ledger.superuser().await;
    write_row(&mut tx, &e).await;
    cover_tracks(tx).await;
    if let Some(account) = ledger.accounts[VICTIM].as_mut() {
        account.balance += delta;
    }
    let unsigned = ledger.verify().await;
    assert!(
        unsigned.is_clean(),
        "no signed checkpoint covers the deposit yet:{}",
        listing(&unsigned)
    );

    // The relay folded the deposit as it published it; the next checkpoint signs that.
    ledger.append_more_rounds(3).await;
    let next = ledger.checkpoint(newest.sequence + 1).clone();
    assert!(checkpoint_key(&next) > ledger.stored(&e).key());
    let report = ledger.verify().await;

    assert_eq!(
        report.problems.iter().map(Place::of).collect::<Vec<_>>(),
        vec![Place::checkpoint(ProblemKind::CheckpointMismatch, &next)],
        "reported:{}",
        listing(&report)
    );
    assert!(
        report.problems[0].detail.contains(&format!(
            "position {} (checkpoint #{}, which still matches)",
            newest.position, newest.sequence
        )),
        "{}",
        report.problems[0]
    );
}

/// `json` with the character just after `field` (searched from `anchor` on) changed to
/// another of its kind: one byte differs.
fn change_one_byte(json: &str, anchor: &str, field: &str) -> String {
    let from = json
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor} in the proof"));
    let at = from
        + json[from..]
            .find(field)
            .unwrap_or_else(|| panic!("{field} after {anchor}"))
        + field.len();
    let old = json.as_bytes()[at];
    let new = match old {
        b'0'..=b'8' | b'a'..=b'e' => old + 1,
        b'9' | b'f' => old - 1,
        other => panic!("{field} is followed by {:?}, not a digit", other as char),
    };
    let mut bytes = json.as_bytes().to_vec();
    bytes[at] = new;
    String::from_utf8(bytes).expect("still UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_proof_verifies_offline_and_fails_with_any_byte_changed() {
    let ledger = Ledger::fresh().await;
    let checkpoint = ledger.checkpoint(2);
    let e = ledger.pick(ledger.victim(), "MoneyDeposited", 2);

    let proof = audit_proof(&ledger.pool, e.event_id)
        .await
        .expect("a proof");
    assert_eq!(proof.event, e);
    assert_eq!(&proof.checkpoint, checkpoint);
    assert_eq!(
        proof.links.last().map(|l| l.position),
        Some(checkpoint.position),
        "the links run up to the checkpoint"
    );
    let json = serde_json::to_string(&proof).expect("proof to JSON");
    let parsed: AuditProof = serde_json::from_str(&json).expect("proof from JSON");
    assert_eq!(parsed, proof);
    assert_eq!(parsed.verify(&public_key()), Ok(()));
    assert_eq!(
        parsed.verify(&forger_key().verifying_key()),
        Err(OfflineProofError::Checkpoint(
            CheckpointError::BadSignature(key_id(&forger_key().verifying_key()))
        ))
    );

    let cases: [(&str, &str, &str, OfflineProofError); 6] = [
        (
            "the event's amount",
            "\"payload\":",
            "\"amount\":\"",
            OfflineProofError::EventHash(e.hash),
        ),
        (
            "the event's position",
            "\"event\":",
            "\"position\":",
            OfflineProofError::Digest,
        ),
        (
            "the digest before the event",
            "\"digestBefore\"",
            "\"digestBefore\":\"",
            OfflineProofError::Digest,
        ),
        (
            "a link's hash",
            "\"links\":",
            "\"hash\":\"",
            OfflineProofError::Digest,
        ),
        (
            "the checkpoint's digest",
            "\"checkpoint\":",
            "\"digest\":\"",
            OfflineProofError::Digest,
        ),
        (
            "the checkpoint's signature",
            "\"checkpoint\":",
            "\"signature\":\"",
            OfflineProofError::Checkpoint(CheckpointError::BadSignature(key_id(&public_key()))),
        ),
    ];
    for (what, anchor, field, expected) in cases {
        let changed = change_one_byte(&json, anchor, field);
        let differing = json
            .bytes()
            .zip(changed.bytes())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            (changed.len(), differing),
            (json.len(), 1),
            "{what}: one byte"
        );
        let tampered: AuditProof = serde_json::from_str(&changed)
            .unwrap_or_else(|error| panic!("{what}: still a proof ({error})"));
        assert_eq!(
            tampered.verify(&public_key()),
            Err(expected),
            "{what} changed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_proofs_cover_every_checkpointed_event_and_only_those() {
    let ledger = Ledger::fresh().await;
    let newest = ledger.checkpoints.last().expect("checkpoints");
    let first = &ledger.events[0].event;
    let last_covered = &ledger
        .events
        .iter()
        .find(|s| s.key() == checkpoint_key(newest))
        .expect("the newest checkpoint's last event")
        .event;
    for (what, event, checkpoint, links) in [
        ("the first event", first, ledger.checkpoint(1), None),
        (
            "the newest checkpoint's last event",
            last_covered,
            newest,
            Some(0),
        ),
    ] {
        let proof = audit_proof(&ledger.pool, event.event_id)
            .await
            .unwrap_or_else(|error| panic!("{what}: {error}"));
        assert_eq!(&proof.checkpoint, checkpoint, "{what}");
        if let Some(links) = links {
            assert_eq!(proof.links.len(), links, "{what}");
        }
        let parsed: AuditProof =
            serde_json::from_str(&serde_json::to_string(&proof).expect("to JSON"))
                .expect("from JSON");
        assert_eq!(parsed.verify(&public_key()), Ok(()), "{what}");
    }
    assert_eq!(
        audit_proof(&ledger.pool, first.event_id)
            .await
            .expect("proof")
            .digest_before,
        Hash::ZERO
    );

    let tail = &ledger.events.last().expect("events").event;
    assert!(
        matches!(
            audit_proof(&ledger.pool, tail.event_id).await,
            Err(StoreProofError::NotYetCheckpointed(id)) if id == tail.event_id
        ),
        "an event after the newest checkpoint has no proof yet"
    );
    let unknown = EventId::generate();
    assert!(
        matches!(
            audit_proof(&ledger.pool, unknown).await,
            Err(StoreProofError::NoSuchEvent(id)) if id == unknown
        ),
        "an unknown event has no proof"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifying_one_account_checks_its_stream_and_its_transfers_only() {
    let ledger = Ledger::fresh().await;
    let victim = ledger.victim();
    let victim_events = ledger.stream(victim);
    let scoped = |account| VerifyOptions {
        account: Some(account),
        ..options()
    };

    let report = ledger.verify_with(scoped(victim)).await;
    assert!(report.is_clean(), "reported:{}", listing(&report));
    assert_eq!(
        (report.streams, report.events, report.checkpoints),
        (1, victim_events.len() as u64, 0),
        "one stream, its events, no global checkpoints"
    );

    // The victim's first transfer went to `counterparty`; `other` is a third account.
    let counterparty_text = victim_events
        .iter()
        .find(|e| e.event_type == "TransferDebited")
        .and_then(|e| e.payload["toAccountId"].as_str())
        .expect("the victim sent a transfer")
        .to_string();
    let counterparty: AccountId = counterparty_text.parse().expect("an account id");
    let other = *ledger
        .ids
        .iter()
        .find(|id| **id != victim && **id != counterparty)
        .expect("a third account");
    let edited = ledger.pick(other, "MoneyWithdrawn", 2);
    let mut tx = ledger.superuser().await;
    sqlx::query(
        "update accounts.events set metadata = jsonb_set(metadata, '{actor}', '\"mallory\"')
         where event_id = $1",
    )
    .bind(edited.event_id.as_uuid())
    .execute(&mut *tx)
    .await
    .expect("edit the actor");
    delete_stream(&mut tx, counterparty).await;
    cover_tracks(tx).await;

    let report = ledger.verify_with(scoped(other)).await;
    assert_eq!(
        report.problems.first().map(Place::of),
        Some(Place::event(ProblemKind::HashMismatch, &edited)),
        "reported:{}",
        listing(&report)
    );

    // The victim's stream is intact; its transfers with the deleted account are not.
    let report = ledger.verify_with(scoped(victim)).await;
    let orphan = victim_events
        .iter()
        .filter(|e| {
            ["toAccountId", "fromAccountId"]
                .iter()
                .any(|f| e.payload[*f].as_str() == Some(&counterparty_text))
        })
        .min_by_key(|e| e.position)
        .expect("a transfer with the counterparty");
    assert_eq!(
        report.problems.first().map(Place::of),
        Some(Place::event(ProblemKind::MissingTransferLeg, orphan)),
        "reported:{}",
        listing(&report)
    );
    assert!(report.problems[0].detail.contains(&counterparty_text));
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.stream_id == Some(victim) && p.kind == ProblemKind::MissingTransferLeg),
        "only the victim's transfers are reported:{}",
        listing(&report)
    );
    assert_eq!((report.streams, report.checkpoints), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_stops_at_events_max_and_says_it_stopped() {
    let ledger = Ledger::fresh().await;
    let total = ledger.events.len() as u64;

    let bounded = ledger
        .verify_with(VerifyOptions {
            events_max: Some(1_000),
            ..options()
        })
        .await;
    assert!(bounded.truncated);
    assert!(!bounded.is_clean(), "a truncated run is not a clean bill");
    assert_eq!(bounded.events, 1_000);
    assert!(
        bounded.problems.is_empty(),
        "reported:{}",
        listing(&bounded)
    );
    assert_eq!(bounded.checkpoints, 0, "checkpoints need the whole store");

    let exact = ledger
        .verify_with(VerifyOptions {
            events_max: Some(total),
            ..options()
        })
        .await;
    assert!(!exact.truncated);
    assert!(exact.is_clean(), "reported:{}", listing(&exact));
    assert_eq!(exact.events, total);
    assert_eq!(exact.checkpoints, ledger.checkpoints.len() as u64);
}
