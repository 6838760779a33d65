//! Everything the reporting service's handlers need.

use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::{
    ApiError,
    access_log::AccessLog,
    config::{NatsSettings, env_parse},
    http::{Check, READINESS_TIMEOUT, check_nats, check_postgres, publication_check},
};
use sqlx::PgPool;

use crate::{
    consumer::{ConsumerState, Lag, ProjectionConsumer},
    projection::Projector,
    queries::{self, Position, QueryError},
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
    /// Where every read records its access (shared commits, see [`platform::access_log`]).
    pub access_log: AccessLog,
    /// The projection's lag, measured every [`LAG_WATCH_INTERVAL`].
    pub lag: LagWatch,
}

/// How often the projection's lag is measured (for its gauges and readiness).
pub const LAG_WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The projection's lag as last measured, kept by a task of its own: readiness reads it
/// instead of asking NATS on every probe, and it feeds `folio_projection_lag_events` and
/// `folio_projection_lag_seconds`.
#[derive(Clone, Debug, Default)]
pub struct LagWatch {
    latest: std::sync::Arc<std::sync::Mutex<Option<(Lag, std::time::Instant)>>>,
}

impl LagWatch {
    fn spawn(consumer: ProjectionConsumer) -> Self {
        let watch = Self::default();
        let latest = watch.latest.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(LAG_WATCH_INTERVAL);
            loop {
                ticks.tick().await;
                let measured = tokio::time::timeout(READINESS_TIMEOUT, consumer.lag())
                    .await
                    .ok()
                    .and_then(Result::ok);
                if let Some(lag) = measured {
                    metrics::gauge!("folio_projection_lag_events").set(lag.events as f64);
                    metrics::gauge!("folio_projection_lag_seconds").set(lag.seconds);
                    *latest.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((lag, std::time::Instant::now()));
                }
            }
        });
        watch
    }

    /// The lag measured within the last few intervals, if any.
    pub fn current(&self) -> Option<Lag> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(_, at)| at.elapsed() <= LAG_WATCH_INTERVAL * 3)
            .map(|(lag, _)| *lag)
    }
}

impl ReportingState {
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        settings: NatsSettings,
        options: ReportingOptions,
        access_log: AccessLog,
    ) -> Self {
        let projector = Projector::new(pool.clone(), settings.stream.clone());
        let consumer = ProjectionConsumer::new(nats.clone(), settings.clone(), projector);
        let relay = RelayWatch::spawn(nats.clone(), &settings.subject_prefix);
        let lag = LagWatch::spawn(consumer.clone());
        Self {
            lag,
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
            ConsumerState::Leading | ConsumerState::StandingBy => self.lag.current(),
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
    /// The instant before which every booked event is applied here (see
    /// [`RelayWatch::booked_through`]); `None` until the relay has said.
    pub async fn booked_through(&self) -> Result<Option<DateTime<Utc>>, QueryError> {
        let watermark: Option<i64> = sqlx::query_scalar(
            "select watermark_sequence from reporting.projection_checkpoints where stream = $1",
        )
        .bind(&self.settings.stream)
        .fetch_optional(&self.pool)
        .await?;
        Ok(watermark.and_then(|w| self.relay.booked_through(w.max(0) as u64)))
    }

    /// The booking instant a two-axis query reads at (`asKnownAt`, ../shared/API.md "Value
    /// dates"): now when not given. A given instant must not be in the future, and is
    /// waited for (at most the `atLeast` wait) until every event booked at or before it is
    /// applied, so the answer never changes afterwards; STALE_READ if it is not.
    pub async fn known_at(
        &self,
        as_known_at: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, QueryError> {
        let now = Utc::now();
        let Some(wanted) = as_known_at else {
            return Ok(now);
        };
        if wanted > now {
            return Err(QueryError::invalid(
                "asKnownAt",
                format!(
                    "{} is in the future (it is {} now); omit asKnownAt to read as known now",
                    wanted.to_rfc3339(),
                    now.to_rfc3339()
                ),
            ));
        }
        let started = tokio::time::Instant::now();
        let deadline = started + self.options.at_least_wait;
        loop {
            let through = self.booked_through().await?;
            if through.is_some_and(|t| t >= wanted) {
                return Ok(wanted);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(QueryError::NotYetKnown {
                    as_known_at: wanted,
                    booked_through: through,
                    waited_ms: started.elapsed().as_millis(),
                });
            }
            tokio::time::sleep(queries::POSITION_POLL_INTERVAL).await;
        }
    }

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
