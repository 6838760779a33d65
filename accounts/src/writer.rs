//! The group-commit writer (DESIGN.md, "Group commit"): one task per process that takes
//! every command waiting when it is free (at most [`GROUP_COMMIT_OPERATIONS_MAX`]),
//! decides them in memory one after another, and appends them in one transaction: one
//! multi-row insert for all their events, one for their idempotency keys, one for the
//! snapshots that fell due, one commit (one fsync).
//!
//! - Each command keeps its own answer and its own refusal: a refusal writes nothing and
//!   is sent only once the group has committed (a later command may have been decided on
//!   state an earlier one changed). An atomic unit (`executeBatch` with `atomic: true`) is
//!   all or nothing: when one of its operations is refused, none is written and the others
//!   answer LINKED_OPERATION_FAILED.
//! - Account states come from a bounded LRU cache ([`ACCOUNT_CACHE_CAPACITY`]); the
//!   transaction first reads the head of every stream it will write. A stream another
//!   process moved is caught up from the events after the cached version, and only the
//!   commands whose streams moved are decided again: a command's decision is kept when every
//!   stream it decided on is at the version it saw (an account's version names its state).
//!   Expected versions remain the guarantee: a head that moves between that read and the
//!   insert fails the insert, and the group is tried again (bounded, then
//!   CONCURRENCY_CONFLICT).
//! - Commands of one process on one account are served in arrival order by construction:
//!   this writer replaces per-account turn-taking.
//! - No NOTIFY inside the transaction (it would serialise commits through their fsync). After
//!   a commit the writer wakes the relay of its own process ([`Writer::commits`]) and, at most
//!   every [`CROSS_PROCESS_WAKE_INTERVAL`], a relay in another process by a NOTIFY of its own.

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroUsize,
    sync::Arc,
    time::Duration,
};

use ledger::{AccountEvent, AccountId, CommandId, EventMetadata, Hash};
use lru::LruCache;
use serde_json::Value;
use tokio::{
    sync::{Notify, mpsc, oneshot},
    time::Instant,
};

use crate::{
    commands::{
        APPEND_RETRIES_MAX, BatchAnswer, BatchCommand, BatchOperation, Command, CommandContext,
        CommandError, RETRY_BACKOFF_MAX, States, Written,
    },
    domain::{Account, Booking, DomainError, evolve, still_valid_at},
    store::{
        EVENTS_CHANNEL, EventStore, Heads, IdempotencyRow, Loaded, NewEvent, NewStream, StoreError,
    },
};

/// The most operations one transaction takes (a unit is never split, so one batch of up to
/// 1,000 operations always commits alone or with others below this).
pub const GROUP_COMMIT_OPERATIONS_MAX: usize = 2_000;
/// How long the writer waits for more commands after the first of a group (0: it takes
/// what is waiting and goes; a group forms naturally while the previous one commits).
pub const GROUP_COMMIT_WAIT_DEFAULT: Duration = Duration::ZERO;
/// Account states the writer keeps in memory.
pub const ACCOUNT_CACHE_CAPACITY: usize = 100_000;
/// Units waiting for the writer; beyond, submitters wait (back-pressure).
pub const WRITER_QUEUE_UNITS_MAX: usize = 4_096;
/// How many days before its booking instant a value date may lie, unless configured.
pub const BACKDATE_DAYS_MAX_DEFAULT: i64 = 62;
/// How many days a requested adjustment waits for its checker, unless configured.
pub const ADJUSTMENT_EXPIRY_DAYS_DEFAULT: i64 = 7;
/// The least time between two NOTIFYs that wake a relay in another process.
pub const CROSS_PROCESS_WAKE_INTERVAL: Duration = Duration::from_millis(20);

/// Tunables of the writer.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    /// Attempts of a group whose streams keep moving before CONCURRENCY_CONFLICT.
    pub append_retries_max: u32,
    pub operations_max: usize,
    pub wait: Duration,
    pub cache_capacity: usize,
    /// How far before its booking instant a movement's value date may lie
    /// (`FOLIO_BACKDATE_DAYS_MAX`, DESIGN.md "Two time axes").
    pub backdate_max: chrono::Duration,
    /// How long a requested adjustment waits for its checker (`FOLIO_ADJUSTMENT_EXPIRY_DAYS`).
    pub adjustment_expiry: chrono::Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            append_retries_max: APPEND_RETRIES_MAX,
            operations_max: GROUP_COMMIT_OPERATIONS_MAX,
            wait: GROUP_COMMIT_WAIT_DEFAULT,
            cache_capacity: ACCOUNT_CACHE_CAPACITY,
            backdate_max: chrono::Duration::days(BACKDATE_DAYS_MAX_DEFAULT),
            adjustment_expiry: chrono::Duration::days(ADJUSTMENT_EXPIRY_DAYS_DEFAULT),
        }
    }
}

