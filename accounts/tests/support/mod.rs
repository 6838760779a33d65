//! Helpers shared by the accounts integration tests: a fresh PostgreSQL database per test,
//! commands with their contexts, raw event rows, and the checks every stream must pass.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::{collections::HashMap, fmt::Debug, str::FromStr, time::Duration};

use accounts::{
    commands::{
        AccountOutcome, AccountsService, AdjustmentOutcome, ApproveAdjustmentCommand, CloseAccount,
        CommandContext, CommandError, ExpireAdjustmentCommand, ExpireHoldCommand, FreezeAccount,
        HoldOutcome, MovementOutcome, PlaceHoldCommand, RejectAdjustmentCommand,
        ReleaseHoldCommand, RequestAdjustmentCommand, TransferOutcome, UnfreezeAccount,
    },
    domain::{
        Account, ChangeStatus, Command, Deposit, Holder, OpenAccount, Reason, Reference, Transfer,
        Withdraw,
    },
    store::EventStore,
};
use chrono::{DateTime, Utc};
use ledger::{
    AccountEvent, AccountId, CommandId, Currency, EventMetadata, Hash, PositiveAmount,
    RecordedEvent, TransferId,
    hashing::{EventHashInput, event_hash},
};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, PgPool, Row};
use uuid::Uuid;

/// How long a test waits for the database to reach a state it is driving towards before it
/// gives up; reaching it sooner ends the wait at once.
pub const DRIVE_DEADLINE: Duration = Duration::from_secs(30);

/// A database of its own, with the accounts migrations applied.
pub struct TestDb {
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> Self {
        let (pool, _settings) =
            platform::testing::fresh_pool(vec![(accounts::migrator(), accounts::SCHEMA)]).await;
        Self { pool }
    }

    pub fn store(&self) -> EventStore {
        EventStore::new(self.pool.clone())
    }

    pub fn service(&self) -> AccountsService {
        AccountsService::new(self.store())
    }

    /// A connection outside the pool, to hold a transaction open while the pool works.
    pub async fn connection(&self) -> PgConnection {
        PgConnection::connect_with(&self.pool.connect_options())
            .await
            .expect("connect outside the pool")
    }
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("test decimal")
}

pub fn amount(s: &str) -> PositiveAmount {
    PositiveAmount::parse(dec(s)).expect("test amount")
}

pub fn currency(code: &str) -> Currency {
    Currency::parse(code).expect("test currency")
}

pub fn new_key() -> String {
    Uuid::new_v4().to_string()
}

/// The context of a teller's request; its fingerprint covers the command type and input.
pub fn context(command_type: &'static str, key: &str, input: &impl Debug) -> CommandContext {
    let digest: [u8; 32] = Sha256::digest(format!("{command_type}\0{input:?}")).into();
    CommandContext {
        actor: "teller-ada".into(),
        roles: vec!["teller".into()],
        correlation_id: Uuid::new_v4().to_string(),
        client_addr: Some("192.0.2.10".into()),
        idempotency_key: key.to_string(),
        request_hash: Hash::from_bytes(digest),
    }
}

/// Any command's answer, for tests that run commands of several kinds alike.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Account(AccountOutcome),
    Movement(MovementOutcome),
    Transfer(TransferOutcome),
    Hold(HoldOutcome),
    Adjustment(Box<AdjustmentOutcome>),
}

impl Outcome {
    pub fn position(&self) -> i64 {
        match self {
            Self::Account(o) => o.position,
            Self::Movement(o) => o.position,
            Self::Transfer(o) => o.position,
            Self::Hold(o) => o.position,
            Self::Adjustment(o) => o.position,
        }
    }
}

