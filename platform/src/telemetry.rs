//! Tracing set up once per process: human-readable lines, filtered by `RUST_LOG`.

use tracing_subscriber::{EnvFilter, fmt};

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,async_nats=warn,tower_http=info";

/// Installs the global subscriber; later calls (in tests) do nothing.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = fmt().with_env_filter(filter).with_target(false).try_init();
}
