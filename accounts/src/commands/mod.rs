//! Commands as the writer runs them: each names the streams it decides on, decides against
//! their states, and builds its own answer type from what was written. The answer is
//! stored under the command's idempotency key and given again, as the same type, to a
//! retry.
//!
//! [`AccountsService`] is the front door: it hands a command to the group-commit writer
//! ([`crate::writer`]) and waits for its own answer or refusal.

use std::{collections::HashMap, sync::Arc, time::Duration};

use ledger::{
    AccountEvent, AccountId, ErrorCode, EventId, Hash, RecordedEvent, hashing::canonical_json,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::{
    domain::{Account, Booking, Deposit, DomainError, Transfer, Withdraw},
    store::{EventStore, StoreError},
    writer::{Writer, WriterOptions},
};

mod adjustments;
mod holds;
mod movements;
mod reversals;

pub use adjustments::{
    AdjustmentOutcome, ApproveAdjustmentCommand, ExpireAdjustmentCommand, RejectAdjustmentCommand,
    RequestAdjustmentCommand, find_adjustment,
};
pub use holds::{
    CaptureHoldCommand, ExpireHoldCommand, HoldOutcome, HoldView, PlaceHoldCommand,
    ReleaseHoldCommand, find_hold,
};
pub use movements::{
    AccountOutcome, CloseAccount, FreezeAccount, MovementOutcome, TransferOutcome, UnfreezeAccount,
};
pub use reversals::{ReversalOutcome, ReversalTarget, ReverseCommand, find_movement};

/// Attempts of one command before it answers CONCURRENCY_CONFLICT.
pub const APPEND_RETRIES_MAX: u32 = 24;
/// Upper bound of the random pause before a retry, doubled each attempt up to this.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(50);
/// The longest idempotency key accepted.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 200;

/// Identifies a request's content (without its idempotency key): a retry has the same
/// fingerprint whenever it asks for the same thing, however it is spelt (`"10"` or
/// `"10.00"`, `"usd"` or `"USD"`, an omitted default or the default written out).
pub fn fingerprint(command_type: &str, canonical: &Value) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(command_type.as_bytes());
    hasher.update([0]);
    hasher.update(canonical_json(canonical).as_bytes());
    Hash::from_bytes(hasher.finalize().into())
}

/// Who is issuing a command and under which idempotency key.
#[derive(Clone, Debug)]
pub struct CommandContext {
    pub actor: String,
    pub roles: Vec<String>,
    pub correlation_id: String,
    pub client_addr: Option<String>,
    pub idempotency_key: String,
    /// Fingerprint of the request as parsed, to tell a retry from a reuse of the key.
    pub request_hash: Hash,
}

/// The states a command decides on, as the writer holds them.
pub trait States {
    fn account(&self, id: AccountId) -> Option<&Account>;
}

impl States for HashMap<AccountId, Account> {
    fn account(&self, id: AccountId) -> Option<&Account> {
        self.get(&id)
    }
}

/// What a command wrote, as its answer needs it: its own stored events, and the state of
/// each of its streams right before and right after them (later commands of the same group
/// may change them further).
#[derive(Clone, Debug)]
pub struct Written {
    pub events: Vec<RecordedEvent>,
    pub before: HashMap<AccountId, Account>,
    pub states: HashMap<AccountId, Account>,
}

impl Written {
    /// The highest position the command wrote: pass it as `atLeast` to reporting queries.
    pub fn position(&self) -> i64 {
        self.events.iter().map(|e| e.position).max().unwrap_or(0)
    }

    /// When the command's events were booked (they share one instant).
    pub fn booked_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.events
            .first()
            .map(|e| e.recorded_at)
            .expect("a written command has events")
    }

    /// The state of `id` after the command.
    pub fn account(&self, id: AccountId) -> Account {
        self.states
            .get(&id)
            .cloned()
            .expect("a command's answer names only streams it wrote")
    }

    /// The command's last event on `id`.
    pub fn last_event_on(&self, id: AccountId) -> EventId {
        self.events
            .iter()
            .rev()
            .find(|e| e.stream_id == id)
            .map(|e| e.event_id)
            .expect("a command's answer names only streams it wrote")
    }
}

