//! [`HistoricalClock`]: a booking instant chosen by the caller instead of the database
//! clock, so that a fresh store can be seeded with months of believable history
//! (`folio demo`) through the very writer, hash chain and idempotency keys every other
//! command goes through. Nothing else uses it: an [`super::EventStore`] books at the
//! database clock unless it was built with [`super::EventStore::with_historical_clock`].
//!
//! The store stays in order whatever the caller sets: an append refuses
//! ([`super::StoreError::BookingInstantRefused`]) an instant after the database clock (the
//! future) or before the `recorded_at` of the store's newest event (highest position), so
//! booking instants never run backwards, across streams as within one, and every later
//! booking at the database clock comes after them.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// The booking instant the next appends take; shared by the caller, who moves it forward,
/// and the store, which reads it when an append reads its heads.
#[derive(Clone, Debug)]
pub struct HistoricalClock {
    at: Arc<Mutex<DateTime<Utc>>>,
}

impl HistoricalClock {
    /// A clock standing at `at` (to the microsecond, see [`HistoricalClock::set`]).
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        Self {
            at: Arc::new(Mutex::new(to_microseconds(at))),
        }
    }

    /// Moves the clock to `at`, cut to the microsecond (what PostgreSQL stores, and so
    /// what the hash of a stored event covers): the booking instant of every append from
    /// now on. Checked when an append reads it (see the module documentation), not here.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.at.lock().unwrap_or_else(|p| p.into_inner()) = to_microseconds(at);
    }

    /// Where the clock stands.
    pub fn now(&self) -> DateTime<Utc> {
        *self.at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn to_microseconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}
