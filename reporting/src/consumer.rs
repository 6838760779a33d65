//! The JetStream consumer that feeds the projection: a durable pull consumer with explicit
//! acknowledgements. Each fetched batch is applied (read models and checkpoint) in one
//! PostgreSQL transaction, and only then acknowledged; an event that would leave a gap is
//! not acknowledged but sent back for later, so it is applied once its predecessor is.

use std::time::Duration;

use async_nats::jetstream::{
    self, AckKind,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
};
use futures::StreamExt;
use ledger::{RecordedEvent, subjects};
use platform::config::NatsSettings;
use tokio::sync::watch;

use crate::projection::{Delivery, Disposition, ProjectionError, Projector};

/// The durable consumer's name (scoped to the deployment's stream).
pub const CONSUMER_NAME: &str = "reporting";
/// Messages fetched and applied per transaction.
pub const FETCH_BATCH_MAX: usize = 256;
/// When an event waits for its predecessor, how long before it is delivered again.
pub const GAP_REDELIVERY_DELAY: Duration = Duration::from_secs(1);
/// The longest pause between attempts while NATS or PostgreSQL is down.
pub const CONSUMER_BACKOFF_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("JetStream: {0}")]
    Nats(String),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

/// What one step of the consumer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Processed {
    pub applied: usize,
    pub already_applied: usize,
    pub waiting: usize,
    pub refused: usize,
}

#[derive(Clone, Debug)]
pub struct ProjectionConsumer {
    js: jetstream::Context,
    settings: NatsSettings,
    projector: Projector,
    ack_wait: Duration,
}

impl ProjectionConsumer {
    pub fn new(
        nats: async_nats::Client,
        settings: NatsSettings,
        projector: Projector,
        ack_wait: Duration,
    ) -> Self {
        Self {
            js: jetstream::new(nats),
            settings,
            projector,
            ack_wait,
        }
    }

    /// The durable consumer, created (with the stream) if missing.
    pub async fn consumer(&self) -> Result<PullConsumer, ConsumerError> {
        let stream = platform::messaging::ensure_stream(&self.js, &self.settings)
            .await
            .map_err(|e| ConsumerError::Nats(e.to_string()))?;
        stream
            .get_or_create_consumer(
                CONSUMER_NAME,
                pull::Config {
                    durable_name: Some(CONSUMER_NAME.to_string()),
                    description: Some("Folio reporting projection".into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    deliver_policy: DeliverPolicy::All,
                    filter_subject: subjects::all_events(&self.settings.subject_prefix),
                    max_deliver: -1,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ConsumerError::Nats(e.to_string()))
    }

    /// Events delivered to the consumer but not yet acknowledged, plus those not yet delivered.
    pub async fn lag_events(&self) -> Option<i64> {
        let consumer = self.consumer().await.ok()?;
        let info = consumer.get_info().await.ok()?;
        Some(info.num_pending as i64 + info.num_ack_pending as i64)
    }

    /// Fetches what is available now (without waiting) and processes it.
    pub async fn try_process_next(&self) -> Result<Processed, ConsumerError> {
        let consumer = self.consumer().await?;
        let messages = consumer
            .fetch()
            .max_messages(FETCH_BATCH_MAX)
            .messages()
            .await
            .map_err(|e| ConsumerError::Nats(e.to_string()))?;
        self.process(messages).await
    }

    /// Consumes until `shutdown` turns true, riding out NATS and PostgreSQL outages.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        while !*shutdown.borrow() {
            let result: Result<(), ConsumerError> = async {
                let consumer = self.consumer().await?;
                tracing::info!(stream = %self.settings.stream, "reporting consumer attached");
                // A continuous pull: each step takes whatever has arrived, up to a batch, so a
                // lone event is applied at once and a burst is applied in large transactions.
                let mut batches = consumer
                    .messages()
                    .await
                    .map_err(|e| ConsumerError::Nats(e.to_string()))?
                    .ready_chunks(FETCH_BATCH_MAX);
                loop {
                    if *shutdown.borrow() {
                        return Ok(());
                    }
                    tokio::select! {
                        batch = batches.next() => match batch {
                            Some(batch) => {
                                self.process(futures::stream::iter(batch)).await?;
                                failures = 0;
                            }
                            None => return Err(ConsumerError::Nats("the message stream ended".into())),
                        },
                        _ = shutdown.changed() => return Ok(()),
                    }
                }
            }
            .await;
            match result {
                Ok(()) => return,
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(%error, "reporting consumer interrupted; retrying");
                    }
                    failures = failures.saturating_add(1);
                    let pause = Duration::from_millis(200)
                        .saturating_mul(1 << failures.min(6))
                        .min(CONSUMER_BACKOFF_MAX);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    async fn process<S, E>(&self, mut messages: S) -> Result<Processed, ConsumerError>
    where
        S: futures::Stream<Item = Result<jetstream::Message, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut received = Vec::new();
        while let Some(message) = messages.next().await {
            match message {
                Ok(message) => received.push(message),
                Err(error) => {
                    tracing::debug!(%error, "pull ended");
                    break;
                }
            }
        }
        if received.is_empty() {
            return Ok(Processed::default());
        }
        let mut deliveries = Vec::with_capacity(received.len());
        let mut accepted = Vec::with_capacity(received.len());
        for message in received {
            let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
            match serde_json::from_slice::<RecordedEvent>(&message.payload) {
                Ok(event) => {
                    deliveries.push(Delivery {
                        stream_sequence: sequence,
                        event,
                    });
                    accepted.push(message);
                }
                Err(error) => {
                    tracing::error!(%error, sequence, subject = %message.subject, "unreadable message; dropping it");
                    let _ = message.ack_with(AckKind::Term).await;
                }
            }
        }
        let dispositions = self.projector.apply_batch(&deliveries).await?;
        let mut processed = Processed::default();
        for (message, disposition) in accepted.iter().zip(&dispositions) {
            match disposition {
                Disposition::Applied => processed.applied += 1,
                Disposition::AlreadyApplied => processed.already_applied += 1,
                Disposition::Refused { .. } => processed.refused += 1,
                Disposition::Gap { .. } | Disposition::Unreadable { .. } => processed.waiting += 1,
            }
            let ack = if disposition.is_settled() {
                AckKind::Ack
            } else {
                AckKind::Nak(Some(GAP_REDELIVERY_DELAY))
            };
            if let Err(error) = message.ack_with(ack).await {
                // Not fatal: the message comes again and is skipped as already applied.
                tracing::warn!(%error, "acknowledgement failed");
            }
        }
        Ok(processed)
    }
}
