//! Starting the platform: connect, migrate, assemble the services a process runs, serve.
//!
//! `folio up` runs everything in one process behind one merged GraphQL schema;
//! `folio accounts` and `folio reporting` run one service each, as docker-compose does.

use std::{net::SocketAddr, sync::Arc};

use accounts::{
    graphql::{AccountsMutation, AccountsQuery},
    startup::AccountsState,
};
use anyhow::Context as _;
use async_graphql::{EmptySubscription, MergedObject, Schema};
use axum::Router;
use platform::{
    TokenKeys,
    http::{Readiness, service_routes, with_common_layers},
};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::watch};

use crate::configuration::Settings;

/// Which services a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Accounts and reporting with one merged schema (`folio up`).
    All,
    /// The accounts service (`folio accounts`).
    Accounts,
}

/// Every query of the platform, as `folio up` serves them.
#[derive(MergedObject, Default)]
pub struct Query(AccountsQuery);

pub type PlatformSchema = Schema<Query, AccountsMutation, EmptySubscription>;

/// The merged schema; also what `schema.graphql` is exported from.
pub fn platform_schema(accounts: &AccountsState) -> PlatformSchema {
    platform::graphql::with_limits(Schema::build(
        Query::default(),
        AccountsMutation,
        EmptySubscription,
    ))
    .data(accounts.service.clone())
    .finish()
}

/// The merged schema without any state, for exporting its SDL.
pub fn schema_sdl() -> String {
    Schema::build(Query::default(), AccountsMutation, EmptySubscription)
        .finish()
        .sdl()
}

/// Connects to PostgreSQL (creating the database if needed) and applies every migration.
pub async fn connect_and_migrate(settings: &Settings) -> anyhow::Result<PgPool> {
    let pool = platform::db::connect(&settings.database).await?;
    platform::db::migrate(&pool, accounts::migrator(), accounts::SCHEMA).await?;
    Ok(pool)
}

/// A built process: listening, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    shutdown: watch::Sender<bool>,
    pub pool: PgPool,
}

impl Application {
    pub async fn build(settings: &Settings, mode: Mode) -> anyhow::Result<Self> {
        let pool = connect_and_migrate(settings).await?;
        let nats = platform::messaging::connect(&settings.nats).await?;
        if !platform::messaging::wait_connected(&nats, platform::messaging::CONNECT_TIMEOUT).await {
            tracing::warn!(
                url = %settings.nats.url,
                "NATS is not reachable: commands are accepted and will be published when it is back; start it with scripts/services"
            );
        }
        let keys = Arc::new(TokenKeys::new(&settings.auth.jwt_secret));
        let accounts = AccountsState::new(pool.clone(), nats, settings.accounts);
        let router = match mode {
            Mode::Accounts => accounts::startup::app(accounts, keys),
            Mode::All => {
                let schema = platform_schema(&accounts);
                let readiness: Readiness = Arc::new(move || {
                    let accounts = accounts.clone();
                    Box::pin(async move { accounts.checks().await })
                });
                with_common_layers(service_routes(schema, readiness), keys)
            }
        };
        let listener = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| {
                format!("cannot listen on {} (FOLIO_HTTP_ADDR)", settings.http_addr)
            })?;
        let (shutdown, _) = watch::channel(false);
        Ok(Self {
            listener,
            router,
            shutdown,
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

    /// Serves until the shutdown handle fires.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let mut stop = self.shutdown.subscribe();
        platform::http::serve(self.listener, self.router, async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await
    }
}