/// How a command ended, before its answer is built.
enum Finished {
    Written(Written),
    /// The answer stored under its idempotency key by an earlier request.
    Replayed(Value),
}

/// A command with its context and where its answer goes, its types erased.
trait Job: Send + Sync {
    fn name(&self) -> &'static str;
    fn context(&self) -> &CommandContext;
    fn streams(&self) -> Vec<AccountId>;
    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError>;
    /// The answer as stored under the idempotency key.
    fn response(&self, written: &Written) -> Value;
    fn finish(self: Box<Self>, result: Result<Finished, CommandError>);
}

struct Pending<C: Command, T> {
    command: C,
    context: CommandContext,
    map: fn(C::Output) -> T,
    reply: oneshot::Sender<Result<T, CommandError>>,
}

impl<C: Command, T: Send + 'static> Job for Pending<C, T> {
    fn name(&self) -> &'static str {
        self.command.name()
    }

    fn context(&self) -> &CommandContext {
        &self.context
    }

    fn streams(&self) -> Vec<AccountId> {
        self.command.streams()
    }

    fn decide(
        &self,
        states: &dyn States,
        booking: &Booking,
    ) -> Result<Vec<(AccountId, AccountEvent)>, DomainError> {
        self.command.decide(states, booking)
    }

    fn response(&self, written: &Written) -> Value {
        serde_json::to_value(self.command.output(written)).expect("answers serialise to JSON")
    }

    fn finish(self: Box<Self>, result: Result<Finished, CommandError>) {
        let answer = result.and_then(|finished| match finished {
            Finished::Written(written) => Ok((self.map)(self.command.output(&written))),
            Finished::Replayed(stored) => serde_json::from_value::<C::Output>(stored)
                .map(self.map)
                .map_err(|e| {
                    CommandError::from(StoreError::Database(sqlx::Error::Decode(Box::new(e))))
                }),
        });
        // The requester may have gone; the outcome stands either way.
        let _ = self.reply.send(answer);
    }
}

/// Commands that must be written together (atomic) or may each stand alone.
struct Unit {
    jobs: Vec<Box<dyn Job>>,
    atomic: bool,
}

/// A handle to the process's writer task.
#[derive(Clone, Debug)]
pub struct Writer {
    submit: mpsc::Sender<Unit>,
    commits: Arc<Notify>,
}

impl Writer {
    /// Starts the writer task; it runs until every handle is dropped.
    pub fn spawn(store: EventStore, options: WriterOptions) -> Self {
        let (submit, receive) = mpsc::channel(WRITER_QUEUE_UNITS_MAX);
        let commits = Arc::new(Notify::new());
        let wake = CrossProcessWake::spawn(store.pool().clone());
        let core = Core {
            cache: LruCache::new(
                NonZeroUsize::new(options.cache_capacity.max(1)).expect("a positive capacity"),
            ),
            store,
            options,
            commits: commits.clone(),
            wake,
        };
        tokio::spawn(core.run(receive));
        Self { submit, commits }
    }

    /// Notified after every commit.
    pub fn commits(&self) -> Arc<Notify> {
        self.commits.clone()
    }

