//! Tracing set up once per process, filtered by `RUST_LOG`: human-readable lines, or one
//! JSON object per line with `FOLIO_LOG_FORMAT=json`. Colour codes only when standard
//! output is a terminal (never in log files).

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,async_nats=warn";

/// How log lines are written (`FOLIO_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: `text` (the default).
    Text,
    /// For log shippers: `json`, one object per line.
    Json,
}

impl LogFormat {
    /// `FOLIO_LOG_FORMAT`, or text when unset or unknown (said on standard error).
    pub fn from_env() -> Self {
        match std::env::var("FOLIO_LOG_FORMAT").as_deref() {
            Ok("json") => Self::Json,
            Ok("text") | Err(_) => Self::Text,
            Ok(other) => {
                eprintln!("FOLIO_LOG_FORMAT={other:?} is not text or json; writing text");
                Self::Text
            }
        }
    }
}

/// Installs the global subscriber; later calls (in tests) do nothing.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = std::io::stdout().is_terminal();
    let _ = match LogFormat::from_env() {
        LogFormat::Text => fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(ansi)
            .try_init(),
        LogFormat::Json => fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .flatten_event(true)
            .try_init(),
    };
}
