//! PostgreSQL connections: create the database if it is missing, fail with one clear line if
//! the server cannot be reached, and apply a service's migrations in its own schema.

use std::{str::FromStr, time::Duration};

use secrecy::ExposeSecret;
use sqlx::{
    ConnectOptions, Connection, PgConnection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::DatabaseSettings;

/// How long to wait for a connection from the pool before answering UNAVAILABLE.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the server to accept a connection at start-up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error(
        "cannot reach PostgreSQL at {url}: {reason}. Start it with scripts/services, or point DATABASE_URL at a running server"
    )]
    Unreachable { url: String, reason: String },
    #[error("PostgreSQL at {url} refused to create database {database}: {reason}")]
    CreateDatabase {
        url: String,
        database: String,
        reason: String,
    },
    #[error("applying the {schema} migrations failed: {reason}")]
    Migrate { schema: String, reason: String },
}

/// True when `error` means the database could not be reached or refused connections (as
/// opposed to refusing the statement): the server is down, restarting, shutting down,
/// full, or the database is gone. Such errors answer UNAVAILABLE, never INTERNAL.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions (08...), operator intervention (57P..), too many
        // connections, and a database that does not exist.
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P") || code == "53300" || code == "3D000"
        }),
        _ => false,
    }
}

/// `postgres://user@host:port/db`, without any password.
pub fn display_url(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    )
}

pub fn connect_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, DbError> {
    PgConnectOptions::from_str(settings.url.expose_secret())
        .map(|o| o.application_name("folio"))
        .map_err(|e| DbError::BadUrl(e.to_string()))
}

/// A pool on the configured database, creating the database first if the server lacks it.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, DbError> {
    let options = connect_options(settings)?;
    ensure_database(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.pool_size_max)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options.clone());
    Ok(pool)
}

/// Creates the database named in `options` if the server does not have it yet.
pub async fn ensure_database(options: &PgConnectOptions) -> Result<(), DbError> {
    let url = display_url(options);
    match try_connect(options).await {
        Ok(conn) => {
            let _ = conn.close().await;
            return Ok(());
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {}
        Err(e) => {
            return Err(DbError::Unreachable {
                url,
                reason: e.to_string(),
            });
        }
    }
    let database = options.get_database().unwrap_or("folio").to_string();
    let maintenance = options.clone().database("postgres");
    let mut conn = try_connect(&maintenance)
        .await
        .map_err(|e| DbError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let statement = format!("CREATE DATABASE \"{}\"", database.replace('"', "\"\""));
    match sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(&mut conn)
        .await
    {
        Ok(_) => {
            tracing::info!(%database, "created database");
            Ok(())
        }
        // Someone else created it between our check and our create (two processes starting
        // together get either duplicate_database or a unique violation on pg_database).
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {
            Ok(())
        }
        Err(e) => Err(DbError::CreateDatabase {
            url,
            database,
            reason: e.to_string(),
        }),
    }
}

async fn try_connect(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

/// Applies `migrator` with its bookkeeping table inside `schema`, so each service owns its schema whole.
pub async fn migrate(
    pool: &PgPool,
    migrator: Migrator,
    schema: &'static str,
) -> Result<(), DbError> {
    let mut migrator = migrator;
    migrator.create_schema(schema);
    migrator.dangerous_set_table_name(format!("{schema}._sqlx_migrations"));
    migrator.run(pool).await.map_err(|e| DbError::Migrate {
        schema: schema.to_string(),
        reason: e.to_string(),
    })
}