    /// Runs one command and waits for its answer.
    pub async fn execute<C: Command>(
        &self,
        context: CommandContext,
        command: C,
    ) -> Result<C::Output, CommandError> {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Pending {
            command,
            context,
            map: std::convert::identity,
            reply,
        });
        self.send(Unit {
            jobs: vec![job],
            atomic: false,
        })
        .await?;
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Runs a batch as one unit; answers in input order.
    pub async fn execute_batch(
        &self,
        operations: Vec<BatchOperation>,
        atomic: bool,
    ) -> Vec<Result<BatchAnswer, CommandError>> {
        let mut jobs: Vec<Box<dyn Job>> = Vec::with_capacity(operations.len());
        let mut answers = Vec::with_capacity(operations.len());
        for operation in operations {
            let (reply, answer) = oneshot::channel();
            let context = operation.context;
            let job: Box<dyn Job> = match operation.command {
                BatchCommand::Deposit(command) => Box::new(Pending {
                    command,
                    context,
                    map: BatchAnswer::Movement,
                    reply,
                }),
                BatchCommand::Withdraw(command) => Box::new(Pending {
                    command,
                    context,
                    map: BatchAnswer::Movement,
                    reply,
                }),
                BatchCommand::Transfer(command) => Box::new(Pending {
                    command,
                    context,
                    map: BatchAnswer::Transfer,
                    reply,
                }),
            };
            jobs.push(job);
            answers.push(answer);
        }
        if let Err(error) = self.send(Unit { jobs, atomic }).await {
            return answers.iter().map(|_| Err(error.duplicate())).collect();
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(answer.await.unwrap_or_else(|_| Err(writer_gone())));
        }
        results
    }

    async fn send(&self, unit: Unit) -> Result<(), CommandError> {
        self.submit.send(unit).await.map_err(|_| writer_gone())
    }
}

fn writer_gone() -> CommandError {
    CommandError::from(StoreError::Database(sqlx::Error::PoolClosed))
}

/// Where one command stands within a group.
enum Status {
    /// To be decided.
    Open,
    /// Decided: its events, and the version of each stream it saw when deciding.
    Decided {
        events: Vec<(AccountId, AccountEvent)>,
        basis: Vec<(AccountId, i64)>,
    },
    /// Refused on the states it saw; final once the group commits, decided again if the
    /// group is retried and those states moved (the refusal may have come from an earlier
    /// command of the group that did not get written).
    Refused {
        error: CommandError,
        basis: Vec<(AccountId, i64)>,
    },
    Done(Result<Finished, CommandError>),
    /// Another command of this group has the same actor and key: answer as it is answered.
    Follows(usize),
}

struct Slot {
    job: Box<dyn Job>,
    unit: usize,
    status: Status,
    metadata: Value,
}

struct Core {
    store: EventStore,
    options: WriterOptions,
    cache: LruCache<AccountId, Loaded>,
    commits: Arc<Notify>,
    wake: CrossProcessWake,
}

impl Core {
    async fn run(mut self, mut receive: mpsc::Receiver<Unit>) {
        while let Some(first) = receive.recv().await {
            let mut operations = first.jobs.len();
            let mut units = vec![first];
            let deadline = Instant::now() + self.options.wait;
            while operations < self.options.operations_max {
                match receive.try_recv() {
                    Ok(unit) => {
                        operations += unit.jobs.len();
                        units.push(unit);
                    }
                    Err(mpsc::error::TryRecvError::Empty) if !self.options.wait.is_zero() => {
                        tokio::select! {
                            unit = receive.recv() => match unit {
                                Some(unit) => {
                                    operations += unit.jobs.len();
                                    units.push(unit);
                                }
                                None => break,
                            },
                            _ = tokio::time::sleep_until(deadline) => break,
                        }
                    }
                    Err(_) => break,
                }
            }
            metrics::histogram!("folio_group_commit_operations").record(operations as f64);
            self.group(units).await;
        }
    }

    /// Decides and commits one group, then answers every command in it.
    #[tracing::instrument(skip_all, fields(units = units.len()))]
    async fn group(&mut self, units: Vec<Unit>) {
        let mut slots = Vec::new();
        let mut atomic = Vec::with_capacity(units.len());
        for (index, unit) in units.into_iter().enumerate() {
            atomic.push(unit.atomic);
            for job in unit.jobs {
                let metadata = metadata(job.name(), job.context());
                slots.push(Slot {
                    job,
                    unit: index,
                    status: Status::Open,
                    metadata,
                });
            }
        }
        if let Err(error) = self.settle_keys(&mut slots).await {
            fail_open(&mut slots, &error);
        }
        fail_atomic_units(&mut slots, &atomic);
        if let Err(error) = self.write(&mut slots, &atomic).await {
            fail_open(&mut slots, &error);
        }
        answer(slots);
    }

