//! Starting the platform: connect, migrate, assemble the services a process runs, serve.
//!
//! `folio up` runs everything in one process behind one merged GraphQL schema;
//! `folio accounts` (mutations, `account(id)` and the relay) and `folio reporting`
//! (the projection and the reporting queries) run one service each, as docker-compose does.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use accounts::{
    graphql::{AccountsMutations, AccountsQuery, IntegrityQuery, PeriodQuery},
    relay::Relay,
    startup::AccountsState,
};
use anyhow::Context as _;
use async_graphql::{EmptySubscription, MergedObject, Schema};
use axum::Router;
use platform::access_log::AccessLog;
use platform::http::{Readiness, service_routes, with_common_layers};
use reporting::{graphql::ReportingQuery, state::ReportingState};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{configuration::Settings, console::Console};

/// How long background tasks get to finish after the server stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Which services a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Accounts, relay and reporting with one merged schema (`folio up`).
    All,
    /// The accounts service and the relay (`folio accounts`).
    Accounts,
    /// The reporting service and its consumer (`folio reporting`).
    Reporting,
}

impl Mode {
    fn runs_accounts(self) -> bool {
        matches!(self, Self::All | Self::Accounts)
    }

    fn runs_reporting(self) -> bool {
        matches!(self, Self::All | Self::Reporting)
    }
}

/// Every query of the platform, as `folio up` serves them.
#[derive(MergedObject, Default)]
pub struct Query(AccountsQuery, IntegrityQuery, PeriodQuery, ReportingQuery);

pub type PlatformSchema = Schema<Query, AccountsMutations, EmptySubscription>;

/// The merged schema of `folio up`.
pub fn platform_schema(accounts: &AccountsState, reporting: &ReportingState) -> PlatformSchema {
    platform::graphql::with_limits(Schema::build(
        Query::default(),
        AccountsMutations::default(),
        EmptySubscription,
    ))
    .data(accounts.service.clone())
    .data(accounts.integrity.clone())
    .data(accounts.periods.clone())
    .data(reporting.access_log.clone())
    .data(reporting.clone())
    .finish()
}

/// The merged schema without any state, for exporting its SDL (`folio schema`, `schema.graphql`).
pub fn schema_sdl() -> String {
    Schema::build(
        Query::default(),
        AccountsMutations::default(),
        EmptySubscription,
    )
    .finish()
    .sdl()
}

/// Connects to PostgreSQL (creating the database if needed) and applies every migration.
pub async fn connect_and_migrate(settings: &Settings) -> anyhow::Result<PgPool> {
    let pool = platform::db::connect(&settings.database).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Applies the migrations of both schemas.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, accounts::migrator(), accounts::SCHEMA).await?;
    platform::db::migrate(pool, reporting::migrator(), reporting::SCHEMA).await?;
    Ok(())
}

/// A built process: listening, with its background tasks running, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    pub pool: PgPool,
}

impl Application {
    pub async fn build(settings: &Settings, mode: Mode) -> anyhow::Result<Self> {
        // Install the metrics recorder before anything counts.
        platform::http::metrics_handle();
        let pool = platform::db::connect(&settings.database).await?;
        if settings.migrate {
            migrate(&pool).await?;
        }
        let nats = platform::messaging::connect(&settings.nats).await?;
        if !platform::messaging::wait_connected(&nats, platform::messaging::CONNECT_TIMEOUT).await {
            tracing::warn!(
                url = %settings.nats.url,
                "NATS is not reachable: commands are accepted and published when it is back; start it with scripts/services"
            );
        }
        let keys = Arc::new(settings.auth.token_keys());
        let access_log = AccessLog::spawn(pool.clone());
        let (shutdown, _) = watch::channel(false);
        let mut tasks = Vec::new();

        let accounts = mode.runs_accounts().then(|| {
            AccountsState::new(
                pool.clone(),
                nats.clone(),
                settings.accounts,
                settings.integrity.signing_key.clone(),
                access_log.clone(),
            )
        });
        if mode.runs_reporting() {
            use secrecy::ExposeSecret;
            reporting::queries::cursor::configure(
                settings.auth.jwt_secret.expose_secret().as_bytes(),
            );
        }
        let reporting = mode.runs_reporting().then(|| {
            ReportingState::new(
                pool.clone(),
                nats.clone(),
                settings.nats.clone(),
                settings.reporting,
                access_log.clone(),
            )
        });
        if let Some(accounts) = &accounts {
            let relay = Relay::new(
                pool.clone(),
                nats.clone(),
                settings.nats.clone(),
                settings.integrity.clone(),
            )
            .with_held_warn(settings.accounts.relay_held_warn)
            .with_status(accounts.relay_status.clone())
            .with_wake(accounts.service.commits());
            tasks.push(tokio::spawn(relay.run(shutdown.subscribe())));
            let sweep = accounts::sweep::HoldSweep::new(
                accounts.service.clone(),
                settings.accounts.hold_sweep_interval,
            );
            tasks.push(tokio::spawn(sweep.run(shutdown.subscribe())));
        }
        if let Some(reporting) = &reporting {
            let consumer = reporting.consumer.clone();
            tasks.push(tokio::spawn(consumer.run(shutdown.subscribe())));
        }

        let router = match (accounts, reporting) {
            (Some(accounts), None) => accounts::startup::app(accounts, keys),
            (None, Some(reporting)) => {
                let schema = reporting::graphql::schema(reporting.clone());
                let console = Console::new(schema.clone(), reporting.clone(), false);
                reporting::startup::app(reporting, schema, keys, crate::console::routes(console))
            }
            (Some(accounts), Some(reporting)) => {
                let schema = platform_schema(&accounts, &reporting);
                let account_routes = accounts::startup::extra_routes(&accounts);
                let checks = (accounts, reporting.clone());
                let readiness: Readiness = Arc::new(move || {
                    let (accounts, reporting) = checks.clone();
                    Box::pin(async move {
                        let mut all = accounts.checks().await;
                        all.extend(
                            reporting
                                .checks()
                                .await
                                .into_iter()
                                .filter(|c| c.name == "projection"),
                        );
                        all
                    })
                });
                let sdl = schema.sdl();
                let console = Console::new(schema.clone(), reporting.clone(), true);
                let routes = service_routes(schema, &sdl, readiness)
                    .merge(reporting::startup::extra_routes(reporting))
                    .merge(crate::console::routes(console))
                    .merge(account_routes);
                with_common_layers(routes, keys, access_log)
            }
            (None, None) => unreachable!("every mode runs a service"),
        };
        let listener = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| {
                format!("cannot listen on {} (FOLIO_HTTP_ADDR)", settings.http_addr)
            })?;
        Ok(Self {
            listener,
            router,
            shutdown,
            tasks,
            pool,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that stops the process when sent `true`.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Serves until the shutdown handle fires, then lets the background tasks finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let mut stop = self.shutdown.subscribe();
        let served = platform::http::serve(self.listener, self.router, async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await;
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                tracing::warn!("a background task did not stop in time");
            }
        }
        served
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_graphql_is_the_exported_schema() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == super::schema_sdl(),
            "schema.graphql is stale: run `cargo run -q -- schema > schema.graphql` and commit it"
        );
    }
}
