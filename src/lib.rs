//! The `folio` platform: wires the accounts and reporting services, the relay and the
//! projections into processes, and provides the operator commands.

pub mod cli;
pub mod configuration;
pub mod console;
pub mod demo;
pub mod integrity;
pub mod operations;
pub mod startup;
