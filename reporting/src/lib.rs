//! Folio's query side: a JetStream consumer that projects ledger events into read models
//! in PostgreSQL, and the GraphQL queries and CSV reports that answer from them.
//!
//! Everything the reporting service knows came over NATS: it never reads the
//! `accounts` schema.

pub mod consumer;
pub mod gate;
pub mod graphql;
pub mod model;
pub mod projection;
pub mod queries;
pub mod rebuild;
pub mod relay_watch;
pub mod reports;
pub mod startup;
pub mod state;

/// The migrations of the `reporting` schema.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("../migrations/reporting")
}

/// The schema this service owns.
pub const SCHEMA: &str = "reporting";
