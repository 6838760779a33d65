//! Everything the reporting service's handlers need.

use std::time::Duration;

use platform::{
    ApiError,
    config::{NatsSettings, env_parse},
    http::{Check, READINESS_TIMEOUT, check_nats, check_postgres, publication_check},
};
use sqlx::PgPool;

use crate::{
    access_log::AccessLog,
    consumer::{ConsumerState, ProjectionConsumer},
    projection::Projector,
    queries::{self, Position},
    relay_watch::RelayWatch,
};

/// The longest `atLeast` waits for the projection before answering STALE_READ.
pub const AT_LEAST_WAIT_DEFAULT: Duration = Duration::from_secs(5);
/// How long messages may wait unapplied before readiness calls the projection stalled.
pub const PROJECTION_STALLED: Duration = Duration::from_secs(30);

/// Tunables of the reporting service.
#[derive(Clone, Copy, Debug)]
pub struct ReportingOptions {
    pub at_least_wait: Duration,
}

impl ReportingOptions {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            at_least_wait: Duration::from_millis(env_parse(
                "FOLIO_AT_LEAST_WAIT_MS",
                AT_LEAST_WAIT_DEFAULT.as_millis() as u64,
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
    pub relay: RelayWatch,
    /// Where every read records its access (shared commits, see [`crate::access_log`]).
    pub access_log: AccessLog,
}

impl ReportingState {
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        settings: NatsSettings,
        options: ReportingOptions,
    ) -> Self {
        let projector = Projector::new(pool.clone(), settings.stream.clone());
        let consumer = ProjectionConsumer::new(nats.clone(), settings.clone(), projector);
        let relay = RelayWatch::spawn(nats.clone(), &settings.subject_prefix);
        let access_log = AccessLog::spawn(pool.clone());
        Self {
            access_log,
            pool,
            nats,
            settings,
            options,
            consumer,
            relay,
        }
    }
}

impl ReportingState {
    /// PostgreSQL, NATS, the projection (running here or in another process) and
    /// publication (held back by a transaction left open, if the relay says so).
    pub async fn checks(&self) -> Vec<Check> {
        let (state, since) = self.consumer.state();
        let lag = match state {
            ConsumerState::Leading | ConsumerState::StandingBy => {
                tokio::time::timeout(READINESS_TIMEOUT, self.consumer.lag())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            _ => None,
        };
        let stalled = lag.filter(|l| l.events > 0 && l.seconds >= PROJECTION_STALLED.as_secs_f64());
        let projection = match (state, stalled) {
            (ConsumerState::Leading | ConsumerState::StandingBy, Some(lag)) => Check::down(
                "projection",
                format!(
                    "stalled: {} messages have waited {:.0}s without being applied (is the projection's \
                     database session blocked? see pg_stat_activity)",
                    lag.events, lag.seconds
                ),
            ),
            (ConsumerState::Leading, None) => Check::up("projection"),
            (ConsumerState::StandingBy, None) => Check {
                name: "projection",
                ok: true,
                detail: "another process projects this database; standing by".into(),
            },
            (ConsumerState::Starting, _) if since < READINESS_TIMEOUT => Check {
                name: "projection",
                ok: true,
                detail: "starting".into(),
            },
            (ConsumerState::Starting, _) => Check::down("projection", "not started yet"),
            (ConsumerState::Interrupted(reason), _) => Check::down(
                "projection",
                format!("interrupted for {}s: {reason}", since.as_secs()),
            ),
            (ConsumerState::Stopped, _) => Check::down("projection", "stopped"),
        };
        let mut checks = vec![
            check_postgres(&self.pool).await,
            check_nats(&self.nats),
            projection,
        ];
        if let Some(check) = publication_check(self.relay.current().as_ref()) {
            checks.push(check);
        }
        checks
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
