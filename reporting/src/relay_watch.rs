//! What the relay last announced (`ledger::status`), so the reporting service can say who
//! holds publication back when its answers are stale, without reading the accounts schema.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use futures::StreamExt;
use ledger::status::{RELAY_STATUS_INTERVAL_MS, RelayStatus, relay_status_subject};

/// A status older than this many announcement intervals is not shown (the relay stopped).
pub const RELAY_STATUS_FRESH_INTERVALS: u32 = 5;
/// How many booking watermarks are kept: enough for a projection some minutes behind.
pub const BOOKING_WATERMARKS_KEPT: usize = 512;

/// `(published sequence, booked through)` pairs, both increasing.
type BookingWatermarks = VecDeque<(u64, DateTime<Utc>)>;

/// The latest announcement and when it arrived, and the recent booking watermarks.
#[derive(Clone, Debug, Default)]
pub struct RelayWatch {
    latest: Arc<Mutex<Option<(RelayStatus, Instant)>>>,
    booked: Arc<Mutex<BookingWatermarks>>,
}

impl RelayWatch {
    /// Subscribes to the relay's announcements in the background (until the client closes).
    pub fn spawn(nats: async_nats::Client, subject_prefix: &str) -> Self {
        let watch = Self::default();
        let latest = watch.latest.clone();
        let booked = watch.booked.clone();
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
                    if let (Some(sequence), Some(through)) =
                        (status.published_sequence, status.booked_through)
                    {
                        remember(
                            &mut booked.lock().unwrap_or_else(|p| p.into_inner()),
                            sequence,
                            through,
                        );
                    }
                    *latest.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((status, Instant::now()));
                }
            }
        });
        watch
    }

    /// The latest instant before which every booked event is applied, for a projection
    /// whose watermark is `watermark_sequence`: the newest relay announcement whose
    /// published sequence the projection has reached. `None` until one has.
    pub fn booked_through(&self, watermark_sequence: u64) -> Option<DateTime<Utc>> {
        self.booked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find(|(sequence, _)| *sequence <= watermark_sequence)
            .map(|(_, through)| *through)
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

/// Keeps `(sequence, through)` when it moves the booking watermark forward. A relay that
/// took over from another may announce a smaller sequence (its stream info was read
/// before the other's last acks): the pairs stay ordered by both, the older kept.
fn remember(booked: &mut BookingWatermarks, sequence: u64, through: DateTime<Utc>) {
    if let Some(&(last_sequence, last_through)) = booked.back()
        && (through <= last_through || sequence < last_sequence)
    {
        if through > last_through {
            // Later in time but an earlier sequence: it says more; replace every pair it dominates.
            while booked
                .back()
                .is_some_and(|&(s, t)| s >= sequence && t <= through)
            {
                booked.pop_back();
            }
            booked.push_back((sequence, through));
        }
        return;
    }
    booked.push_back((sequence, through));
    while booked.len() > BOOKING_WATERMARKS_KEPT {
        booked.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + second, 0).expect("instant")
    }

    #[test]
    fn the_booking_watermark_needs_the_projection_to_reach_its_sequence() {
        let watch = RelayWatch::default();
        {
            let mut booked = watch.booked.lock().expect("lock");
            remember(&mut booked, 10, at(1));
            remember(&mut booked, 20, at(2));
            remember(&mut booked, 20, at(3));
            remember(&mut booked, 30, at(2));
        }
        assert_eq!(watch.booked_through(5), None);
        assert_eq!(watch.booked_through(10), Some(at(1)));
        assert_eq!(watch.booked_through(19), Some(at(1)));
        assert_eq!(watch.booked_through(20), Some(at(3)));
        assert_eq!(
            watch.booked_through(1_000),
            Some(at(3)),
            "a pair that moves time backwards is not kept"
        );
    }
}