/// A command the writer can run. The name is the mutation that carries it (recorded in
/// every event's metadata and with its idempotency key).
pub trait Command: Send + Sync + 'static {
    /// The answer a client receives, and a retry receives again.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// The mutation name, e.g. `deposit`.
    fn name(&self) -> &'static str;
    /// The streams the command reads and writes, in a stable order.
    fn streams(&self) -> Vec<AccountId>;
    /// The events to append, per stream, decided against `states` for `booking`.
    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError>;
    /// The answer, built from what was written.
    fn output(&self, written: &Written) -> Self::Output;
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{key:?} was already used for a different request")]
    IdempotencyKeyReused { key: String },
    #[error(
        "the account changed concurrently {attempts} times; retry the request with the same idempotency key"
    )]
    ConcurrencyConflict { attempts: u32 },
    /// In an atomic batch, another operation was refused, so this one was not written.
    #[error("not written: operation {index} of the atomic batch was refused")]
    LinkedOperationFailed { index: usize },
    #[error("the event store is unavailable")]
    Unavailable(#[source] Arc<StoreError>),
    #[error("internal error")]
    Internal(#[source] Arc<StoreError>),
}

impl CommandError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Domain(e) => e.code(),
            Self::IdempotencyKeyReused { .. } => ErrorCode::IdempotencyKeyReused,
            Self::ConcurrencyConflict { .. } => ErrorCode::ConcurrencyConflict,
            Self::LinkedOperationFailed { .. } => ErrorCode::LinkedOperationFailed,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The same error for another waiter (store errors are shared, not copied).
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Domain(e) => Self::Domain(e.clone()),
            Self::IdempotencyKeyReused { key } => Self::IdempotencyKeyReused { key: key.clone() },
            Self::ConcurrencyConflict { attempts } => Self::ConcurrencyConflict {
                attempts: *attempts,
            },
            Self::LinkedOperationFailed { index } => Self::LinkedOperationFailed { index: *index },
            Self::Unavailable(e) => Self::Unavailable(e.clone()),
            Self::Internal(e) => Self::Internal(e.clone()),
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            Self::Unavailable(Arc::new(error))
        } else {
            Self::Internal(Arc::new(error))
        }
    }
}

/// One operation of a batch, with its own context.
pub struct BatchOperation {
    pub context: CommandContext,
    pub command: BatchCommand,
}

/// The commands a batch may carry (`executeBatch`, ../shared/API.md).
#[derive(Clone, Debug)]
pub enum BatchCommand {
    Deposit(Deposit),
    Withdraw(Withdraw),
    Transfer(Transfer),
}

/// The answer to one operation of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchAnswer {
    Movement(MovementOutcome),
    Transfer(TransferOutcome),
}

/// The accounts service: runs commands through the group-commit writer and reads accounts.
#[derive(Clone, Debug)]
pub struct AccountsService {
    store: EventStore,
    writer: Writer,
    adjustment_expiry: chrono::Duration,
}

impl AccountsService {
    /// A service with the default writer options (see [`WriterOptions`]).
    pub fn new(store: EventStore) -> Self {
        Self::with_options(store, WriterOptions::default())
    }

    /// A service that gives up after `append_retries_max` conflicting attempts (at least 1).
    pub fn with_retries(store: EventStore, append_retries_max: u32) -> Self {
        Self::with_options(
            store,
            WriterOptions {
                append_retries_max: append_retries_max.max(1),
                ..WriterOptions::default()
            },
        )
    }

    /// A service with its own writer; needs a Tokio runtime (the writer is a task).
    pub fn with_options(store: EventStore, options: WriterOptions) -> Self {
        Self {
            writer: Writer::spawn(store.clone(), options),
            store,
            adjustment_expiry: options.adjustment_expiry,
        }
    }

    /// How long a requested adjustment waits for its checker.
    pub fn adjustment_expiry(&self) -> chrono::Duration {
        self.adjustment_expiry
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Notified after every commit, for the relay to wake on.
    pub fn commits(&self) -> Arc<Notify> {
        self.writer.commits()
    }

    /// The account as the event store knows it now (strongly consistent).
    pub async fn account(&self, id: AccountId) -> Result<Option<Account>, CommandError> {
        Ok(self.store.load(id).await?.account)
    }

    /// An account's holds as the hold index records them, most recently placed first.
    pub async fn holds_of(
        &self,
        id: AccountId,
        status: Option<crate::store::HoldStatus>,
        limit: i64,
    ) -> Result<Vec<crate::store::HoldRecord>, CommandError> {
        Ok(self.store.holds_of(id, status, limit).await?)
    }

    /// Runs one command under `context`: its answer, or why it was refused.
    #[tracing::instrument(skip_all, fields(command = command.name()))]
    pub async fn execute<C: Command>(
        &self,
        context: &CommandContext,
        command: C,
    ) -> Result<C::Output, CommandError> {
        let name = command.name();
        let result = self.writer.execute(context.clone(), command).await;
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(error) => error.code().as_str().to_string(),
        };
        metrics::counter!("folio_commands_total", "command" => name, "outcome" => outcome)
            .increment(1);
        result
    }

    /// Runs a batch: every operation in one unit (`atomic`: all or none) or each on its
    /// own; answers in input order.
    pub async fn execute_batch(
        &self,
        operations: Vec<BatchOperation>,
        atomic: bool,
    ) -> Vec<Result<BatchAnswer, CommandError>> {
        let answers = self.writer.execute_batch(operations, atomic).await;
        for answer in &answers {
            let outcome = match answer {
                Ok(_) => "ok".to_string(),
                Err(error) => error.code().as_str().to_string(),
            };
            metrics::counter!("folio_commands_total", "command" => "executeBatch", "outcome" => outcome)
                .increment(1);
        }
        answers
    }
}
