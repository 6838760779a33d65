//! The platform's configuration, read from the environment with local defaults (DESIGN.md, "Running").

use std::net::SocketAddr;

use accounts::{integrity::IntegritySettings, startup::AccountsOptions};
use platform::config::{
    AuthSettings, DatabaseSettings, NatsSettings, env_parse, http_addr_from_env,
};
use reporting::state::ReportingOptions;

#[derive(Clone, Debug)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub http_addr: SocketAddr,
    pub accounts: AccountsOptions,
    pub reporting: ReportingOptions,
    pub integrity: IntegritySettings,
    /// Apply migrations at start (`FOLIO_MIGRATE`, default true); false when running as a
    /// role that may not change the schema, after `folio migrate` ran as its owner.
    pub migrate: bool,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            database: DatabaseSettings::from_env()?,
            nats: NatsSettings::from_env()?,
            auth: AuthSettings::from_env()?,
            http_addr: http_addr_from_env()?,
            accounts: AccountsOptions::from_env()?,
            reporting: ReportingOptions::from_env()?,
            integrity: IntegritySettings::from_env()?,
            migrate: env_parse("FOLIO_MIGRATE", true)?,
        })
    }
}