    /// Answers commands whose key was used before (the stored answer, or IDEMPOTENCY_KEY_REUSED),
    /// and makes a command follow an earlier one of the group with the same actor and key.
    async fn settle_keys(&mut self, slots: &mut [Slot]) -> Result<(), CommandError> {
        let mut first_of: HashMap<(String, String), usize> = HashMap::new();
        let mut keys = Vec::new();
        for (index, slot) in slots.iter_mut().enumerate() {
            if !is_pending(&slot.status) {
                continue;
            }
            let context = slot.job.context();
            let key = (context.actor.clone(), context.idempotency_key.clone());
            match first_of.get(&key) {
                Some(&leader) => slot.status = Status::Follows(leader),
                None => {
                    first_of.insert(key.clone(), index);
                    keys.push(key);
                }
            }
        }
        let stored = self.store.stored_responses(&keys).await?;
        for slot in slots.iter_mut() {
            if !is_pending(&slot.status) {
                continue;
            }
            let context = slot.job.context();
            let key = (context.actor.clone(), context.idempotency_key.clone());
            if let Some(stored) = stored.get(&key) {
                slot.status = Status::Done(
                    if stored.command_type == slot.job.name()
                        && stored.request_hash == context.request_hash
                    {
                        Ok(Finished::Replayed(stored.response.clone()))
                    } else {
                        Err(CommandError::IdempotencyKeyReused {
                            key: context.idempotency_key.clone(),
                        })
                    },
                );
            }
        }
        Ok(())
    }

    /// Loads into the cache every stream an open command needs that it does not hold.
    async fn load_missing(&mut self, slots: &[Slot]) -> Result<(), CommandError> {
        let mut missing: Vec<AccountId> = slots
            .iter()
            .filter(|s| is_pending(&s.status))
            .flat_map(|s| s.job.streams())
            .filter(|id| !self.cache.contains(id))
            .collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        for (id, loaded) in self.store.load_many(&missing).await? {
            self.cache.put(id, loaded);
        }
        Ok(())
    }

    /// Decides the open commands and writes them in one transaction, retrying the group when
    /// another process moved one of its streams in the meantime.
    async fn write(&mut self, slots: &mut [Slot], atomic: &[bool]) -> Result<(), CommandError> {
        let mut conflicts = 0u32;
        loop {
            if !slots.iter().any(|s| is_pending(&s.status)) {
                return Ok(());
            }
            self.load_missing(slots).await?;
            match self.attempt(slots, atomic).await {
                Ok(()) => {
                    // A refusal may come from the request's own first attempt, committed by
                    // another process meanwhile (it spent the funds): answer as it was answered.
                    if slots
                        .iter()
                        .any(|s| matches!(s.status, Status::Refused { .. }))
                    {
                        self.settle_keys(slots).await?;
                    }
                    settle_refusals(slots);
                    return Ok(());
                }
                Err(Attempt::Conflict) => {
                    // A concurrent request with one of these keys may be what moved the stream.
                    self.settle_keys(slots).await?;
                    fail_atomic_units(slots, atomic);
                    conflicts += 1;
                    if conflicts >= self.options.append_retries_max {
                        settle_refusals(slots);
                        for slot in slots.iter_mut().filter(|s| is_pending(&s.status)) {
                            slot.status = Status::Done(Err(CommandError::ConcurrencyConflict {
                                attempts: conflicts,
                            }));
                        }
                        return Ok(());
                    }
                    backoff(conflicts).await;
                }
                Err(Attempt::HoldsTaken) => {
                    fail_atomic_units(slots, atomic);
                }
                Err(Attempt::KeysTaken) => {
                    // Answer them as the concurrent request was answered; decide the rest again.
                    self.settle_keys(slots).await?;
                    fail_atomic_units(slots, atomic);
                }
                Err(Attempt::Failed(error)) => return Err(error),
            }
        }
    }