/// Runs `command` under `context`.
pub async fn execute(
    service: &AccountsService,
    context: &CommandContext,
    command: Command,
) -> Result<Outcome, CommandError> {
    match command {
        Command::Open(c) => service.execute(context, c).await.map(Outcome::Account),
        Command::Deposit(c) => service.execute(context, c).await.map(Outcome::Movement),
        Command::Withdraw(c) => service.execute(context, c).await.map(Outcome::Movement),
        Command::Freeze(c) => service
            .execute(context, FreezeAccount(c))
            .await
            .map(Outcome::Account),
        Command::Unfreeze(c) => service
            .execute(context, UnfreezeAccount(c))
            .await
            .map(Outcome::Account),
        Command::Close(c) => service
            .execute(context, CloseAccount(c))
            .await
            .map(Outcome::Account),
        Command::PlaceHold(c) => service
            .execute(context, PlaceHoldCommand(c))
            .await
            .map(Outcome::Hold),
        Command::ReleaseHold(c) => service
            .execute(context, ReleaseHoldCommand(c))
            .await
            .map(Outcome::Hold),
        Command::ExpireHold(c) => service
            .execute(context, ExpireHoldCommand(c))
            .await
            .map(Outcome::Hold),
        Command::RequestAdjustment(c) => service
            .execute(context, RequestAdjustmentCommand(c))
            .await
            .map(|o| Outcome::Adjustment(Box::new(o))),
        Command::ApproveAdjustment(c) => service
            .execute(context, ApproveAdjustmentCommand(c))
            .await
            .map(|o| Outcome::Adjustment(Box::new(o))),
        Command::RejectAdjustment(c) => service
            .execute(context, RejectAdjustmentCommand(c))
            .await
            .map(|o| Outcome::Adjustment(Box::new(o))),
        Command::ExpireAdjustment(c) => service
            .execute(context, ExpireAdjustmentCommand(c))
            .await
            .map(|o| Outcome::Adjustment(Box::new(o))),
    }
}

/// The GraphQL mutation name that carries a command.
pub fn command_type(command: &Command) -> &'static str {
    match command {
        Command::Open(_) => "openAccount",
        Command::Deposit(_) => "deposit",
        Command::Withdraw(_) => "withdraw",
        Command::Freeze(_) => "freezeAccount",
        Command::Unfreeze(_) => "unfreezeAccount",
        Command::Close(_) => "closeAccount",
        Command::PlaceHold(_) => "placeHold",
        Command::ReleaseHold(_) => "releaseHold",
        Command::ExpireHold(_) => "expireHold",
        Command::RequestAdjustment(_) => "requestAdjustment",
        Command::ApproveAdjustment(_) => "approveAdjustment",
        Command::RejectAdjustment(_) => "rejectAdjustment",
        Command::ExpireAdjustment(_) => "expireAdjustment",
    }
}

pub fn open_command(id: AccountId, currency_code: &str, overdraft_limit: &str) -> Command {
    let currency = currency(currency_code);
    Command::Open(OpenAccount {
        account_id: id,
        holder: Holder::parse("Ada Lovelace").expect("holder"),
        currency,
        overdraft_limit: currency.fit(dec(overdraft_limit)).expect("limit"),
    })
}

pub fn deposit_command(id: AccountId, value: &str) -> Command {
    Command::Deposit(Deposit {
        account_id: id,
        amount: amount(value),
        reference: Some(Reference::parse("cash in").expect("reference")),
        value_date: None,
    })
}

pub fn withdraw_command(id: AccountId, value: &str) -> Command {
    Command::Withdraw(Withdraw {
        account_id: id,
        amount: amount(value),
        reference: None,
        value_date: None,
    })
}

fn status_change(id: AccountId, reason: &str) -> ChangeStatus {
    ChangeStatus {
        account_id: id,
        reason: Reason::parse(reason).expect("reason"),
    }
}

pub fn freeze_command(id: AccountId) -> Command {
    Command::Freeze(status_change(id, "fraud review"))
}

pub fn unfreeze_command(id: AccountId) -> Command {
    Command::Unfreeze(status_change(id, "review cleared"))
}

pub fn close_command(id: AccountId) -> Command {
    Command::Close(status_change(id, "customer request"))
}

pub fn transfer(from: AccountId, to: AccountId, value: &str) -> Transfer {
    Transfer {
        transfer_id: TransferId::generate(),
        from,
        to,
        amount: amount(value),
        reference: Some(Reference::parse("rent").expect("reference")),
        value_date: None,
    }
}

/// Runs a single-account command under a new idempotency key.
pub async fn run(service: &AccountsService, command: Command) -> Result<Outcome, CommandError> {
    let context = context(command_type(&command), &new_key(), &command);
    execute(service, &context, command).await
}

