//! Operational status the relay announces to every service of a deployment: how far
//! publication has got and, when something holds it back, who.
//!
//! The relay publishes a [`RelayStatus`] on [`relay_status_subject`] (core NATS, not the
//! event stream) every [`RELAY_STATUS_INTERVAL_MS`], so the reporting service can say why
//! its answers are stale without reading the accounts schema.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How often the relay announces its status, in milliseconds.
pub const RELAY_STATUS_INTERVAL_MS: u64 = 1_000;

/// A transaction that holds the relay's horizon back: publication stops at the oldest
/// transaction still running, wherever in the database cluster it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HorizonBlocker {
    /// PostgreSQL backend process id (`pg_stat_activity.pid`).
    pub pid: i32,
    /// The database the transaction runs in.
    pub database: Option<String>,
    /// `active`, `idle in transaction`, ...
    pub state: Option<String>,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    /// How long the transaction has been open, in seconds.
    pub open_for_secs: f64,
    /// Whether committed events are waiting behind it right now.
    pub events_waiting: bool,
}

/// What the relay announces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayStatus {
    pub stream: String,
    pub at: DateTime<Utc>,
    /// Events published since the relay took the lead.
    pub published_events: u64,
    /// Committed events the relay has not published yet (only counted when small reads
    /// allow it; `None` when unknown).
    pub lag_events: Option<i64>,
    /// Seconds since the oldest unpublished event was recorded (0 when none).
    pub lag_secs: f64,
    /// Set when the oldest running transaction has held publication back for longer than
    /// the relay's threshold.
    pub blocker: Option<HorizonBlocker>,
    /// Every event recorded (booked) before this instant is published, at or below
    /// `published_sequence`: once a consumer has applied the stream that far, the booking
    /// axis is complete up to here and an answer `asKnownAt` an earlier instant can never
    /// change (DESIGN.md, "Two time axes"). `None` when the relay cannot bound it (a
    /// backlog larger than it counts).
    #[serde(default)]
    pub booked_through: Option<DateTime<Utc>>,
    /// The JetStream stream sequence of the newest message the relay knows is published.
    #[serde(default)]
    pub published_sequence: Option<u64>,
}

/// The core-NATS subject relay status is announced on.
pub fn relay_status_subject(prefix: &str) -> String {
    format!("{prefix}.status.relay")
}
