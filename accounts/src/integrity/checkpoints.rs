//! Folding published events into the running digest and signing checkpoints.

use std::time::Instant;

use ledger::{Hash, integrity::SignedCheckpoint, integrity::fold_digest};
use sqlx::{PgConnection, PgPool, Row, postgres::PgRow};

use super::IntegritySettings;
use crate::store::{StoreError, tx_id};

/// Keeps the running digest as the relay publishes, and signs checkpoints when due.
#[derive(Clone, Debug)]
pub struct Checkpointer {
    settings: IntegritySettings,
    last_signed: Option<Instant>,
}

/// One published event, as the digest needs it.
#[derive(Clone, Copy, Debug)]
pub struct Folded {
    pub tx_id: u64,
    pub position: i64,
    pub hash: Hash,
}

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
        }
    }

    /// Whether the interval since the last signature has passed (counted from the first call).
    pub fn interval_elapsed(&mut self) -> bool {
        self.last_signed.get_or_insert_with(Instant::now).elapsed()
            >= self.settings.checkpoint_interval
    }

    /// Folds the events past the cursor into the digest, and signs a checkpoint if one is
    /// due, inside the caller's transaction. Events at or before the cursor (published
    /// again after a rewind) are not folded twice.
    pub async fn fold(
        &mut self,
        conn: &mut PgConnection,
        events: &[Folded],
    ) -> Result<(), StoreError> {
        let mut cursor = read_cursor(conn).await?;
        let mut folded = 0;
        for event in events {
            if (event.tx_id, event.position) <= (cursor.tx_id, cursor.position) {
                continue;
            }
            cursor.digest = fold_digest(&cursor.digest, event.position, &event.hash);
            cursor.tx_id = event.tx_id;
            cursor.position = event.position;
            cursor.event_count += 1;
            folded += 1;
        }
        if folded > 0 {
            sqlx::query(
                "update accounts.digest_cursor set tx_id = $1::text::xid8, position = $2, event_count = $3, digest = $4",
            )
            .bind(cursor.tx_id.to_string())
            .bind(cursor.position)
            .bind(cursor.event_count)
            .bind(cursor.digest.as_bytes().as_slice())
            .execute(&mut *conn)
            .await?;
        }
        self.sign_if_due(conn, &cursor).await
    }

    async fn sign_if_due(
        &mut self,
        conn: &mut PgConnection,
        cursor: &Cursor,
    ) -> Result<(), StoreError> {
        let last = sqlx::query("select sequence, event_count, digest from accounts.checkpoints order by sequence desc limit 1")
            .fetch_optional(&mut *conn)
            .await?;
        let (sequence, covered, previous_digest) = match &last {
            Some(row) => (
                row.try_get::<i64, _>("sequence")?,
                row.try_get::<i64, _>("event_count")?,
                hash(row, "digest")?,
            ),
            None => (0, 0, Hash::ZERO),
        };
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
        self.last_signed = Some(Instant::now());
        Ok(())
    }
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