    async fn attempt(&mut self, slots: &mut [Slot], atomic: &[bool]) -> Result<(), Attempt> {
        let mut ids: Vec<AccountId> = slots
            .iter()
            .filter(|s| is_pending(&s.status))
            .flat_map(|s| s.job.streams())
            .collect();
        ids.sort();
        ids.dedup();
        let mut tx = self.store.begin().await?;
        let heads = tx.heads(&ids).await?;
        self.catch_up(&mut tx, &ids, &heads).await?;

        // Decide, in arrival order, against the states as they stand after earlier commands.
        let mut working: HashMap<AccountId, Account> = HashMap::with_capacity(ids.len());
        let mut versions: HashMap<AccountId, i64> = HashMap::with_capacity(ids.len());
        for id in &ids {
            let cached = self.cache.get(id).expect("loaded before the attempt");
            if let Some(account) = &cached.account {
                working.insert(*id, account.clone());
            }
            versions.insert(*id, cached.version);
        }
        let booking = Booking {
            closed_through: heads.closed_through,
            ..Booking::at(heads.booking_instant, self.options.backdate_max)
        };
        let mut index = 0;
        while index < slots.len() {
            let unit = slots[index].unit;
            let end = slots[index..]
                .iter()
                .position(|s| s.unit != unit)
                .map_or(slots.len(), |offset| index + offset);
            decide_unit(
                &mut slots[index..end],
                atomic[unit],
                &mut working,
                &mut versions,
                &booking,
            );
            index = end;
        }

        // The events of every decided command, per stream, in decision order.
        let mut streams: Vec<NewStream> = Vec::new();
        let mut stream_of: HashMap<AccountId, usize> = HashMap::new();
        for slot in slots.iter() {
            if let Status::Decided { events, .. } = &slot.status {
                for (id, event) in events {
                    let at = *stream_of.entry(*id).or_insert_with(|| {
                        streams.push(NewStream {
                            stream_id: *id,
                            events: Vec::new(),
                        });
                        streams.len() - 1
                    });
                    streams[at].events.push(NewEvent {
                        event: event.clone(),
                        metadata: slot.metadata.clone(),
                    });
                }
            }
        }
        if streams.is_empty() {
            tx.rollback().await?;
            return Ok(());
        }
        let recorded = match tx.append(&heads, &streams).await {
            Ok(recorded) => recorded,
            Err(StoreError::Conflict { .. }) => {
                // The transaction is spent; the next attempt reads the heads again.
                let _ = tx.rollback().await;
                return Err(Attempt::Conflict);
            }
            Err(other) => return Err(other.into()),
        };

        // Each command's own events (stored in version order, which is decision order) and
        // the states right after them.
        let mut by_stream: HashMap<AccountId, std::collections::VecDeque<ledger::RecordedEvent>> =
            HashMap::new();
        for event in recorded {
            by_stream
                .entry(event.stream_id)
                .or_default()
                .push_back(event);
        }
        let mut states: HashMap<AccountId, Option<Account>> = ids
            .iter()
            .map(|id| (*id, self.cache.peek(id).and_then(|l| l.account.clone())))
            .collect();
        let mut written: Vec<Option<Written>> = Vec::with_capacity(slots.len());
        let mut rows = Vec::new();
        let mut row_slots = Vec::new();
        for (index, slot) in slots.iter().enumerate() {
            let Status::Decided { events, .. } = &slot.status else {
                written.push(None);
                continue;
            };
            let mut mine = Written {
                events: Vec::with_capacity(events.len()),
                before: HashMap::new(),
                states: HashMap::new(),
            };
            for id in slot.job.streams() {
                if let Some(Some(account)) = states.get(&id) {
                    mine.before.insert(id, account.clone());
                }
            }
            for (id, event) in events {
                let stored = by_stream
                    .get_mut(id)
                    .and_then(|queue| queue.pop_front())
                    .expect("every decided event was stored");
                let state = states.entry(*id).or_insert(None);
                *state = evolve(state.take(), event, stored.recorded_at);
                mine.events.push(stored);
            }
            for id in slot.job.streams() {
                if let Some(Some(account)) = states.get(&id) {
                    mine.states.insert(id, account.clone());
                }
            }
            let context = slot.job.context();
            rows.push(IdempotencyRow {
                actor: context.actor.clone(),
                key: context.idempotency_key.clone(),
                command_type: slot.job.name().to_string(),
                request_hash: context.request_hash,
                response: slot.job.response(&mine),
                position: mine.position(),
            });
            row_slots.push(index);
            written.push(Some(mine));
        }
        let recorded: Vec<ledger::RecordedEvent> = written
            .iter()
            .flatten()
            .flat_map(|w| w.events.iter())
            .filter(|e| e.event_type.starts_with("Hold"))
            .cloned()
            .collect();
        let holds_taken = tx.index_holds(&recorded).await?;
        let adjustments: Vec<ledger::RecordedEvent> = written
            .iter()
            .flatten()
            .flat_map(|w| w.events.iter())
            .filter(|e| e.event_type.starts_with("Adjustment"))
            .cloned()
            .collect();
        tx.index_adjustments(&adjustments).await?;
        if !holds_taken.is_empty() {
            // Another hold has the id (on another account): those placings are refused,
            // the rest of the group is decided again without them.
            tx.rollback().await?;
            for slot in slots.iter_mut() {
                let Status::Decided { events, .. } = &slot.status else {
                    continue;
                };
                let taken = events.iter().find_map(|(_, event)| match event {
                    AccountEvent::HoldPlaced(p) if holds_taken.contains(&p.hold_id) => {
                        Some(p.hold_id)
                    }
                    _ => None,
                });
                if let Some(hold_id) = taken {
                    slot.status = Status::Done(Err(CommandError::Domain(
                        DomainError::HoldAlreadyExists(hold_id),
                    )));
                }
            }
            return Err(Attempt::HoldsTaken);
        }
        let taken = tx.record_keys(&rows).await?;
        if !taken.is_empty() {
            tx.rollback().await?;
            return Err(Attempt::KeysTaken);
        }
        let mut snapshots: Vec<(Account, Hash)> = Vec::new();
        let mut heads_after: HashMap<AccountId, (i64, Hash)> = HashMap::new();
        for slot_written in written.iter().flatten() {
            for event in &slot_written.events {
                heads_after.insert(event.stream_id, (event.stream_version, event.hash));
            }
        }
        for (id, (version, hash)) in &heads_after {
            if tx.snapshot_due(heads.version(*id), *version)
                && let Some(Some(account)) = states.get(id)
            {
                snapshots.push((account.clone(), *hash));
            }
        }
        tx.snapshots(&snapshots).await?;
        if let Err(error) = tx.commit().await {
            // Whether it committed is unknown: forget the streams, so the next group reads them.
            for id in heads_after.keys() {
                self.cache.pop(id);
            }
            return Err(error.into());
        }
        let events_written: usize = written.iter().flatten().map(|w| w.events.len()).sum();
        metrics::counter!("folio_events_appended_total").increment(events_written as u64);
        for (id, (version, hash)) in heads_after {
            self.cache.put(
                id,
                Loaded {
                    account: states.get(&id).cloned().flatten(),
                    version,
                    head_hash: Some(hash),
                    events_replayed: 0,
                    from_snapshot: false,
                },
            );
        }
        for (slot, mine) in slots.iter_mut().zip(written) {
            if let Some(mine) = mine {
                slot.status = Status::Done(Ok(Finished::Written(mine)));
            }
        }
        self.commits.notify_one();
        self.wake.wake();
        Ok(())
    }

