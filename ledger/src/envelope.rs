//! The envelope an event is stored and published in: its place in the store, who caused it, and its hashes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    AccountEvent, AccountId, CommandId, EventId, Hash,
    events::DecodeError,
    hashing::{EventHashInput, event_hash},
};

/// Who caused an event, on whose behalf, and as part of which conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    /// The authenticated subject (`sub` of the bearer token).
    pub actor: String,
    pub roles: Vec<String>,
    pub correlation_id: String,
    #[serde(default)]
    pub causation_id: Option<String>,
    pub command_id: CommandId,
    /// The GraphQL mutation that carried the command, e.g. `deposit`.
    pub command_type: String,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub client_addr: Option<String>,
}

/// One stored event, exactly as the event store holds it and the relay publishes it.
///
/// `payload` and `metadata` are kept as the stored JSON so that the hash can be
/// recomputed from what was stored; [`Self::decode`] and [`Self::metadata`] give
/// the typed views.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEvent {
    /// Global position in the event store (a sequence; not commit order).
    pub position: i64,
    pub event_id: EventId,
    pub stream_id: AccountId,
    pub stream_version: i64,
    pub event_type: String,
    pub event_version: i16,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: Option<Hash>,
    pub hash: Hash,
}

impl RecordedEvent {
    pub fn decode(&self) -> Result<AccountEvent, DecodeError> {
        AccountEvent::decode(
            &self.event_type,
            self.event_version,
            &self.payload,
            crate::events::Stored {
                recorded_at: self.recorded_at,
            },
        )
    }

    pub fn metadata(&self) -> Result<EventMetadata, serde_json::Error> {
        serde_json::from_value(self.metadata.clone())
    }

    pub fn hash_input(&self) -> EventHashInput<'_> {
        EventHashInput {
            event_id: self.event_id,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            event_type: &self.event_type,
            event_version: self.event_version,
            payload: &self.payload,
            metadata: &self.metadata,
            recorded_at: self.recorded_at,
        }
    }

    /// The hash this event should carry, given the one before it in its stream.
    pub fn expected_hash(&self) -> Hash {
        event_hash(self.prev_hash.as_ref(), &self.hash_input())
    }

    /// Whether the stored hash matches the stored content and previous hash.
    pub fn hash_is_intact(&self) -> bool {
        self.expected_hash() == self.hash
    }
}
