//! Command handlers: load the aggregate(s), decide, append with expected versions and the
//! idempotency key in one transaction; retry a bounded number of times on conflict.

use std::time::Duration;

use ledger::{AccountId, CommandId, ErrorCode, EventMetadata, Hash, TransferId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    domain::{self, Account, Command, DomainError, Transfer},
    store::{AppendBatch, Appended, EventStore, IdempotencyRecord, StoreError, StreamAppend},
    stream_locks::StreamLocks,
};

/// Attempts of one command before it answers CONCURRENCY_CONFLICT.
pub const APPEND_RETRIES_MAX: u32 = 24;
/// Upper bound of the random pause before a retry, doubled each attempt up to this.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(50);
/// The longest idempotency key accepted.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 200;

/// Who is issuing a command and under which idempotency key.
#[derive(Clone, Debug)]
pub struct CommandContext {
    pub actor: String,
    pub roles: Vec<String>,
    pub correlation_id: String,
    pub client_addr: Option<String>,
    /// The GraphQL mutation name, e.g. `deposit`.
    pub command_type: &'static str,
    pub idempotency_key: String,
    /// Fingerprint of the request as the client sent it, to tell a retry from a reuse.
    pub request_hash: Hash,
}

/// The answer to a command; stored under its idempotency key and returned again on retry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Outcome {
    #[serde(rename_all = "camelCase")]
    Account { account: Account, position: i64 },
    #[serde(rename_all = "camelCase")]
    Movement {
        account: Account,
        event_id: uuid::Uuid,
        position: i64,
    },
    #[serde(rename_all = "camelCase")]
    Transfer {
        transfer_id: TransferId,
        from: Account,
        to: Account,
        position: i64,
    },
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
    #[error("the event store is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl CommandError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Domain(e) => e.code(),
            Self::IdempotencyKeyReused { .. } => ErrorCode::IdempotencyKeyReused,
            Self::ConcurrencyConflict { .. } => ErrorCode::ConcurrencyConflict,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            Self::Unavailable(error)
        } else {
            Self::Internal(error)
        }
    }
}

/// What one attempt decided to write, and how to answer from what got written.
struct Plan {
    streams: Vec<StreamAppend>,
    respond: fn(&Plan, &Appended) -> Outcome,
    transfer_id: Option<TransferId>,
}

#[derive(Clone, Debug)]
pub struct AccountsService {
    store: EventStore,
    append_retries_max: u32,
    locks: StreamLocks,
}

impl AccountsService {
    pub fn new(store: EventStore) -> Self {
        Self::with_retries(store, APPEND_RETRIES_MAX)
    }

