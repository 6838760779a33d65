//! What every Folio service's edge shares: configuration values, telemetry, connections to
//! PostgreSQL and NATS with clear failures, bearer-token authentication and roles, and the
//! GraphQL plumbing (error codes, limits, the HTTP handler).
//!
//! The domain contract between services lives in `ledger`; this crate is only the
//! common edge, so that both services refuse a request, name an error and report
//! health the same way.

pub mod access_log;
pub mod auth;
pub mod config;
pub mod db;
pub mod document;
pub mod enums;
pub mod graphiql;
pub mod graphql;
pub mod http;
pub mod input_check;
pub mod json;
pub mod messaging;
pub mod objects;
pub mod observability;
pub mod policy;
pub mod scalars;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use auth::{Principal, Role, TokenKeys};
pub use graphql::{ApiError, RequestContext};
pub use policy::Capability;
