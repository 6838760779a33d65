//! Test support shared by every crate's tests: a fresh PostgreSQL database and fresh
//! JetStream names per test, so tests run in parallel without seeing each other.
//!
//! Names carry their creation time; leftovers of earlier runs older than
//! [`LEFTOVER_AGE`] are dropped the first time a process asks for a new one.
//! A missing PostgreSQL or NATS fails the test with a message saying how to start it.

use std::{
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgConnectOptions};
use tokio::sync::OnceCell;

use crate::config::{AuthSettings, DatabaseSettings, NatsSettings, env_or};

/// Test databases and streams older than this are leftovers of earlier runs (a whole run takes
/// minutes; one leaves about 1.5 GB of databases behind).
pub const LEFTOVER_AGE: Duration = Duration::from_secs(30 * 60);
pub const TEST_DATABASE_PREFIX: &str = "folio_test_";
pub const TEST_STREAM_PREFIX: &str = "FOLIO_TEST_";
/// The secret test tokens are signed with.
pub const TEST_JWT_SECRET: &str = "folio-test-secret-0123456789abcdef";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unique_suffix() -> String {
    format!("{}_{}", now_secs(), uuid::Uuid::new_v4().simple())
}

/// Where the test server is: `DATABASE_URL`'s server, default the local one.
fn server_url() -> String {
    env_or("DATABASE_URL", crate::config::DEFAULT_DATABASE_URL)
}

/// A new, empty database on the test server.
pub async fn fresh_database() -> DatabaseSettings {
    let base = PgConnectOptions::from_str(&server_url()).expect("DATABASE_URL is a PostgreSQL URL");
    let mut admin = PgConnection::connect_with(&base.clone().database("postgres"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {}:{} ({e}); start it with scripts/services",
                base.get_host(),
                base.get_port()
            )
        });
    static SWEPT: OnceCell<()> = OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            drop_leftover_databases(&mut admin).await;
        })
        .await;
    let name = format!("{TEST_DATABASE_PREFIX}{}", unique_suffix());
    admin
        .execute(sqlx::AssertSqlSafe(format!("create database \"{name}\"")))
        .await
        .expect("create test database");
    let url = format!(
        "postgres://{}@{}:{}/{name}",
        base.get_username(),
        base.get_host(),
        base.get_port()
    );
    DatabaseSettings {
        url: SecretString::from(url),
        pool_size_max: 20,
    }
}

async fn drop_leftover_databases(admin: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where datname like 'folio\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    let cutoff = now_secs().saturating_sub(LEFTOVER_AGE.as_secs());
    for name in names {
        let created = name
            .trim_start_matches(TEST_DATABASE_PREFIX)
            .split('_')
            .next()
            .and_then(|ts| ts.parse::<u64>().ok());
        if created.is_some_and(|ts| ts < cutoff) {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "drop database if exists \"{name}\" with (force)"
                )))
                .await;
        }
    }
}

/// A pool on a new database with each migrator applied in its schema.
pub async fn fresh_pool(
    migrations: Vec<(sqlx::migrate::Migrator, &'static str)>,
) -> (PgPool, DatabaseSettings) {
    let settings = fresh_database().await;
    let pool = PgPool::connect(settings.url.expose_secret())
        .await
        .expect("connect to the test database");
    for (migrator, schema) in migrations {
        crate::db::migrate(&pool, migrator, schema)
            .await
            .expect("apply migrations to the test database");
    }
    (pool, settings)
}

/// A JetStream stream name and subject prefix nobody else uses, on the test NATS server.
pub async fn fresh_nats() -> NatsSettings {
    let suffix = unique_suffix();
    let settings = NatsSettings {
        url: env_or("NATS_URL", crate::config::DEFAULT_NATS_URL),
        stream: format!("{TEST_STREAM_PREFIX}{suffix}"),
        subject_prefix: format!("t_{suffix}"),
    };
    static SWEPT: OnceCell<()> = OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            drop_leftover_streams(&settings.url).await;
        })
        .await;
    settings
}

async fn drop_leftover_streams(url: &str) {
    use futures::StreamExt;
    let client = match async_nats::connect(url).await {
        Ok(client) => client,
        Err(e) => panic!("NATS is not reachable at {url} ({e}); start it with scripts/services"),
    };
    let js = async_nats::jetstream::new(client);
    let cutoff = now_secs().saturating_sub(LEFTOVER_AGE.as_secs());
    let mut names = js.stream_names();
    let mut stale = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        let created = name
            .strip_prefix(TEST_STREAM_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|ts| ts.parse::<u64>().ok());
        if created.is_some_and(|ts| ts < cutoff) {
            stale.push(name);
        }
    }
    for name in stale {
        let _ = js.delete_stream(&name).await;
    }
}

pub fn auth() -> AuthSettings {
    AuthSettings {
        jwt_secret: SecretString::from(TEST_JWT_SECRET),
        is_development_secret: false,
        token_ttl_max: crate::auth::TOKEN_TTL_MAX_DEFAULT,
    }
}
