//! What the relay last announced (`ledger::status`), so the reporting service can say who
//! holds publication back when its answers are stale, without reading the accounts schema.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use ledger::status::{RELAY_STATUS_INTERVAL_MS, RelayStatus, relay_status_subject};

/// A status older than this many announcement intervals is not shown (the relay stopped).
pub const RELAY_STATUS_FRESH_INTERVALS: u32 = 5;

/// The latest announcement and when it arrived.
#[derive(Clone, Debug, Default)]
pub struct RelayWatch {
    latest: Arc<Mutex<Option<(RelayStatus, Instant)>>>,
}

impl RelayWatch {
    /// Subscribes to the relay's announcements in the background (until the client closes).
    pub fn spawn(nats: async_nats::Client, subject_prefix: &str) -> Self {
        let watch = Self::default();
        let latest = watch.latest.clone();
        let subject = relay_status_subject(subject_prefix);
        tokio::spawn(async move {
            let mut subscription = match nats.subscribe(subject).await {
                Ok(subscription) => subscription,
                Err(error) => {
                    tracing::warn!(%error, "cannot subscribe to the relay's status");
                    return;
                }
            };
            while let Some(message) = subscription.next().await {
                if let Ok(status) = serde_json::from_slice::<RelayStatus>(&message.payload) {
                    *latest.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((status, Instant::now()));
                }
            }
        });
        watch
    }

    /// The latest status, if one arrived recently enough to describe the relay now.
    pub fn current(&self) -> Option<RelayStatus> {
        let fresh = Duration::from_millis(RELAY_STATUS_INTERVAL_MS) * RELAY_STATUS_FRESH_INTERVALS;
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(_, at)| at.elapsed() <= fresh)
            .map(|(status, _)| status.clone())
    }
}
