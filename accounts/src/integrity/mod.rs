//! Compliance-grade integrity of the event store: signed global checkpoints written as the
//! relay publishes, verification of every stream's hash chain and every checkpoint, and
//! proofs that one event is part of signed history (see `ledger::integrity`).

mod checkpoints;
mod proof;
mod verify;

use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use platform::config::{env_parse, env_var};

pub use checkpoints::{Checkpointer, Folded, Folding, latest_checkpoint, stored_checkpoints};
pub use proof::{ProofError, audit_proof};
pub use verify::{Problem, ProblemKind, Report, VerifyOptions, verify};

/// A checkpoint is signed once this many events are folded in since the last one...
pub const CHECKPOINT_EVENTS_DEFAULT: i64 = 1_000;
/// ...or once this long has passed with at least one new event.
pub const CHECKPOINT_INTERVAL_DEFAULT: Duration = Duration::from_secs(60);
/// Used when `FOLIO_SIGNING_KEY` is unset, with a warning; its checkpoints prove nothing to
/// anyone who knows this file.
pub const DEVELOPMENT_SIGNING_KEY: &str =
    "6d7a2c1f0b9e8d7c6b5a49382716f5e4d3c2b1a0918f7e6d5c4b3a2918070605";

/// The key checkpoints are signed with, and how often.
#[derive(Clone, Debug)]
pub struct IntegritySettings {
    pub signing_key: SigningKey,
    pub is_development_key: bool,
    pub checkpoint_events: i64,
    pub checkpoint_interval: Duration,
}

impl IntegritySettings {
    pub fn from_env() -> anyhow::Result<Self> {
        let (raw, is_development_key) = match env_var("FOLIO_SIGNING_KEY") {
            Some(key) => (key, false),
            None => (DEVELOPMENT_SIGNING_KEY.to_string(), true),
        };
        let signing_key = ledger::integrity::parse_signing_key(&raw).map_err(|e| {
            anyhow::anyhow!("FOLIO_SIGNING_KEY: {e} (make one with 'folio keygen')")
        })?;
        Ok(Self {
            signing_key,
            is_development_key,
            checkpoint_events: env_parse("FOLIO_CHECKPOINT_EVENTS", CHECKPOINT_EVENTS_DEFAULT)?
                .max(1),
            checkpoint_interval: Duration::from_secs(env_parse(
                "FOLIO_CHECKPOINT_INTERVAL_SECS",
                CHECKPOINT_INTERVAL_DEFAULT.as_secs(),
            )?),
        })
    }

    /// Settings with the given key and the default intervals.
    pub fn with_key(signing_key: SigningKey) -> Self {
        Self {
            signing_key,
            is_development_key: false,
            checkpoint_events: CHECKPOINT_EVENTS_DEFAULT,
            checkpoint_interval: CHECKPOINT_INTERVAL_DEFAULT,
        }
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }
}