    /// Brings every cached stream to the head the transaction read: the events after the
    /// cached version, or the whole stream when the cache is ahead (the store was reset).
    async fn catch_up(
        &mut self,
        tx: &mut crate::store::AppendTx,
        ids: &[AccountId],
        heads: &Heads,
    ) -> Result<(), Attempt> {
        let mut behind = Vec::new();
        for id in ids {
            let cached = self.cache.peek(id).map_or(0, |l| l.version);
            let head = heads.version(*id);
            if cached > head {
                self.cache.put(*id, empty_loaded());
                behind.push((*id, 0));
            } else if cached < head {
                behind.push((*id, cached));
            }
        }
        if behind.is_empty() {
            return Ok(());
        }
        metrics::counter!("folio_writer_streams_caught_up_total").increment(behind.len() as u64);
        for event in tx.events_after(&behind).await? {
            let loaded = self
                .cache
                .get_mut(&event.stream_id)
                .expect("a stream being caught up is cached");
            if let Err(error) = loaded.apply(&event) {
                self.cache.pop(&event.stream_id);
                return Err(error.into());
            }
        }
        Ok(())
    }
}

/// Why an attempt did not commit.
enum Attempt {
    /// Another process moved a stream between the heads read and the insert.
    Conflict,
    /// Another process recorded one of the keys first.
    KeysTaken,
    /// Holds placed by the group have ids other holds have; those commands are refused.
    HoldsTaken,
    Failed(CommandError),
}

