//! `folio demo`: seeds a fresh database with three months of believable history, so that
//! balances at month ends, statements, the audit trail and the console have something to
//! show on the first run. Fifty accounts in USD, EUR and GBP ([`cast`]) live through
//! [`story::STORY_DAYS`] days up to now ([`story`]), drawn from a seed: the same seed on
//! the same day tells the same story.
//!
//! Every request goes through the accounts service's own GraphQL schema and writer
//! ([`seeder`]), booked at the instant the story is at by a [`HistoricalClock`], which
//! only this command uses. So the hash chains, idempotency keys, holds and value dates are
//! exactly what the platform writes, and `folio verify` runs on the result before the
//! summary is printed. Nothing is published here: the relay of the next `folio up`
//! publishes the history and the projection builds the read models from it.

mod cast;
mod seeder;
mod story;

use std::collections::BTreeMap;

use accounts::{
    commands::AccountsService,
    domain::AccountStatus,
    graphql::IntegrityData,
    integrity::{self, VerifyOptions},
    store::{EventStore, HistoricalClock},
};
use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use ledger::AccountId;
use sqlx::PgPool;
use uuid::Uuid;

pub use story::{Refusal, STORY_DAYS};

use crate::{configuration::Settings, startup};

/// The seed `folio demo` tells its story from unless `--seed` says otherwise.
pub const DEMO_SEED_DEFAULT: u64 = 1_784;

/// One account the demo opened, as it stands at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededAccount {
    pub id: Uuid,
    pub holder: String,
    /// ISO 4217 code.
    pub currency: String,
    /// OPEN, FROZEN or CLOSED.
    pub status: String,
}

/// What `folio demo` wrote.
#[derive(Clone, Debug)]
pub struct DemoReport {
    pub seed: u64,
    pub accounts: Vec<SeededAccount>,
    /// Requests written (a batch counts once).
    pub requests: usize,
    /// Events in the store.
    pub events: i64,
    /// The booking instants of the first and the last event.
    pub first_booking: DateTime<Utc>,
    pub last_booking: DateTime<Utc>,
    /// Requests the story made that the platform refused, as it should have. Refusals
    /// write nothing, so this is their only record.
    pub refusals: Vec<Refusal>,
}

impl DemoReport {
    /// How many accounts there are in each currency.
    pub fn by_currency(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for account in &self.accounts {
            *counts.entry(account.currency.as_str()).or_insert(0) += 1;
        }
        counts
    }

    /// The accounts with status `status` (OPEN, FROZEN or CLOSED).
    pub fn with_status(&self, status: &str) -> Vec<&SeededAccount> {
        self.accounts
            .iter()
            .filter(|a| a.status == status)
            .collect()
    }
}

