//! The platform's configuration, read from the environment with local defaults (DESIGN.md, "Running").

use std::net::SocketAddr;

use accounts::{integrity::IntegritySettings, startup::AccountsOptions};
use platform::config::{AuthSettings, DatabaseSettings, NatsSettings, http_addr_from_env};
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
        })
    }
}
