//! End-to-end tests of the Folio platform: real HTTP and GraphQL on a random port, real
//! PostgreSQL (a fresh database per test) and NATS. One test binary; `helpers` starts the app.

mod accounts;
mod auth;
mod batches;
mod compliance;
mod crash;
mod errors;
mod fuzz;
mod graphiql;
mod hardening;
mod helpers;
mod holds;
mod http;
mod idempotency;
mod integrity;
mod metadata;
mod outage;
mod rebuild;
mod reporting;
mod reporting_roles;
mod reversals;
mod runtime_role;
mod two_axes;
mod two_processes;
