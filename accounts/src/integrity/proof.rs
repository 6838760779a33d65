//! Proof for one record: the event, the digest before it, the links to the next signed
//! checkpoint, and that checkpoint; checkable offline with the public key alone.

use futures::TryStreamExt;
use ledger::{
    EventId, Hash,
    integrity::{AuditProof, PROOF_FORMAT, ProofLink, fold_digest},
};
use sqlx::{PgPool, Row};

use super::checkpoints::{CHECKPOINT_COLUMNS, checkpoint_from_row, hash};
use crate::store::{EVENT_COLUMNS, StoreError, recorded_event, tx_id};

#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("no event {0}")]
    NoSuchEvent(EventId),
    #[error(
        "event {0} is not covered by a signed checkpoint yet; the relay signs one every FOLIO_CHECKPOINT_EVENTS events (1000) or FOLIO_CHECKPOINT_INTERVAL_SECS (60) with new events; retry then"
    )]
    NotYetCheckpointed(EventId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ProofError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

/// The proof that `event_id` is part of the history signed by the first checkpoint after it.
pub async fn audit_proof(pool: &PgPool, event_id: EventId) -> Result<AuditProof, ProofError> {
    let sql = format!(
        "select tx_id::text as tx_id_text, {EVENT_COLUMNS} from accounts.events where event_id = $1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(event_id.as_uuid())
        .fetch_optional(pool)
        .await?
        .ok_or(ProofError::NoSuchEvent(event_id))?;
    let event = recorded_event(&row)?;
    let event_tx = tx_id(&row)?;

    let sql = format!(
        "select {CHECKPOINT_COLUMNS} from accounts.checkpoints
         where (tx_id, position) >= ($1::text::xid8, $2) order by sequence limit 1"
    );
    let checkpoint = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(event_tx.to_string())
        .bind(event.position)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(checkpoint_from_row)
        .transpose()?
        .ok_or(ProofError::NotYetCheckpointed(event_id))?;

    // The digest at the checkpoint before this one is where folding starts.
    let previous = sqlx::query(
        "select tx_id::text as tx_id_text, position, digest from accounts.checkpoints
         where sequence = $1 - 1",
    )
    .bind(checkpoint.sequence)
    .fetch_optional(pool)
    .await?;
    let (from_tx, from_position, mut digest) = match &previous {
        Some(row) => (
            tx_id(row)?,
            row.try_get::<i64, _>("position")?,
            hash(row, "digest")?,
        ),
        None => (0, 0, Hash::ZERO),
    };

    let mut rows = sqlx::query(
        "select tx_id::text as tx_id_text, position, hash from accounts.events
         where (tx_id, position) > ($1::text::xid8, $2) and (tx_id, position) <= ($3::text::xid8, $4)
         order by tx_id, position",
    )
    .bind(from_tx.to_string())
    .bind(from_position)
    .bind(&checkpoint.tx_id)
    .bind(checkpoint.position)
    .fetch(pool);
    let mut digest_before = None;
    let mut links = Vec::new();
    while let Some(row) = rows.try_next().await? {
        let position: i64 = row.try_get("position")?;
        let link_hash = hash(&row, "hash")?;
        if digest_before.is_none() {
            if position == event.position && tx_id(&row)? == event_tx {
                digest_before = Some(digest);
            } else {
                digest = fold_digest(&digest, position, &link_hash);
            }
            continue;
        }
        links.push(ProofLink {
            position,
            hash: link_hash,
        });
    }
    Ok(AuditProof {
        format: PROOF_FORMAT.to_string(),
        event,
        digest_before: digest_before.ok_or(ProofError::NotYetCheckpointed(event_id))?,
        links,
        checkpoint,
    })
}
