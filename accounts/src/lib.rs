//! Folio's command side: the Account aggregate, the PostgreSQL event store, the command
//! handlers that join them, and the GraphQL mutations.

pub mod commands;
pub mod domain;
pub mod graphql;
pub mod integrity;
pub mod periods;
pub mod relay;
pub mod reports;
pub mod startup;
pub mod store;
pub mod sweep;
pub mod writer;

/// The migrations of the `accounts` schema.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("../migrations/accounts")
}
/// The schema this service owns.
pub const SCHEMA: &str = "accounts";
