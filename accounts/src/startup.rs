//! Assembling the accounts service: its state, its router and its readiness checks.

use std::sync::Arc;

use axum::Router;
use ed25519_dalek::SigningKey;
use platform::{
    TokenKeys,
    access_log::AccessLog,
    http::{
        Check, Readiness, check_nats, check_postgres, publication_check, service_routes,
        with_common_layers,
    },
};
use sqlx::PgPool;

use crate::{
    commands::AccountsService,
    graphql::{self, AccountsSchema, IntegrityData, PeriodData},
    relay::SharedRelayStatus,
    store::EventStore,
    writer::WriterOptions,
};

/// Everything the accounts service's handlers need.
#[derive(Clone, Debug)]
pub struct AccountsState {
    pub service: AccountsService,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub integrity: IntegrityData,
    /// The event store's closes and the key their reports are signed with.
    pub periods: PeriodData,
    /// What this process's relay last announced (set once it leads).
    pub relay_status: SharedRelayStatus,
    /// Where reads of account data and refused attempts are recorded (shared with
    /// reporting in `folio up`).
    pub access_log: AccessLog,
}

/// Tunables of the accounts service.
#[derive(Clone, Copy, Debug)]
pub struct AccountsOptions {
    /// Attempts of a command whose streams keep changing before CONCURRENCY_CONFLICT.
    pub append_retries_max: u32,
    /// How long the oldest open transaction may hold publication back before the relay
    /// names it (`FOLIO_RELAY_HELD_WARN_SECS`).
    pub relay_held_warn: std::time::Duration,
    /// How many days before its booking instant a movement's value date may lie
    /// (`FOLIO_BACKDATE_DAYS_MAX`, 0 to [`BACKDATE_DAYS_MAX_LIMIT`]).
    pub backdate_days_max: i64,
    /// The pause between rounds of the hold-expiry sweep (`FOLIO_HOLD_SWEEP_SECS`).
    pub hold_sweep_interval: std::time::Duration,
    /// How many days a requested adjustment waits for a second person's decision before it
    /// expires (`FOLIO_ADJUSTMENT_EXPIRY_DAYS`, 1 to [`ADJUSTMENT_EXPIRY_DAYS_LIMIT`]).
    pub adjustment_expiry_days: i64,
}

/// The longest an adjustment may wait for its checker: a year.
pub const ADJUSTMENT_EXPIRY_DAYS_LIMIT: i64 = 366;

/// The largest backdating window accepted: ten years.
pub const BACKDATE_DAYS_MAX_LIMIT: i64 = 3_660;

impl AccountsOptions {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            append_retries_max: platform::config::env_parse(
                "FOLIO_APPEND_RETRIES_MAX",
                crate::commands::APPEND_RETRIES_MAX,
            )?,
            relay_held_warn: std::time::Duration::from_secs(platform::config::env_parse(
                "FOLIO_RELAY_HELD_WARN_SECS",
                crate::relay::RELAY_HELD_WARN_DEFAULT.as_secs(),
            )?),
            backdate_days_max: backdate_days(platform::config::env_parse(
                "FOLIO_BACKDATE_DAYS_MAX",
                crate::writer::BACKDATE_DAYS_MAX_DEFAULT,
            )?)?,
            hold_sweep_interval: std::time::Duration::from_secs(
                platform::config::env_parse(
                    "FOLIO_HOLD_SWEEP_SECS",
                    crate::sweep::HOLD_SWEEP_INTERVAL_DEFAULT.as_secs(),
                )?
                .max(1),
            ),
            adjustment_expiry_days: adjustment_expiry_days(platform::config::env_parse(
                "FOLIO_ADJUSTMENT_EXPIRY_DAYS",
                crate::writer::ADJUSTMENT_EXPIRY_DAYS_DEFAULT,
            )?)?,
        })
    }
}

fn adjustment_expiry_days(days: i64) -> anyhow::Result<i64> {
    if !(1..=ADJUSTMENT_EXPIRY_DAYS_LIMIT).contains(&days) {
        anyhow::bail!(
            "FOLIO_ADJUSTMENT_EXPIRY_DAYS={days} must be 1 to {ADJUSTMENT_EXPIRY_DAYS_LIMIT}"
        );
    }
    Ok(days)
}

fn backdate_days(days: i64) -> anyhow::Result<i64> {
    if !(0..=BACKDATE_DAYS_MAX_LIMIT).contains(&days) {
        anyhow::bail!("FOLIO_BACKDATE_DAYS_MAX={days} must be 0 to {BACKDATE_DAYS_MAX_LIMIT}");
    }
    Ok(days)
}

impl AccountsOptions {
    /// The backdating window as a duration.
    pub fn backdate_max(&self) -> chrono::Duration {
        chrono::Duration::days(self.backdate_days_max)
    }

    /// The group-commit writer's options these give.
    pub fn writer(&self) -> WriterOptions {
        WriterOptions {
            append_retries_max: self.append_retries_max.max(1),
            backdate_max: self.backdate_max(),
            adjustment_expiry: chrono::Duration::days(self.adjustment_expiry_days),
            ..WriterOptions::default()
        }
    }
}

impl Default for AccountsOptions {
    fn default() -> Self {
        Self {
            append_retries_max: crate::commands::APPEND_RETRIES_MAX,
            relay_held_warn: crate::relay::RELAY_HELD_WARN_DEFAULT,
            backdate_days_max: crate::writer::BACKDATE_DAYS_MAX_DEFAULT,
            hold_sweep_interval: crate::sweep::HOLD_SWEEP_INTERVAL_DEFAULT,
            adjustment_expiry_days: crate::writer::ADJUSTMENT_EXPIRY_DAYS_DEFAULT,
        }
    }
}

impl AccountsState {
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        options: AccountsOptions,
        signing_key: SigningKey,
        access_log: AccessLog,
    ) -> Self {
        let public_key = signing_key.verifying_key();
        Self {
            service: AccountsService::with_options(EventStore::new(pool.clone()), options.writer()),
            integrity: IntegrityData {
                pool: pool.clone(),
                public_key,
                backdate_max: options.backdate_max(),
            },
            periods: PeriodData {
                pool: pool.clone(),
                signing_key,
            },
            pool,
            nats,
            relay_status: SharedRelayStatus::default(),
            access_log,
        }
    }

    pub fn schema(&self) -> AccountsSchema {
        graphql::schema(
            self.service.clone(),
            self.integrity.clone(),
            self.periods.clone(),
            self.access_log.clone(),
        )
    }

    /// PostgreSQL must answer; NATS being down is reported but commands still work; a
    /// transaction holding publication back is named.
    pub async fn checks(&self) -> Vec<Check> {
        let mut checks = vec![check_postgres(&self.pool).await, check_nats(&self.nats)];
        let status = self
            .relay_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        checks.extend(publication_check(status.as_ref()));
        checks
    }
}

/// The accounts service's router, as `folio accounts` serves it.
pub fn app(state: AccountsState, keys: Arc<TokenKeys>) -> Router {
    let schema = state.schema();
    let reports = extra_routes(&state);
    let access_log = state.access_log.clone();
    let readiness: Readiness = Arc::new(move || {
        let state = state.clone();
        Box::pin(async move { state.checks().await })
    });
    let sdl = schema.sdl();
    with_common_layers(
        service_routes(schema, &sdl, readiness).merge(reports),
        keys,
        access_log,
    )
}

/// The accounts service's routes besides GraphQL and health: the signed period report.
pub fn extra_routes(state: &AccountsState) -> Router {
    crate::reports::routes(state.periods.clone())
}
