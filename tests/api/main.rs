//! End-to-end tests of the Folio platform: real HTTP and GraphQL on a random port, real
//! PostgreSQL (a fresh database per test) and NATS. One test binary; `helpers` starts the app.

mod access_evidence;
mod accounts;
mod adjustments;
mod auth;
mod batches;
mod browser;
mod compliance;
mod console;
mod crash;
mod demo;
mod errors;
mod fuzz;
mod graphiql;
mod hardening;
mod helpers;
mod holds;
mod http;
mod idempotency;
mod integrity;
mod logs;
mod metadata;
mod outage;
mod period_close;
mod rebuild;
mod reporting;
mod reporting_roles;
mod reversals;
mod runtime_role;
mod two_axes;
mod two_processes;
