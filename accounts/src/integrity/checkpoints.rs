//! Folding published events into the running digest and signing checkpoints.

use std::time::Instant;

use ledger::{Hash, integrity::SignedCheckpoint, integrity::fold_digest};
use sqlx::{PgConnection, PgPool, Row, postgres::PgRow};

use super::IntegritySettings;
use crate::store::{StoreError, tx_id};

/// Keeps the running digest as the relay publishes, and signs checkpoints when due.
///
/// Only the leading relay writes the digest cursor and the checkpoints, so while it leads it
/// keeps both in memory (read once, then known): a published batch costs one update of the
/// cursor, plus an insert when a checkpoint is signed. [`Checkpointer::reset`] forgets them
/// when the lead is (re)taken; [`Checkpointer::committed`] adopts what a folded batch wrote
/// once its transaction has committed.
#[derive(Clone, Debug)]
pub struct Checkpointer {
    settings: IntegritySettings,
    last_signed: Option<Instant>,
    known: Option<Known>,
}

/// The cursor and the newest checkpoint, as the database holds them.
#[derive(Clone, Debug)]
struct Known {
    cursor: Cursor,
    /// `(sequence, event_count, digest)` of the newest checkpoint; zeros before the first.
    last: (i64, i64, Hash),
}

/// What a fold wrote, to adopt once its transaction commits.
#[derive(Clone, Debug)]
pub struct Folding(Known);

/// One published event, as the digest needs it.
#[derive(Clone, Copy, Debug)]
pub struct Folded {
    pub tx_id: u64,
    pub position: i64,
    pub hash: Hash,
}

#[derive(Clone, Debug)]
struct Cursor {
    tx_id: u64,
    position: i64,
    event_count: i64,
    digest: Hash,
}

impl Checkpointer {
    pub fn new(settings: IntegritySettings) -> Self {
        Self {
            settings,
            last_signed: None,
            known: None,
        }
    }

    /// Forgets the cursor and newest checkpoint; they are read again by the next fold.
    pub fn reset(&mut self) {
        self.known = None;
    }

    /// Adopts what a fold wrote, now that its transaction committed.
    pub fn committed(&mut self, folding: Folding) {
        self.known = Some(folding.0);
    }

    /// Whether the interval since the last signature has passed (counted from the first call).
    pub fn interval_elapsed(&mut self) -> bool {
        self.last_signed.get_or_insert_with(Instant::now).elapsed()
            >= self.settings.checkpoint_interval
    }

    /// Folds the events past the cursor into the digest, and signs a checkpoint if one is
    /// due, inside the caller's transaction; returns what it wrote, for
    /// [`Checkpointer::committed`] after the commit. Events at or before the cursor
    /// (published again after a rewind) are not folded twice.
    pub async fn fold(
        &mut self,
        conn: &mut PgConnection,
        events: &[Folded],
    ) -> Result<Folding, StoreError> {
        let mut known = match &self.known {
            Some(known) => known.clone(),
            None => Known {
                cursor: read_cursor(conn).await?,
                last: read_last(conn).await?,
            },
        };
        let mut folded = 0;
        for event in events {
            if (event.tx_id, event.position) <= (known.cursor.tx_id, known.cursor.position) {
                continue;
            }
            known.cursor.digest = fold_digest(&known.cursor.digest, event.position, &event.hash);
            known.cursor.tx_id = event.tx_id;
            known.cursor.position = event.position;
            known.cursor.event_count += 1;
            folded += 1;
        }
        if folded > 0 {
            sqlx::query(
                "update accounts.digest_cursor set tx_id = $1::text::xid8, position = $2, event_count = $3, digest = $4",
            )
            .bind(known.cursor.tx_id.to_string())
            .bind(known.cursor.position)
            .bind(known.cursor.event_count)
            .bind(known.cursor.digest.as_bytes().as_slice())
            .execute(&mut *conn)
            .await?;
        }
        self.sign_if_due(conn, &mut known).await?;
        Ok(Folding(known))
    }