impl From<StoreError> for Attempt {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => Self::Conflict,
            other => Self::Failed(other.into()),
        }
    }
}

fn empty_loaded() -> Loaded {
    Loaded {
        account: None,
        version: 0,
        head_hash: None,
        events_replayed: 0,
        from_snapshot: false,
    }
}

/// Still to be decided in an attempt (again, if decided in one that did not commit).
fn is_pending(status: &Status) -> bool {
    matches!(
        status,
        Status::Open | Status::Decided { .. } | Status::Refused { .. }
    )
}

/// Makes the refusals of a group final (it committed, or gave up).
fn settle_refusals(slots: &mut [Slot]) {
    for slot in slots.iter_mut() {
        if let Status::Refused { error, .. } = &slot.status {
            slot.status = Status::Done(Err(error.duplicate()));
        }
    }
}

/// Decides a unit's open commands in order against `working`, evolving it. A decision
/// is kept when every stream it saw is at the version it saw then. An atomic unit with a
/// refusal leaves `working` as it found it and writes nothing.
fn decide_unit(
    slots: &mut [Slot],
    atomic: bool,
    working: &mut HashMap<AccountId, Account>,
    versions: &mut HashMap<AccountId, i64>,
    booking: &Booking,
) {
    type Before = (
        HashSet<AccountId>,
        HashMap<AccountId, Account>,
        HashMap<AccountId, i64>,
    );
    let before: Option<Before> = atomic.then(|| {
        let ids: HashSet<AccountId> = slots.iter().flat_map(|s| s.job.streams()).collect();
        (
            ids.clone(),
            working
                .iter()
                .filter(|(id, _)| ids.contains(id))
                .map(|(id, a)| (*id, a.clone()))
                .collect(),
            versions
                .iter()
                .filter(|(id, _)| ids.contains(id))
                .map(|(id, v)| (*id, *v))
                .collect(),
        )
    });
    let mut refused: Option<usize> = None;
    for (offset, slot) in slots.iter_mut().enumerate() {
        if !is_pending(&slot.status) {
            continue;
        }
        let streams = slot.job.streams();
        let basis: Vec<(AccountId, i64)> = streams
            .iter()
            .map(|id| (*id, versions.get(id).copied().unwrap_or(0)))
            .collect();
        let decided = match &slot.status {
            Status::Decided {
                events,
                basis: seen,
            } if *seen == basis && still_valid_at(events, working, booking) => Ok(events.clone()),
            Status::Refused {
                error: CommandError::Domain(refusal),
                basis: seen,
            } if *seen == basis => Err(refusal.clone()),
            _ => slot.job.decide(&*working, booking),
        };
        match decided {
            Ok(events) => {
                for (id, event) in &events {
                    let state = working.remove(id);
                    if let Some(account) = evolve(state, event, booking.at) {
                        working.insert(*id, account);
                    }
                    *versions.entry(*id).or_insert(0) += 1;
                }
                slot.status = Status::Decided { events, basis };
            }
            Err(refusal) => {
                slot.status = Status::Refused {
                    error: CommandError::Domain(refusal),
                    basis,
                };
                refused.get_or_insert(offset);
            }
        }
    }
    if let (true, Some(first), Some((ids, states, seen))) = (atomic, refused, before) {
        // Nothing of the unit is written: its streams go back to where the unit found them.
        for id in &ids {
            working.remove(id);
            versions.remove(id);
        }
        working.extend(states);
        versions.extend(seen);
        for slot in slots.iter_mut() {
            if matches!(slot.status, Status::Decided { .. } | Status::Open) {
                slot.status = Status::Refused {
                    error: CommandError::LinkedOperationFailed { index: first },
                    basis: Vec::new(),
                };
            }
        }
    }
}

/// In an atomic unit, one command answered with a refusal already (a reused key) means
/// none of the unit is written.
fn fail_atomic_units(slots: &mut [Slot], atomic: &[bool]) {
    let mut failed: HashMap<usize, usize> = HashMap::new();
    let mut first_of_unit: HashMap<usize, usize> = HashMap::new();
    for (index, slot) in slots.iter().enumerate() {
        first_of_unit.entry(slot.unit).or_insert(index);
        if atomic[slot.unit]
            && matches!(&slot.status, Status::Done(Err(_)))
            && !failed.contains_key(&slot.unit)
        {
            failed.insert(slot.unit, index - first_of_unit[&slot.unit]);
        }
    }
    for slot in slots.iter_mut() {
        if let Some(&first) = failed.get(&slot.unit)
            && (is_pending(&slot.status) || matches!(slot.status, Status::Follows(_)))
        {
            slot.status = Status::Done(Err(CommandError::LinkedOperationFailed { index: first }));
        }
    }
}

