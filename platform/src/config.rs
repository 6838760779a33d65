//! Configuration values shared by the services, read from the environment with local defaults.
//!
//! Secrets are wrapped in [`SecretString`] so they never appear in logs or `Debug` output.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use secrecy::SecretString;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/folio";
pub const DEFAULT_NATS_URL: &str = "nats://localhost:4222";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
/// Used when `FOLIO_JWT_SECRET` is unset, with a warning; never acceptable in production.
pub const DEVELOPMENT_JWT_SECRET: &str = "folio-local-development-secret-change-me";
/// A secret shorter than this is refused: HS256 wants at least 256 bits of key.
pub const JWT_SECRET_LEN_MIN: usize = 32;

/// The value of an environment variable, or `None` when it is unset or empty.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub fn env_or(name: &str, default: &str) -> String {
    env_var(name).unwrap_or_else(|| default.to_string())
}

/// A numeric environment variable, or its default; a value that does not parse is an error naming it.
pub fn env_parse<T>(name: &str, default: T) -> anyhow::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match env_var(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .with_context(|| format!("{name}={raw:?} is not valid")),
    }
}

/// Where the PostgreSQL database is.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub url: SecretString,
    /// Connections in the pool.
    pub pool_size_max: u32,
}

impl DatabaseSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            url: SecretString::from(env_or("DATABASE_URL", DEFAULT_DATABASE_URL)),
            pool_size_max: env_parse("FOLIO_DB_POOL_SIZE_MAX", 16)?,
        })
    }
}

/// Where NATS is, and which JetStream stream and subject prefix this deployment uses.
#[derive(Clone, Debug)]
pub struct NatsSettings {
    pub url: String,
    pub stream: String,
    pub subject_prefix: String,
}

impl NatsSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        let settings = Self {
            url: env_or("NATS_URL", DEFAULT_NATS_URL),
            stream: env_or("FOLIO_NATS_STREAM", ledger::subjects::DEFAULT_STREAM),
            subject_prefix: env_or(
                "FOLIO_NATS_SUBJECT_PREFIX",
                ledger::subjects::DEFAULT_SUBJECT_PREFIX,
            ),
        };
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("FOLIO_NATS_STREAM", &self.stream),
            ("FOLIO_NATS_SUBJECT_PREFIX", &self.subject_prefix),
        ] {
            if !ledger::subjects::is_valid_name(value) {
                bail!(
                    "{name}={value:?} is not valid: use letters, digits, '-' and '_' (at most {} characters)",
                    ledger::subjects::NAME_LEN_MAX
                );
            }
        }
        Ok(())
    }
}

/// The most `FOLIO_TOKEN_TTL_MAX` may say: a year, in hours.
pub const TOKEN_TTL_MAX_HOURS_LIMIT: u64 = 366 * 24;

/// The HS256 secret bearer tokens are signed with, and how long a token may live.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub jwt_secret: SecretString,
    /// True when no secret was configured and the development secret is in use.
    pub is_development_secret: bool,
    /// The longest lifetime a token may have (`FOLIO_TOKEN_TTL_MAX`, in hours).
    pub token_ttl_max: std::time::Duration,
}

impl AuthSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        let hours: u64 = env_parse(
            "FOLIO_TOKEN_TTL_MAX",
            crate::auth::TOKEN_TTL_MAX_DEFAULT.as_secs() / 3600,
        )?;
        if !(1..=TOKEN_TTL_MAX_HOURS_LIMIT).contains(&hours) {
            bail!("FOLIO_TOKEN_TTL_MAX must be 1 to {TOKEN_TTL_MAX_HOURS_LIMIT} (hours)");
        }
        let token_ttl_max = std::time::Duration::from_secs(hours * 3600);
        match env_var("FOLIO_JWT_SECRET") {
            Some(secret) if secret.len() < JWT_SECRET_LEN_MIN => {
                bail!("FOLIO_JWT_SECRET is too short: use at least {JWT_SECRET_LEN_MIN} characters")
            }
            Some(secret) => Ok(Self {
                jwt_secret: SecretString::from(secret),
                is_development_secret: false,
                token_ttl_max,
            }),
            None => Ok(Self {
                jwt_secret: SecretString::from(DEVELOPMENT_JWT_SECRET),
                is_development_secret: true,
                token_ttl_max,
            }),
        }
    }

    /// The keys tokens are signed and checked with.
    pub fn token_keys(&self) -> crate::auth::TokenKeys {
        crate::auth::TokenKeys::with_ttl_max(&self.jwt_secret, self.token_ttl_max)
    }
}

/// Where the HTTP server listens.
pub fn http_addr_from_env() -> anyhow::Result<SocketAddr> {
    let raw = env_or("FOLIO_HTTP_ADDR", DEFAULT_HTTP_ADDR);
    raw.parse().with_context(|| {
        format!("FOLIO_HTTP_ADDR={raw:?} is not a socket address such as 127.0.0.1:8080")
    })
}