/// Runs a transfer under a new idempotency key.
pub async fn run_transfer(
    service: &AccountsService,
    transfer: Transfer,
) -> Result<Outcome, CommandError> {
    let context = context("transfer", &new_key(), &transfer);
    service
        .execute(&context, transfer)
        .await
        .map(Outcome::Transfer)
}

/// Opens an account and deposits `balance` into it (nothing when it is zero).
pub async fn open_with(service: &AccountsService, currency_code: &str, balance: &str) -> AccountId {
    let id = AccountId::generate();
    run(service, open_command(id, currency_code, "0"))
        .await
        .expect("open the account");
    if !dec(balance).is_zero() {
        run(service, deposit_command(id, balance))
            .await
            .expect("fund the account");
    }
    id
}

pub fn account_of(outcome: &Outcome) -> &Account {
    match outcome {
        Outcome::Account(o) => &o.account,
        Outcome::Movement(o) => &o.account,
        Outcome::Hold(o) => &o.account,
        Outcome::Adjustment(o) => &o.account,
        Outcome::Transfer(_) => panic!("a transfer outcome names two accounts"),
    }
}

pub fn metadata(command_type: &str) -> EventMetadata {
    EventMetadata {
        actor: "teller-ada".into(),
        roles: vec!["teller".into()],
        correlation_id: Uuid::new_v4().to_string(),
        causation_id: None,
        command_id: CommandId::generate(),
        command_type: command_type.into(),
        idempotency_key: None,
        client_addr: None,
    }
}

/// The balance a stored event left, for events that move money.
pub fn balance_after(event: &RecordedEvent) -> Option<Decimal> {
    event
        .decode()
        .expect("stored event decodes")
        .balance_after()
}

pub async fn stream_event_count(pool: &PgPool, id: AccountId) -> i64 {
    sqlx::query_scalar("select count(*) from accounts.events where stream_id = $1")
        .bind(id.as_uuid())
        .fetch_one(pool)
        .await
        .expect("count stream events")
}

pub async fn event_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from accounts.events")
        .fetch_one(pool)
        .await
        .expect("count events")
}

pub async fn idempotency_key_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from accounts.idempotency_keys")
        .fetch_one(pool)
        .await
        .expect("count idempotency keys")
}

/// Every stored column of every event, as text, in position order: to compare before and after.
pub async fn all_event_rows(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("select e::text from accounts.events e order by position")
        .fetch_all(pool)
        .await
        .expect("read every event row")
}

/// Checks what every stream must satisfy and returns its events: versions 1..=n without a
/// gap, each stored hash recomputes from the stored row, each `prev_hash` is the hash of the
/// event before (none for the first), `recorded_at` never decreases, and loading the
/// aggregate lands on the same version and head hash.
pub async fn assert_stream_sound(store: &EventStore, id: AccountId) -> Vec<RecordedEvent> {
    let events = store
        .read_stream_from(id, 1)
        .await
        .expect("read the stream");
    let mut prev: Option<&RecordedEvent> = None;
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.stream_id, id, "event of another stream");
        assert_eq!(
            event.stream_version,
            index as i64 + 1,
            "stream versions are 1, 2, 3... without a gap"
        );
        assert!(
            event.hash_is_intact(),
            "stored hash of version {} does not match its row",
            event.stream_version
        );
        assert_eq!(
            event.prev_hash,
            prev.map(|p| p.hash),
            "prev_hash of version {} is not the hash of the event before",
            event.stream_version
        );
        if let Some(prev) = prev {
            assert!(
                event.recorded_at >= prev.recorded_at,
                "recorded_at went backwards at version {}",
                event.stream_version
            );
        }
        prev = Some(event);
    }
    let loaded = store.load(id).await.expect("load the stream");
    assert_eq!(loaded.version, events.len() as i64, "loaded version");
    assert_eq!(loaded.head_hash, events.last().map(|e| e.hash), "head hash");
    events
}