/// Seeds the database of `settings` (migrated first, as `folio migrate` does) from `seed`.
///
/// # Errors
/// When the event store already holds events (nothing is written then), when PostgreSQL
/// is unreachable, or when the story does not go as written (a bug: it says which step),
/// including a `folio verify` that finds a problem.
pub async fn run(settings: &Settings, seed: u64) -> anyhow::Result<DemoReport> {
    let pool = startup::connect_and_migrate(settings).await?;
    refuse_unless_fresh(&pool).await?;
    let now = Utc::now();
    let clock = HistoricalClock::starting_at(now);
    let store = EventStore::new(pool.clone()).with_historical_clock(clock.clone());
    let service = AccountsService::with_options(store, settings.accounts.writer());
    let schema = accounts::graphql::schema(
        service.clone(),
        IntegrityData {
            pool: pool.clone(),
            public_key: settings.integrity.public_key(),
            backdate_max: settings.accounts.backdate_max(),
        },
        accounts::graphql::PeriodData {
            pool: pool.clone(),
            signing_key: settings.integrity.signing_key.clone(),
        },
        platform::access_log::AccessLog::spawn(pool.clone()),
    );
    let mut story = story::Story::new(seeder::Seeder::new(schema, clock, service), seed, now);
    story.tell().await?;
    let accounts = check_balances(&story).await?;
    verify(&pool, settings).await?;
    let (events, first_booking, last_booking): (i64, DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("select count(*), min(recorded_at), max(recorded_at) from accounts.events")
            .fetch_one(&pool)
            .await
            .context("counting the demo's events")?;
    Ok(DemoReport {
        seed,
        accounts,
        requests: story.seeder().written,
        events,
        first_booking,
        last_booking,
        refusals: story.refusals.clone(),
    })
}

/// The demo writes only into an empty event store: history cannot be inserted before
/// events that exist, and a demo mixed into real data would be worse than none.
async fn refuse_unless_fresh(pool: &PgPool) -> anyhow::Result<()> {
    let events: i64 = sqlx::query_scalar("select count(*) from accounts.events")
        .fetch_one(pool)
        .await
        .context("counting the events already stored")?;
    if events > 0 {
        bail!(
            "the event store already holds {events} events: folio demo seeds only a fresh database; \
             point DATABASE_URL at a new one (e.g. postgres://postgres@localhost:5432/folio_demo) and run it again"
        );
    }
    Ok(())
}

/// Every account as the store has it, checked against the story's own bookkeeping.
async fn check_balances(story: &story::Story) -> anyhow::Result<Vec<SeededAccount>> {
    let service = story.seeder().service();
    let mut accounts = Vec::with_capacity(story.seats.len());
    for seat in &story.seats {
        let account = service
            .account(AccountId::from_uuid(seat.id))
            .await
            .map_err(|e| anyhow::anyhow!("loading {}: {e}", seat.member.holder))?
            .with_context(|| format!("{} was not opened", seat.member.holder))?;
        if account.balance != seat.balance {
            bail!(
                "{} holds {} {}, the story expected {}",
                seat.member.holder,
                account.balance,
                seat.member.currency,
                seat.balance
            );
        }
        accounts.push(SeededAccount {
            id: seat.id,
            holder: account.holder.clone(),
            currency: seat.member.currency.to_string(),
            status: match account.status {
                AccountStatus::Open => "OPEN",
                AccountStatus::Frozen => "FROZEN",
                AccountStatus::Closed => "CLOSED",
            }
            .to_string(),
        });
    }
    Ok(accounts)
}

/// `folio verify` on what was written: every hash chain, balance, hold, reversal, value date
/// and transfer.
async fn verify(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let options = VerifyOptions {
        public_key: settings.integrity.public_key(),
        account: None,
        external: None,
        events_max: None,
        progress: None,
        backdate_max: settings.accounts.backdate_max(),
    };
    let report = integrity::verify(pool, &options).await?;
    if !report.is_clean() {
        let first = report
            .problems
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        bail!("folio verify found problems in the demo's history, first: {first}");
    }
    Ok(())
}

/// The summary `folio demo` prints: what was seeded, and what to run next.
pub fn summary(report: &DemoReport) -> String {
    let currencies: Vec<String> = report
        .by_currency()
        .iter()
        .map(|(currency, count)| format!("{count} {currency}"))
        .collect();
    let names = |status: &str| -> String {
        let names: Vec<&str> = report
            .with_status(status)
            .iter()
            .map(|a| a.holder.as_str())
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    };
    let mut text = format!(
        "seeded {} accounts ({}) with {} events from {} requests (seed {})\n\
         booked from {} to {} by alice and bob (tellers), sam (supervisor) and payroll\n\
         frozen: {}; closed: {}\n\
         refused, as they should be ({}):\n",
        report.accounts.len(),
        currencies.join(", "),
        report.events,
        report.requests,
        report.seed,
        report.first_booking.format("%Y-%m-%d %H:%M UTC"),
        report.last_booking.format("%Y-%m-%d %H:%M UTC"),
        names("FROZEN"),
        names("CLOSED"),
        report.refusals.len(),
    );
    for refusal in &report.refusals {
        text.push_str(&format!("  {}: {}\n", refusal.code, refusal.attempt));
    }
    text.push_str(
        "folio verify: OK (hash chains, balances, holds, reversals, value dates, transfers)\n\
         \n\
         next: start the platform, which publishes this history to the read models:\n\
         \x20 cargo run --release -- up\n\
         then, in another terminal:\n\
         \x20 AUDITOR=$(cargo run -q --release -- token --sub carol --role auditor)\n\
         \x20 curl -s localhost:8080/graphql -H \"Authorization: Bearer $AUDITOR\" -H 'Content-Type: application/json' \\\n\
         \x20   -d '{\"query\":\"{ accounts(filter: {holder: \\\"zoë\\\"}) { edges { node { id holder balance currency } } } }\"}'\n\
         README.md (\"Try it\") and docs/usage.md go on from there.\n",
    );
    text
}
