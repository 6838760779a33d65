//! Reading `accounts.events` rows into [`RecordedEvent`]s.

use ledger::{AccountId, EventId, Hash, RecordedEvent};
use sqlx::{Row, postgres::PgRow};

use super::StoreError;

/// The columns [`recorded_event`] reads, in `select` form.
pub const EVENT_COLUMNS: &str = "position, event_id, stream_id, stream_version, event_type, event_version, \
     payload, metadata, recorded_at, prev_hash, hash";

/// One `accounts.events` row (selected with [`EVENT_COLUMNS`]) as a [`RecordedEvent`].
pub fn recorded_event(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let stream_id = AccountId::from_uuid(row.try_get("stream_id")?);
    let prev: Option<Vec<u8>> = row.try_get("prev_hash")?;
    let prev_hash = prev
        .map(|bytes| Hash::from_slice(&bytes))
        .transpose()
        .map_err(|e| StoreError::Corrupt {
            stream_id,
            reason: e.to_string(),
        })?;
    Ok(RecordedEvent {
        position: row.try_get("position")?,
        event_id: EventId::from_uuid(row.try_get("event_id")?),
        stream_id,
        stream_version: row.try_get("stream_version")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
        prev_hash,
        hash: hash(row, "hash", stream_id)?,
    })
}

pub(crate) fn hash(row: &PgRow, column: &str, stream_id: AccountId) -> Result<Hash, StoreError> {
    let bytes: Vec<u8> = row.try_get(column)?;
    Hash::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        stream_id,
        reason: e.to_string(),
    })
}

/// A `tx_id::text as tx_id_text` column as the transaction id it is.
pub(crate) fn tx_id(row: &PgRow) -> Result<u64, StoreError> {
    let text: String = row.try_get("tx_id_text")?;
    text.parse().map_err(|_| {
        StoreError::Database(sqlx::Error::Protocol(format!("unreadable tx_id {text}")))
    })
}