    /// A service that gives up after `append_retries_max` conflicting attempts (at least 1).
    pub fn with_retries(store: EventStore, append_retries_max: u32) -> Self {
        Self {
            store,
            append_retries_max: append_retries_max.max(1),
            locks: StreamLocks::default(),
        }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The account as the event store knows it now (strongly consistent).
    pub async fn account(&self, id: AccountId) -> Result<Option<Account>, CommandError> {
        Ok(self.store.load(id).await?.account)
    }

    /// Opens, deposits, withdraws, freezes, unfreezes or closes.
    #[tracing::instrument(skip_all, fields(command = context.command_type, account_id = %command.account_id()))]
    pub async fn execute(
        &self,
        context: &CommandContext,
        command: Command,
    ) -> Result<Outcome, CommandError> {
        self.run(context, &[command.account_id()], || async {
            let loaded = self.store.load(command.account_id()).await?;
            let events = domain::decide(loaded.account.as_ref(), &command)?;
            Ok(Plan {
                streams: vec![StreamAppend {
                    stream_id: command.account_id(),
                    expected_version: loaded.version,
                    state: loaded.account,
                    events,
                }],
                respond: single_stream_outcome,
                transfer_id: None,
            })
        })
        .await
    }

    /// Moves money between two accounts: both legs in one transaction, or neither.
    #[tracing::instrument(skip_all, fields(command = context.command_type, from = %transfer.from, to = %transfer.to))]
    pub async fn transfer(
        &self,
        context: &CommandContext,
        transfer: Transfer,
    ) -> Result<Outcome, CommandError> {
        self.run(context, &[transfer.from, transfer.to], || async {
            if transfer.from == transfer.to {
                return Err(DomainError::SameAccount.into());
            }
            let (from, to) =
                tokio::try_join!(self.store.load(transfer.from), self.store.load(transfer.to))?;
            let (debit, credit) =
                domain::decide_transfer(from.account.as_ref(), to.account.as_ref(), &transfer)?;
            Ok(Plan {
                streams: vec![
                    StreamAppend {
                        stream_id: transfer.from,
                        expected_version: from.version,
                        state: from.account,
                        events: vec![debit],
                    },
                    StreamAppend {
                        stream_id: transfer.to,
                        expected_version: to.version,
                        state: to.account,
                        events: vec![credit],
                    },
                ],
                respond: transfer_outcome,
                transfer_id: Some(transfer.transfer_id),
            })
        })
        .await
    }

    async fn run<F, Fut>(
        &self,
        context: &CommandContext,
        accounts: &[AccountId],
        attempt: F,
    ) -> Result<Outcome, CommandError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Plan, CommandError>>,
    {
        if let Some(outcome) = self.replay(context).await? {
            return Ok(outcome);
        }
        // Commands of this process on the same accounts take turns; others may still race.
        let _turn = self.locks.lock(accounts).await;
        let command_id = CommandId::generate();
        let metadata = EventMetadata {
            actor: context.actor.clone(),
            roles: context.roles.clone(),
            correlation_id: context.correlation_id.clone(),
            causation_id: Some(command_id.to_string()),
            command_id,
            command_type: context.command_type.to_string(),
            idempotency_key: Some(context.idempotency_key.clone()),
            client_addr: context.client_addr.clone(),
        };
        for attempt_no in 1..=self.append_retries_max {
            // A concurrent request with the same key may have committed since: answer as it did.
            if attempt_no > 1
                && let Some(outcome) = self.replay(context).await?
            {
                return Ok(outcome);
            }
            let plan = match attempt().await {
                Ok(plan) => plan,
                Err(CommandError::Domain(refusal)) => {
                    // The refusal may be caused by that request's own events (it spent the funds).
                    if let Some(outcome) = self.replay(context).await? {
                        return Ok(outcome);
                    }
                    return Err(CommandError::Domain(refusal));
                }
                Err(other) => return Err(other),
            };
            let respond = |appended: &Appended| -> Value {
                serde_json::to_value((plan.respond)(&plan, appended))
                    .expect("outcomes serialise to JSON")
            };
            let batch = AppendBatch {
                streams: plan.streams.clone(),
                metadata: &metadata,
                idempotency: Some(IdempotencyRecord {
                    key: &context.idempotency_key,
                    command_type: context.command_type,
                    request_hash: context.request_hash,
                    respond: &respond,
                }),
            };
            match self.store.append(batch).await {
                Ok(appended) => {
                    metrics::counter!("folio_commands_total", "command" => context.command_type, "outcome" => "ok")
                        .increment(1);
                    return Ok((plan.respond)(&plan, &appended));
                }
                Err(StoreError::Conflict { stream_id, .. }) => {
                    tracing::debug!(%stream_id, attempt_no, "append conflict; deciding again");
                    backoff(attempt_no).await;
                }
                Err(StoreError::IdempotencyKeyTaken(_)) => {
                    // A concurrent request with the same key won; answer as it did.
                    if let Some(outcome) = self.replay(context).await? {
                        return Ok(outcome);
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
        metrics::counter!("folio_commands_total", "command" => context.command_type, "outcome" => "conflict")
            .increment(1);
        Err(CommandError::ConcurrencyConflict {
            attempts: self.append_retries_max,
        })
    }

    /// The first answer given under this idempotency key, if the request is the same.
    async fn replay(&self, context: &CommandContext) -> Result<Option<Outcome>, CommandError> {
        let Some(stored) = self
            .store
            .stored_response(&context.actor, &context.idempotency_key)
            .await?
        else {
            return Ok(None);
        };
        if stored.command_type != context.command_type
            || stored.request_hash != context.request_hash
        {
            return Err(CommandError::IdempotencyKeyReused {
                key: context.idempotency_key.clone(),
            });
        }
        let outcome = serde_json::from_value(stored.response).map_err(|e| {
            CommandError::Internal(StoreError::Database(sqlx::Error::Decode(Box::new(e))))
        })?;
        Ok(Some(outcome))
    }
}

fn single_stream_outcome(plan: &Plan, appended: &Appended) -> Outcome {
    let stream = &appended.streams[0];
    let event = stream.events.last().expect("an append writes events");
    let moves_money = plan.streams[0]
        .events
        .iter()
        .any(|e| e.balance_change().is_some());
    if moves_money {
        Outcome::Movement {
            account: stream.state_after.clone(),
            event_id: event.event_id.as_uuid(),
            position: appended.position,
        }
    } else {
        Outcome::Account {
            account: stream.state_after.clone(),
            position: appended.position,
        }
    }
}

fn transfer_outcome(plan: &Plan, appended: &Appended) -> Outcome {
    let from_id = plan.streams[0].stream_id;
    let to_id = plan.streams[1].stream_id;
    let state = |id| {
        appended
            .stream(id)
            .map(|s| s.state_after.clone())
            .expect("both legs were appended")
    };
    Outcome::Transfer {
        transfer_id: plan.transfer_id.expect("transfer plans carry their id"),
        from: state(from_id),
        to: state(to_id),
        position: appended.position,
    }
}

async fn backoff(attempt: u32) {
    let ceiling = RETRY_BACKOFF_MAX.as_micros() as u64;
    let window = (1_000u64 << attempt.min(6)).min(ceiling);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=window))).await;
}
