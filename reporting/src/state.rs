//! Everything the reporting service's handlers need.

use std::time::Duration;

use platform::{
    ApiError,
    config::{NatsSettings, env_parse},
    http::{Check, READINESS_TIMEOUT, check_nats, check_postgres},
};
use sqlx::PgPool;

use crate::{
    consumer::ProjectionConsumer,
    projection::Projector,
    queries::{self, Position},
};

/// The longest `atLeast` waits for the projection before answering STALE_READ.
pub const AT_LEAST_WAIT_DEFAULT: Duration = Duration::from_secs(5);
/// How long JetStream waits for an acknowledgement before delivering a message again.
pub const ACK_WAIT_DEFAULT: Duration = Duration::from_secs(30);

/// Tunables of the reporting service.
#[derive(Clone, Copy, Debug)]
pub struct ReportingOptions {
    pub at_least_wait: Duration,
    pub ack_wait: Duration,
}

impl ReportingOptions {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            at_least_wait: Duration::from_millis(env_parse(
                "FOLIO_AT_LEAST_WAIT_MS",
                AT_LEAST_WAIT_DEFAULT.as_millis() as u64,
            )?),
            ack_wait: Duration::from_millis(env_parse(
                "FOLIO_ACK_WAIT_MS",
                ACK_WAIT_DEFAULT.as_millis() as u64,
            )?),
        })
    }
}

#[derive(Clone, Debug)]
pub struct ReportingState {
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub settings: NatsSettings,
    pub options: ReportingOptions,
    pub consumer: ProjectionConsumer,
}

impl ReportingState {
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        settings: NatsSettings,
        options: ReportingOptions,
    ) -> Self {
        let projector = Projector::new(pool.clone(), settings.stream.clone());
        let consumer =
            ProjectionConsumer::new(nats.clone(), settings.clone(), projector, options.ack_wait);
        Self {
            pool,
            nats,
            settings,
            options,
            consumer,
        }
    }
}

impl ReportingState {
    /// PostgreSQL, NATS, and the projection's consumer (with its lag).
    pub async fn checks(&self) -> Vec<Check> {
        let lag = tokio::time::timeout(READINESS_TIMEOUT, self.consumer.lag_events()).await;
        let projection = match lag.ok().flatten() {
            Some(lag) => Check {
                name: "projection",
                ok: true,
                detail: format!("consumer attached, {lag} events behind"),
            },
            None => Check::down(
                "projection",
                "the JetStream consumer did not answer within 2s",
            ),
        };
        vec![
            check_postgres(&self.pool).await,
            check_nats(&self.nats),
            projection,
        ]
    }
}

impl ReportingState {
    /// Waits until the projection has applied `at_least`, if given, else answers STALE_READ.
    pub async fn consistent(&self, at_least: Option<Position>) -> Result<(), ApiError> {
        if let Some(position) = at_least {
            queries::wait_for_position(
                &self.pool,
                &self.settings.stream,
                position,
                self.options.at_least_wait,
            )
            .await?;
        }
        Ok(())
    }
}
