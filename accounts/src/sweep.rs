//! The expiry sweep: records a HoldExpired for every active hold past its `expiresAt`, and
//! an AdjustmentExpired for every pending adjustment past its `expiresAt` (under the key
//! `expire-adjustment:{adjustmentId}` of the actor [`ADJUSTMENT_SWEEP_ACTOR`], the same way). The expiry itself needs no event (a hold counts for nothing from
//! `expiresAt` on, DESIGN.md "Holds"); the event makes it part of the record, frees the
//! account's state of the hold, and settles the hold in the index.
//!
//! - Bounded: at most [`HOLD_SWEEP_BATCH_MAX`] holds a round, soonest expiry first.
//! - Idempotent: each expiry runs under the key `expire-hold:{holdId}` of the actor
//!   [`HOLD_SWEEP_ACTOR`], so a retry or a second round is answered, never written twice.
//! - Safe with several processes: they share that key (and expected versions decide
//!   between concurrent writers), so a hold is expired once whoever gets there first.

use std::time::Duration;

use futures::future::join_all;
use ledger::{ErrorCode, Hash};
use serde_json::json;
use tokio::sync::watch;

use crate::{
    commands::{
        AccountsService, CommandContext, ExpireAdjustmentCommand, ExpireHoldCommand, fingerprint,
    },
    domain::{ExpireAdjustment, ExpireHold},
    store::HoldRecord,
};

/// The most holds one round expires.
pub const HOLD_SWEEP_BATCH_MAX: i64 = 500;
/// The pause between rounds when the last one found nothing more to do.
pub const HOLD_SWEEP_INTERVAL_DEFAULT: Duration = Duration::from_secs(5);
/// The actor recorded on every HoldExpired.
pub const HOLD_SWEEP_ACTOR: &str = "system:hold-sweep";

/// The actor recorded on every AdjustmentExpired.
pub const ADJUSTMENT_SWEEP_ACTOR: &str = "system:adjustment-sweep";

/// The sweep of one accounts process.
#[derive(Clone, Debug)]
pub struct HoldSweep {
    service: AccountsService,
    interval: Duration,
}

impl HoldSweep {
    pub fn new(service: AccountsService, interval: Duration) -> Self {
        Self { service, interval }
    }

    /// Sweeps until `shutdown` turns true: a full round goes again at once, otherwise
    /// it waits `interval`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let pause = match self.round().await {
                Ok(swept) if swept as i64 >= HOLD_SWEEP_BATCH_MAX => Duration::ZERO,
                Ok(_) => self.interval,
                Err(error) => {
                    tracing::warn!(%error, "hold sweep failed; trying again");
                    self.interval
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.wait_for(|stopped| *stopped) => return,
            }
        }
    }

    /// One round: expires up to [`HOLD_SWEEP_BATCH_MAX`] holds; how many it found.
    pub async fn round(&self) -> anyhow::Result<usize> {
        let due = self
            .service
            .store()
            .holds_past_expiry(HOLD_SWEEP_BATCH_MAX)
            .await?;
        let found = due.len();
        let outcomes = join_all(due.into_iter().map(|hold| self.expire(hold))).await;
        let mut expired = 0u64;
        for outcome in outcomes {
            match outcome {
                Ok(()) => expired += 1,
                // Captured, released or expired by another process meanwhile.
                Err(error) if error.code() == ErrorCode::HoldNotActive => {}
                Err(error) => return Err(error.into()),
            }
        }
        metrics::counter!("folio_holds_expired_total").increment(expired);
        Ok(found + self.expire_adjustments().await?)
    }

    /// Expires up to [`HOLD_SWEEP_BATCH_MAX`] pending adjustments past their expiry.
    async fn expire_adjustments(&self) -> anyhow::Result<usize> {
        let due = self
            .service
            .store()
            .adjustments_past_expiry(HOLD_SWEEP_BATCH_MAX)
            .await?;
        let found = due.len();
        let outcomes = join_all(due.into_iter().map(|record| {
            let canonical = json!({ "adjustmentId": record.adjustment_id });
            let context = CommandContext {
                actor: ADJUSTMENT_SWEEP_ACTOR.to_string(),
                roles: Vec::new(),
                correlation_id: format!("adjustment-sweep-{}", record.adjustment_id),
                client_addr: None,
                idempotency_key: format!("expire-adjustment:{}", record.adjustment_id),
                request_hash: fingerprint("expireAdjustment", &canonical),
            };
            let command = ExpireAdjustmentCommand(ExpireAdjustment {
                account_id: record.account_id,
                adjustment_id: record.adjustment_id,
            });
            async move { self.service.execute(&context, command).await }
        }))
        .await;
        for outcome in outcomes {
            match outcome {
                Ok(_) => {}
                // Decided by a supervisor or expired by another process meanwhile.
                Err(error) if error.code() == ErrorCode::AdjustmentNotPending => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(found)
    }

    async fn expire(&self, hold: HoldRecord) -> Result<(), crate::commands::CommandError> {
        let canonical = json!({ "holdId": hold.hold_id });
        let context = CommandContext {
            actor: HOLD_SWEEP_ACTOR.to_string(),
            roles: Vec::new(),
            correlation_id: format!("hold-sweep-{}", hold.hold_id),
            client_addr: None,
            idempotency_key: expiry_key(&hold),
            request_hash: request_hash(&canonical),
        };
        self.service
            .execute(
                &context,
                ExpireHoldCommand(ExpireHold {
                    account_id: hold.account_id,
                    hold_id: hold.hold_id,
                }),
            )
            .await
            .map(|_| ())
    }
}

/// The idempotency key of a hold's expiry.
pub fn expiry_key(hold: &HoldRecord) -> String {
    format!("expire-hold:{}", hold.hold_id)
}

fn request_hash(canonical: &serde_json::Value) -> Hash {
    fingerprint("expireHold", canonical)
}
