//! The per-stream hash chain that makes any edit, deletion or reordering of history detectable.
//!
//! `hash = SHA-256(prev_hash || canonical bytes of the event)`, where the first
//! event of a stream chains from 32 zero bytes. The canonical bytes are a
//! length-prefixed encoding of every stored column except the position and the
//! hashes themselves; JSON is written with sorted keys and no whitespace, so the
//! bytes do not depend on how PostgreSQL's `jsonb` orders keys.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{AccountId, EventId};

/// Domain separation for event hashes, so they can never collide with another use of SHA-256 here.
const EVENT_HASH_DOMAIN: &[u8] = b"folio.event.v1\0";

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; 32]);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a hash is 32 bytes (64 hex digits), got {0} bytes")]
pub struct HashLengthError(pub usize);

impl Hash {
    /// What the first event of a stream chains from.
    pub const ZERO: Hash = Hash([0; 32]);

    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, HashLengthError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| HashLengthError(bytes.len()))
    }

    pub fn from_hex(hex_digits: &str) -> Result<Self, HashLengthError> {
        let bytes = hex::decode(hex_digits).map_err(|_| HashLengthError(hex_digits.len() / 2))?;
        Self::from_slice(&bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let digits = String::deserialize(deserializer)?;
        Self::from_hex(&digits).map_err(serde::de::Error::custom)
    }
}

/// The columns of an event row that its hash covers.
#[derive(Clone, Copy, Debug)]
pub struct EventHashInput<'a> {
    pub event_id: EventId,
    pub stream_id: AccountId,
    pub stream_version: i64,
    pub event_type: &'a str,
    pub event_version: i16,
    pub payload: &'a Value,
    pub metadata: &'a Value,
    /// Must be at microsecond precision, as PostgreSQL stores it.
    pub recorded_at: DateTime<Utc>,
}

/// The exact bytes an event's hash covers.
pub fn canonical_bytes(input: &EventHashInput<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(EVENT_HASH_DOMAIN);
    out.extend_from_slice(input.event_id.as_uuid().as_bytes());
    out.extend_from_slice(input.stream_id.as_uuid().as_bytes());
    out.extend_from_slice(&input.stream_version.to_be_bytes());
    put_bytes(&mut out, input.event_type.as_bytes());
    out.extend_from_slice(&input.event_version.to_be_bytes());
    put_bytes(&mut out, canonical_json(input.payload).as_bytes());
    put_bytes(&mut out, canonical_json(input.metadata).as_bytes());
    out.extend_from_slice(&input.recorded_at.timestamp_micros().to_be_bytes());
    out
}

/// `SHA-256(prev || canonical bytes)`; `prev` is [`Hash::ZERO`] for a stream's first event.
pub fn event_hash(prev: Option<&Hash>, input: &EventHashInput<'_>) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev.unwrap_or(&Hash::ZERO).as_bytes());
    hasher.update(canonical_bytes(input));
    Hash(hasher.finalize().into())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths are bounded by request limits far below u32::MAX.
    let len = u32::try_from(bytes.len()).expect("hashed field shorter than 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// JSON with object keys sorted bytewise and no insignificant whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn input<'a>(payload: &'a Value, metadata: &'a Value) -> EventHashInput<'a> {
        EventHashInput {
            event_id: EventId::from_uuid(uuid::Uuid::from_u128(1)),
            stream_id: AccountId::from_uuid(uuid::Uuid::from_u128(2)),
            stream_version: 1,
            event_type: "MoneyDeposited",
            event_version: 2,
            payload,
            metadata,
            recorded_at: Utc
                .timestamp_micros(1_700_000_000_123_456)
                .single()
                .expect("time"),
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = json!({"b": 1, "a": {"d": [true, null], "c": "x"}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":"x","d":[true,null]},"b":1}"#
        );
    }

    #[test]
    fn the_hash_does_not_depend_on_key_order() {
        let meta = json!({"actor": "ada"});
        let one = json!({"amount": "1.00", "currency": "USD"});
        let two: Value =
            serde_json::from_str(r#"{"currency":"USD","amount":"1.00"}"#).expect("json");
        assert_eq!(
            event_hash(None, &input(&one, &meta)),
            event_hash(None, &input(&two, &meta))
        );
    }

    #[test]
    fn any_change_changes_the_hash() {
        let meta = json!({"actor": "ada"});
        let payload = json!({"amount": "1.00"});
        let base = event_hash(None, &input(&payload, &meta));

        let other_amount = json!({"amount": "1.01"});
        assert_ne!(base, event_hash(None, &input(&other_amount, &meta)));
        let other_actor = json!({"actor": "eve"});
        assert_ne!(base, event_hash(None, &input(&payload, &other_actor)));
        let mut later = input(&payload, &meta);
        later.stream_version = 2;
        assert_ne!(base, event_hash(None, &later));
        assert_ne!(base, event_hash(Some(&base), &input(&payload, &meta)));
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let hash = event_hash(None, &input(&json!({}), &json!({})));
        assert_eq!(Hash::from_hex(&hash.to_hex()), Ok(hash));
        assert_eq!(Hash::from_slice(&[1, 2, 3]), Err(HashLengthError(3)));
    }
}