fn fail_open(slots: &mut [Slot], error: &CommandError) {
    for slot in slots.iter_mut().filter(|s| is_pending(&s.status)) {
        slot.status = Status::Done(Err(error.duplicate()));
    }
}

/// Sends every answer: a follower gets its leader's answer when its request is the same,
/// and IDEMPOTENCY_KEY_REUSED when it is not.
fn answer(slots: Vec<Slot>) {
    let mut shared: HashMap<usize, (String, Hash, Result<Value, CommandError>)> = HashMap::new();
    for (index, slot) in slots.iter().enumerate() {
        if let Status::Done(result) = &slot.status {
            let value = match result {
                Ok(Finished::Written(written)) => Ok(slot.job.response(written)),
                Ok(Finished::Replayed(value)) => Ok(value.clone()),
                Err(error) => Err(error.duplicate()),
            };
            shared.insert(
                index,
                (
                    slot.job.name().to_string(),
                    slot.job.context().request_hash,
                    value,
                ),
            );
        }
    }
    for slot in slots {
        let result = match slot.status {
            Status::Done(result) => result,
            Status::Follows(leader) => match shared.get(&leader) {
                Some((name, hash, _))
                    if name != slot.job.name() || *hash != slot.job.context().request_hash =>
                {
                    Err(CommandError::IdempotencyKeyReused {
                        key: slot.job.context().idempotency_key.clone(),
                    })
                }
                Some((_, _, Ok(value))) => Ok(Finished::Replayed(value.clone())),
                Some((_, _, Err(error))) => Err(error.duplicate()),
                None => Err(CommandError::Internal(Arc::new(StoreError::Database(
                    sqlx::Error::Protocol("a command followed one that was not answered".into()),
                )))),
            },
            Status::Open | Status::Decided { .. } | Status::Refused { .. } => {
                Err(CommandError::Internal(Arc::new(StoreError::Database(
                    sqlx::Error::Protocol("a command was left undecided".into()),
                ))))
            }
        };
        slot.job.finish(result);
    }
}

/// The metadata every event of a command carries.
fn metadata(name: &str, context: &CommandContext) -> Value {
    let command_id = CommandId::generate();
    serde_json::to_value(EventMetadata {
        actor: context.actor.clone(),
        roles: context.roles.clone(),
        correlation_id: context.correlation_id.clone(),
        causation_id: Some(command_id.to_string()),
        command_id,
        command_type: name.to_string(),
        idempotency_key: Some(context.idempotency_key.clone()),
        client_addr: context.client_addr.clone(),
    })
    .expect("metadata serialises to JSON")
}

async fn backoff(attempt: u32) {
    let ceiling = RETRY_BACKOFF_MAX.as_micros() as u64;
    let window = (1_000u64 << attempt.min(6)).min(ceiling);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=window))).await;
}

/// Wakes a relay in another process: a NOTIFY on a connection of its own, outside every
/// append, at most every [`CROSS_PROCESS_WAKE_INTERVAL`].
#[derive(Clone)]
struct CrossProcessWake {
    pending: Arc<Notify>,
}

impl CrossProcessWake {
    fn spawn(pool: sqlx::PgPool) -> Self {
        let pending = Arc::new(Notify::new());
        let waiting = pending.clone();
        tokio::spawn(async move {
            loop {
                waiting.notified().await;
                let notify = sqlx::query(sqlx::AssertSqlSafe(format!("notify {EVENTS_CHANNEL}")));
                if let Err(error) = notify.execute(&pool).await {
                    tracing::debug!(%error, "cannot wake other processes' relays; they poll");
                }
                tokio::time::sleep(CROSS_PROCESS_WAKE_INTERVAL).await;
            }
        });
        Self { pending }
    }

    fn wake(&self) {
        self.pending.notify_one();
    }
}

impl std::fmt::Debug for CrossProcessWake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CrossProcessWake")
    }
}
