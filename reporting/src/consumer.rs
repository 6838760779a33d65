//! The JetStream consumer that feeds the projection, in publication order.
//!
//! The projection keeps its own place in the stream (DESIGN.md, "An honest watermark"):
//! each batch commits the last stream sequence it processed together with the read
//! models, and the consumer reads with an *ordered* consumer that starts right after
//! it. Nothing is acknowledged, so after a crash nothing waits for an acknowledgement
//! deadline: the next leader simply resumes from the committed sequence, and anything
//! the crashed batch had half done was rolled back with its transaction.
//!
//! One projector runs per reporting database: it holds a PostgreSQL advisory lock on a
//! dedicated connection and writes every batch through that connection, so losing the
//! connection loses the lead. Other processes stand by. Receiving is pipelined with
//! writing: a reader task pulls and decodes the next batch while the last one commits.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, pull},
    stream::Stream as JetStream,
};
use futures::StreamExt;
use ledger::{RecordedEvent, subjects};
use platform::config::NatsSettings;
use sqlx::{Connection, PgConnection};
use tokio::sync::{mpsc, watch};

use crate::projection::{
    BatchOutcome, Checkpoint, Delivery, Disposition, ProjectionError, Projector,
};

/// Messages received and applied per transaction, at most.
pub const FETCH_BATCH_MAX: usize = 512;
/// Decoded batches waiting for the writer: the pipeline's depth.
pub const PIPELINE_BATCHES_MAX: usize = 2;
/// The longest pause between attempts while NATS or PostgreSQL is down.
pub const CONSUMER_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How often a standby tries to take the lead.
pub const STANDBY_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The longest one statement of the projector may run (or wait for a lock).
pub const LEADER_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The advisory lock that makes one process the projector of a database ("folio.pj").
pub const PROJECTION_LOCK_KEY: i64 = 0x666f_6c69_6f2e_706a;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("JetStream: {0}")]
    Nats(String),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

impl From<sqlx::Error> for ConsumerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Projection(ProjectionError::Database(error))
    }
}

/// What one step of the consumer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Processed {
    pub applied: usize,
    pub already_applied: usize,
    /// Parked (waiting for a predecessor) or unreadable by this build.
    pub waiting: usize,
    pub refused: usize,
    /// Parked events of earlier batches that this one applied.
    pub unparked: usize,
}

impl Processed {
    fn add(&mut self, outcome: &BatchOutcome) {
        for disposition in &outcome.dispositions {
            match disposition {
                Disposition::Applied => self.applied += 1,
                Disposition::AlreadyApplied => self.already_applied += 1,
                Disposition::Refused { .. } => self.refused += 1,
                Disposition::Parked { .. } | Disposition::Unreadable { .. } => self.waiting += 1,
            }
        }
        self.unparked += outcome.unparked;
    }
}

/// What the projector of this process is doing, for readiness and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerState {
    Starting,
    /// This process projects.
    Leading,
    /// Another process holds the projection lock for this database.
    StandingBy,
    /// NATS or PostgreSQL failed; retrying.
    Interrupted(String),
    Stopped,
}

#[derive(Clone, Debug)]
struct Shared {
    state: ConsumerState,
    since: Instant,
}

/// How far the projection is behind the stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lag {
    /// Messages in the stream above the watermark.
    pub events: i64,
    /// Seconds since the oldest message above the watermark was published (0 when none).
    pub seconds: f64,
}

#[derive(Clone, Debug)]
pub struct ProjectionConsumer {
    js: jetstream::Context,
    settings: NatsSettings,
    projector: Projector,
    shared: Arc<Mutex<Shared>>,
}

impl ProjectionConsumer {
    pub fn new(nats: async_nats::Client, settings: NatsSettings, projector: Projector) -> Self {
        Self {
            js: jetstream::new(nats),
            settings,
            projector,
            shared: Arc::new(Mutex::new(Shared {
                state: ConsumerState::Starting,
                since: Instant::now(),
            })),
        }
    }

    pub fn projector(&self) -> &Projector {
        &self.projector
    }

    /// What this process's projector is doing, and since when.
    pub fn state(&self) -> (ConsumerState, Duration) {
        let shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        (shared.state.clone(), shared.since.elapsed())
    }

    fn set_state(&self, state: ConsumerState) {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if shared.state != state {
            shared.state = state;
            shared.since = Instant::now();
        }
    }

    /// The deployment's stream, created if missing.
    pub async fn stream(&self) -> Result<JetStream, ConsumerError> {
        platform::messaging::ensure_stream(&self.js, &self.settings)
            .await
            .map_err(|e| ConsumerError::Nats(e.to_string()))
    }