/// Within every stream, `tx_id` never decreases as `stream_version` increases (events of one
/// append share a transaction), so publishing in `(tx_id, position)` order keeps each stream
/// in version order.
pub async fn assert_tx_ids_follow_versions(pool: &PgPool) {
    let rows = sqlx::query(
        "select stream_id, stream_version, tx_id::text::bigint as tx, position
         from accounts.events order by stream_id, stream_version",
    )
    .fetch_all(pool)
    .await
    .expect("read transaction ids");
    assert!(!rows.is_empty(), "there are events to check");
    let mut last: HashMap<Uuid, (i64, i64, i64)> = HashMap::new();
    for row in rows {
        let stream: Uuid = row.get("stream_id");
        let version: i64 = row.get("stream_version");
        let tx: i64 = row.get("tx");
        let position: i64 = row.get("position");
        if let Some((prev_version, prev_tx, prev_position)) = last.get(&stream) {
            assert!(
                tx >= *prev_tx,
                "stream {stream}: version {version} has tx_id {tx}, before version {prev_version}'s {prev_tx}"
            );
            if tx == *prev_tx {
                assert!(
                    position > *prev_position,
                    "stream {stream}: within one transaction positions follow versions"
                );
            }
        }
        last.insert(stream, (version, tx, position));
    }
}

/// Inserts one event row as an older writer would have stored it, chaining its hash from
/// `prev`, and returns the row's hash.
pub async fn insert_raw_event(
    conn: &mut PgConnection,
    prev: Option<Hash>,
    row: &EventHashInput<'_>,
) -> Hash {
    let hash = event_hash(prev.as_ref(), row);
    sqlx::query(
        "insert into accounts.events
             (event_id, stream_id, stream_version, event_type, event_version, payload, metadata,
              recorded_at, prev_hash, hash)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(row.event_id.as_uuid())
    .bind(row.stream_id.as_uuid())
    .bind(row.stream_version)
    .bind(row.event_type)
    .bind(row.event_version)
    .bind(row.payload)
    .bind(row.metadata)
    .bind(row.recorded_at)
    .bind(prev.map(|h| h.as_bytes().to_vec()))
    .bind(hash.as_bytes().to_vec())
    .execute(conn)
    .await
    .expect("insert a raw event row");
    hash
}

/// Inserts, on `conn`, the deposit that follows `stream`'s newest committed event, as a
/// concurrent writer would; returns the version it took.
pub async fn insert_next_deposit(
    conn: &mut PgConnection,
    store: &EventStore,
    stream: AccountId,
    value: &str,
) -> i64 {
    let events = store
        .read_stream_from(stream, 1)
        .await
        .expect("read stream");
    let head = events.last().expect("an opened stream");
    let before = store
        .load(stream)
        .await
        .expect("load")
        .account
        .expect("opened");
    let recorded_at: DateTime<Utc> = sqlx::query_scalar("select clock_timestamp()")
        .fetch_one(&mut *conn)
        .await
        .expect("clock");
    let event = AccountEvent::MoneyDeposited(ledger::events::Movement {
        amount: dec(value),
        currency: before.currency,
        balance_after: before.balance + dec(value),
        reference: None,
        value_date: microseconds(recorded_at),
    });
    let payload = event.to_payload();
    let metadata = serde_json::to_value(metadata("deposit")).expect("metadata");
    let version = head.stream_version + 1;
    insert_raw_event(
        conn,
        Some(head.hash),
        &EventHashInput {
            event_id: ledger::EventId::generate(),
            stream_id: stream,
            stream_version: version,
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload: &payload,
            metadata: &metadata,
            recorded_at: microseconds(recorded_at),
        },
    )
    .await;
    version
}

/// `at` truncated to the microsecond, as PostgreSQL stores it.
pub fn microseconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).expect("representable time")
}

/// Waits, with a bounded deadline, until `count` server backends of this database are blocked
/// waiting for a lock; polls the server's lock table, never sleeps.
pub async fn until_backends_wait_for_locks(pool: &PgPool, count: i64) {
    let deadline = tokio::time::Instant::now() + DRIVE_DEADLINE;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(distinct l.pid) from pg_locks l
             join pg_stat_activity a on a.pid = l.pid
             where not l.granted and a.datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .expect("read pg_locks");
        if waiting >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {waiting} of {count} backends reached their lock wait"
        );
        tokio::task::yield_now().await;
    }
}