    async fn sign_if_due(
        &mut self,
        conn: &mut PgConnection,
        known: &mut Known,
    ) -> Result<(), StoreError> {
        let cursor = &known.cursor;
        let (sequence, covered, previous_digest) = known.last;
        let pending = cursor.event_count - covered;
        if pending <= 0 {
            // Nothing to sign: start the interval again, so an idle relay looks once per interval.
            if self.interval_elapsed() {
                self.last_signed = Some(Instant::now());
            }
            return Ok(());
        }
        if pending < self.settings.checkpoint_events && !self.interval_elapsed() {
            return Ok(());
        }
        let signed_at = sqlx::query_scalar("select date_trunc('microseconds', clock_timestamp())")
            .fetch_one(&mut *conn)
            .await?;
        let checkpoint = SignedCheckpoint::sign(
            &self.settings.signing_key,
            sequence + 1,
            cursor.tx_id,
            cursor.position,
            cursor.event_count,
            cursor.digest,
            previous_digest,
            signed_at,
        );
        let signature =
            hex::decode(&checkpoint.signature).expect("a signature we just made is hex");
        sqlx::query(
            "insert into accounts.checkpoints
                 (sequence, tx_id, position, event_count, digest, previous_digest, signed_at, key_id, signature)
             values ($1, $2::text::xid8, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(checkpoint.sequence)
        .bind(&checkpoint.tx_id)
        .bind(checkpoint.position)
        .bind(checkpoint.event_count)
        .bind(checkpoint.digest.as_bytes().as_slice())
        .bind(checkpoint.previous_digest.as_bytes().as_slice())
        .bind(checkpoint.signed_at)
        .bind(&checkpoint.key_id)
        .bind(signature)
        .execute(&mut *conn)
        .await?;
        tracing::info!(
            sequence = checkpoint.sequence,
            position = checkpoint.position,
            events = checkpoint.event_count,
            "signed checkpoint"
        );
        metrics::counter!("folio_checkpoints_signed_total").increment(1);
        known.last = (
            checkpoint.sequence,
            checkpoint.event_count,
            checkpoint.digest,
        );
        self.last_signed = Some(Instant::now());
        Ok(())
    }
}

/// `(sequence, event_count, digest)` of the newest checkpoint; zeros before the first.
async fn read_last(conn: &mut PgConnection) -> Result<(i64, i64, Hash), StoreError> {
    let last = sqlx::query(
        "select sequence, event_count, digest from accounts.checkpoints order by sequence desc limit 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match &last {
        Some(row) => (
            row.try_get::<i64, _>("sequence")?,
            row.try_get::<i64, _>("event_count")?,
            hash(row, "digest")?,
        ),
        None => (0, 0, Hash::ZERO),
    })
}

async fn read_cursor(conn: &mut PgConnection) -> Result<Cursor, StoreError> {
    let row = sqlx::query("select tx_id::text as tx_id_text, position, event_count, digest from accounts.digest_cursor")
        .fetch_one(&mut *conn)
        .await?;
    Ok(Cursor {
        tx_id: tx_id(&row)?,
        position: row.try_get("position")?,
        event_count: row.try_get("event_count")?,
        digest: hash(&row, "digest")?,
    })
}

fn corrupt(reason: String) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(reason))
}

pub(crate) fn hash(row: &PgRow, column: &str) -> Result<Hash, StoreError> {
    let bytes: Vec<u8> = row.try_get(column)?;
    Hash::from_slice(&bytes).map_err(|e| corrupt(format!("{column}: {e}")))
}

pub(crate) fn checkpoint_from_row(row: &PgRow) -> Result<SignedCheckpoint, StoreError> {
    let signature: Vec<u8> = row.try_get("signature")?;
    Ok(SignedCheckpoint {
        format: ledger::integrity::CHECKPOINT_FORMAT.to_string(),
        sequence: row.try_get("sequence")?,
        tx_id: tx_id(row)?.to_string(),
        position: row.try_get("position")?,
        event_count: row.try_get("event_count")?,
        digest: hash(row, "digest")?,
        previous_digest: hash(row, "previous_digest")?,
        signed_at: row.try_get("signed_at")?,
        key_id: row.try_get("key_id")?,
        signature: hex::encode(signature),
    })
}

pub(crate) const CHECKPOINT_COLUMNS: &str = "sequence, tx_id::text as tx_id_text, position, event_count, digest, previous_digest, signed_at, key_id, signature";

/// The newest signed checkpoint, if any (`folio checkpoint export`).
pub async fn latest_checkpoint(pool: &PgPool) -> Result<Option<SignedCheckpoint>, StoreError> {
    let sql = format!(
        "select {CHECKPOINT_COLUMNS} from accounts.checkpoints order by sequence desc limit 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(checkpoint_from_row).transpose()
}

/// Every stored checkpoint, oldest first.
pub async fn stored_checkpoints(pool: &PgPool) -> Result<Vec<SignedCheckpoint>, StoreError> {
    let sql = format!("select {CHECKPOINT_COLUMNS} from accounts.checkpoints order by sequence");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    rows.iter().map(checkpoint_from_row).collect()
}