    /// How far the committed watermark is behind the stream's last message. Reads the
    /// stream's state only: it creates neither the stream nor a consumer (readiness probes
    /// and the lag gauges call it).
    pub async fn lag(&self) -> Result<Lag, ConsumerError> {
        let stream = match self.js.get_stream(&self.settings.stream).await {
            Ok(stream) => stream,
            // No stream yet: nothing was published, so nothing waits.
            Err(error) if stream_missing(&error) => {
                return Ok(Lag {
                    events: 0,
                    seconds: 0.0,
                });
            }
            Err(error) => return Err(ConsumerError::Nats(error.to_string())),
        };
        let info = stream
            .get_info()
            .await
            .map_err(|e| ConsumerError::Nats(e.to_string()))?;
        let mut conn = self.projector.pool().acquire().await?;
        let checkpoint = self.projector.checkpoint(&mut conn).await?;
        let last = info.state.last_sequence as i64;
        let events = (last - checkpoint.watermark_sequence).max(0);
        let seconds = if events == 0 {
            0.0
        } else {
            let next = (checkpoint.watermark_sequence + 1).max(info.state.first_sequence as i64);
            match stream.get_raw_message(next as u64).await {
                Ok(message) => {
                    let published = message.time.unix_timestamp_nanos() as f64 / 1e9;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(published);
                    (now - published).max(0.0)
                }
                Err(_) => 0.0,
            }
        };
        Ok(Lag { events, seconds })
    }

    /// Applies whatever the stream holds after the committed checkpoint, up to one batch,
    /// without waiting for more (tests drive the projection one step at a time with it).
    pub async fn try_process_next(&self) -> Result<Processed, ConsumerError> {
        let stream = self.stream().await?;
        let mut conn = self.projector.pool().acquire().await?;
        let checkpoint = self.resume_point(&stream, &mut conn).await?;
        let consumer = stream
            .create_consumer(pull::Config {
                ack_policy: AckPolicy::None,
                deliver_policy: start_after(checkpoint),
                filter_subject: subjects::all_events(&self.settings.subject_prefix),
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| ConsumerError::Nats(e.to_string()))?;
        let mut messages = consumer
            .fetch()
            .max_messages(FETCH_BATCH_MAX)
            .messages()
            .await
            .map_err(|e| ConsumerError::Nats(e.to_string()))?;
        let mut received = Vec::new();
        while let Some(message) = messages.next().await {
            match message {
                Ok(message) => received.push(message),
                Err(error) => {
                    tracing::debug!(%error, "fetch ended");
                    break;
                }
            }
        }
        let mut processed = Processed::default();
        let batch = decode(received);
        if !batch.is_empty() {
            processed.add(&self.projector.apply_batch_on(&mut conn, &batch).await?);
        }
        Ok(processed)
    }

    /// Projects until `shutdown` turns true; stands by while another process projects;
    /// rides out NATS and PostgreSQL outages with backoff.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        while !*shutdown.borrow() {
            let result = self.lead(&mut shutdown).await;
            match result {
                Ok(Lead::Stopped) => break,
                Ok(Lead::Taken) => {
                    self.set_state(ConsumerState::StandingBy);
                    failures = 0;
                    pause(STANDBY_POLL_INTERVAL, &mut shutdown).await;
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(%error, "reporting projection interrupted; retrying");
                    }
                    self.set_state(ConsumerState::Interrupted(error.to_string()));
                    failures = failures.saturating_add(1);
                    let delay = Duration::from_millis(200)
                        .saturating_mul(1 << failures.min(6))
                        .min(CONSUMER_BACKOFF_MAX);
                    pause(delay, &mut shutdown).await;
                }
            }
        }
        self.set_state(ConsumerState::Stopped);
    }

    /// Where to resume: after the committed delivered sequence, unless the stream was
    /// recreated since (its last sequence is below it), in which case from its start.
    async fn resume_point(
        &self,
        stream: &JetStream,
        conn: &mut PgConnection,
    ) -> Result<Checkpoint, ConsumerError> {
        let checkpoint = self.projector.checkpoint(conn).await?;
        let info = stream
            .get_info()
            .await
            .map_err(|e| ConsumerError::Nats(e.to_string()))?;
        if (info.state.last_sequence as i64) < checkpoint.delivered_sequence {
            tracing::warn!(
                stream = %self.settings.stream,
                delivered = checkpoint.delivered_sequence,
                last = info.state.last_sequence,
                "the stream holds fewer messages than the projection has processed: it was recreated; \
                 projecting it again from its start (events already applied are skipped)"
            );
            self.projector.reset_sequences(conn).await?;
            return Ok(Checkpoint::default());
        }
        Ok(checkpoint)
    }

    async fn lead(&self, shutdown: &mut watch::Receiver<bool>) -> Result<Lead, ConsumerError> {
        let mut conn = PgConnection::connect_with(&self.projector.pool().connect_options()).await?;
        // A batch blocked on a lock ends instead of holding the projection lock for ever, even
        // when the process that sent it is gone (its session would otherwise wait on).
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "set statement_timeout = {}",
            LEADER_STATEMENT_TIMEOUT.as_millis()
        )))
        .execute(&mut conn)
        .await?;
        let locked: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
            .bind(PROJECTION_LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if !locked {
            let _ = conn.close().await;
            return Ok(Lead::Taken);
        }
        let stream = self.stream().await?;
        let checkpoint = self.resume_point(&stream, &mut conn).await?;
        let retried = self.projector.retry_parked(&mut conn).await?;
        if retried > 0 {
            tracing::info!(retried, "applied parked events this build can read");
        }
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                description: Some("Folio reporting projection".into()),
                filter_subject: subjects::all_events(&self.settings.subject_prefix),
                deliver_policy: start_after(checkpoint),
                ..Default::default()
            })
            .await
            .map_err(|e| ConsumerError::Nats(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| ConsumerError::Nats(e.to_string()))?;
        self.set_state(ConsumerState::Leading);
        tracing::info!(
            stream = %self.settings.stream,
            from_sequence = checkpoint.delivered_sequence + 1,
            "reporting projection is applying the stream"
        );

        // The reader pulls and decodes the next batch while the writer applies the last.
        let (batches, mut ready) =
            mpsc::channel::<Result<Vec<Delivery>, String>>(PIPELINE_BATCHES_MAX);
        let reader = tokio::spawn(async move {
            let mut chunks = messages.ready_chunks(FETCH_BATCH_MAX);
            while let Some(chunk) = chunks.next().await {
                let mut received = Vec::with_capacity(chunk.len());
                for message in chunk {
                    match message {
                        Ok(message) => received.push(message),
                        Err(error) => {
                            let _ = batches.send(Err(error.to_string())).await;
                            return;
                        }
                    }
                }
                if batches.send(Ok(decode(received))).await.is_err() {
                    return;
                }
            }
            let _ = batches.send(Err("the message stream ended".into())).await;
        });
        let outcome = loop {
            tokio::select! {
                batch = ready.recv() => match batch {
                    Some(Ok(batch)) if batch.is_empty() => {}
                    Some(Ok(batch)) => {
                        if let Err(error) = self.projector.apply_batch_on(&mut conn, &batch).await {
                            break Err(error.into());
                        }
                    }
                    Some(Err(error)) => break Err(ConsumerError::Nats(error)),
                    None => break Err(ConsumerError::Nats("the reader stopped".into())),
                },
                _ = shutdown.changed() => break Ok(Lead::Stopped),
            }
        };
        reader.abort();
        let _ = conn.close().await;
        outcome
    }
}

enum Lead {
    Stopped,
    Taken,
}

/// The deliver policy that starts right after `checkpoint`.
fn start_after(checkpoint: Checkpoint) -> DeliverPolicy {
    DeliverPolicy::ByStartSequence {
        start_sequence: (checkpoint.delivered_sequence + 1).max(1) as u64,
    }
}

/// Messages as deliveries; one that is not a recorded event at all is logged and skipped.
fn decode(messages: Vec<jetstream::Message>) -> Vec<Delivery> {
    let mut deliveries = Vec::with_capacity(messages.len());
    for message in messages {
        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        match serde_json::from_slice::<RecordedEvent>(&message.payload) {
            Ok(event) => deliveries.push(Delivery {
                stream_sequence: sequence,
                event,
            }),
            Err(error) => {
                metrics::counter!("folio_projection_unreadable_messages_total").increment(1);
                tracing::error!(%error, sequence, subject = %message.subject, "a message that is not a ledger event; skipping it");
            }
        }
    }
    deliveries
}

/// Sleeps for `duration` unless shutdown comes first.
async fn pause(duration: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = shutdown.changed() => {}
    }
}

/// Whether `error` says the stream does not exist.
fn stream_missing(error: &async_nats::jetstream::context::GetStreamError) -> bool {
    use async_nats::jetstream::{ErrorCode, context::GetStreamErrorKind};
    matches!(error.kind(), GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}
