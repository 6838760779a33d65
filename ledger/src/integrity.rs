//! Global checkpoints and audit proofs: what lets someone outside the platform check that
//! the ledger's history was not edited, deleted or reordered.
//!
//! The relay sees events in one fixed total order, `(tx_id, position)`, and folds each
//! into a running digest: `digest = SHA-256(domain || previous digest || position ||
//! event hash)`. At intervals it writes a checkpoint (the digest up to an event, the
//! previous checkpoint's digest, and an Ed25519 signature over both). A proof for one
//! event carries the digest just before it, the event, and the (position, hash) links
//! of every later event up to a signed checkpoint: folding them must give the signed digest.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Hash, RecordedEvent};

const DIGEST_DOMAIN: &[u8] = b"folio.digest.v1\0";
const CHECKPOINT_DOMAIN: &[u8] = b"folio.checkpoint.v1\0";
/// The format name written into exported checkpoints and proofs.
pub const CHECKPOINT_FORMAT: &str = "folio.checkpoint.v1";
pub const PROOF_FORMAT: &str = "folio.audit-proof.v1";

/// The running digest after one more event.
pub fn fold_digest(previous: &Hash, position: i64, event_hash: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(DIGEST_DOMAIN);
    hasher.update(previous.as_bytes());
    hasher.update(position.to_be_bytes());
    hasher.update(event_hash.as_bytes());
    Hash::from_bytes(hasher.finalize().into())
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a signing key is 32 bytes as 64 hex digits")]
    BadSigningKey,
    #[error("a public key is 32 bytes as 64 hex digits of a valid Ed25519 point")]
    BadPublicKey,
}

fn bytes32(hex_digits: &str) -> Option<[u8; 32]> {
    hex::decode(hex_digits.trim()).ok()?.try_into().ok()
}

pub fn parse_signing_key(hex_digits: &str) -> Result<SigningKey, KeyError> {
    bytes32(hex_digits)
        .map(|b| SigningKey::from_bytes(&b))
        .ok_or(KeyError::BadSigningKey)
}

pub fn parse_public_key(hex_digits: &str) -> Result<VerifyingKey, KeyError> {
    bytes32(hex_digits)
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or(KeyError::BadPublicKey)
}

/// A short name for a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
}

/// A signed statement: "every event up to `(tx_id, position)`, `event_count` of them,
/// folds to `digest`", chained to the previous checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedCheckpoint {
    pub format: String,
    pub sequence: i64,
    /// Transaction id of the last event covered, as a decimal string.
    pub tx_id: String,
    pub position: i64,
    pub event_count: i64,
    pub digest: Hash,
    pub previous_digest: Hash,
    pub signed_at: DateTime<Utc>,
    pub key_id: String,
    /// Ed25519 signature over [`SignedCheckpoint::signing_bytes`], as hex.
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("unknown checkpoint format {0:?}")]
    Format(String),
    #[error("the signature is not hex of 64 bytes")]
    MalformedSignature,
    #[error("the signature does not verify with public key {0}")]
    BadSignature(String),
}

impl SignedCheckpoint {
    /// Signs a new checkpoint. `signed_at` must be at microsecond precision.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        key: &SigningKey,
        sequence: i64,
        tx_id: u64,
        position: i64,
        event_count: i64,
        digest: Hash,
        previous_digest: Hash,
        signed_at: DateTime<Utc>,
    ) -> Self {
        let mut checkpoint = Self {
            format: CHECKPOINT_FORMAT.to_string(),
            sequence,
            tx_id: tx_id.to_string(),
            position,
            event_count,
            digest,
            previous_digest,
            signed_at,
            key_id: key_id(&key.verifying_key()),
            signature: String::new(),
        };
        checkpoint.signature = hex::encode(key.sign(&checkpoint.signing_bytes()).to_bytes());
        checkpoint
    }

    /// The exact bytes the signature covers.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(CHECKPOINT_DOMAIN);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&(self.tx_id.len() as u32).to_be_bytes());
        out.extend_from_slice(self.tx_id.as_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
        out.extend_from_slice(&self.event_count.to_be_bytes());
        out.extend_from_slice(self.digest.as_bytes());
        out.extend_from_slice(self.previous_digest.as_bytes());
        out.extend_from_slice(&self.signed_at.timestamp_micros().to_be_bytes());
        out
    }

    /// Checks the signature with `key` (and nothing about the store).
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        if self.format != CHECKPOINT_FORMAT {
            return Err(CheckpointError::Format(self.format.clone()));
        }
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::MalformedSignature)?;
        key.verify(&self.signing_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| CheckpointError::BadSignature(key_id(key)))
    }
}

/// One later event in a proof: enough to fold it into the digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofLink {
    pub position: i64,
    pub hash: Hash,
}

/// Everything needed to check offline that one event is part of signed history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditProof {
    pub format: String,
    /// The event exactly as stored.
    pub event: RecordedEvent,
    /// The running digest just before the event.
    pub digest_before: Hash,
    /// Every event after it, in relay order, up to the checkpoint's last event.
    pub links: Vec<ProofLink>,
    pub checkpoint: SignedCheckpoint,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("unknown proof format {0:?}")]
    Format(String),
    #[error("the event's content does not match its hash {0}")]
    EventHash(Hash),
    #[error("the chain of links does not fold to the checkpoint's digest")]
    Digest,
    #[error("the last link is at position {found}, but the checkpoint ends at {expected}")]
    Coverage { expected: i64, found: i64 },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl AuditProof {
    /// Checks the proof with nothing but the platform's public key.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), ProofError> {
        if self.format != PROOF_FORMAT {
            return Err(ProofError::Format(self.format.clone()));
        }
        if !self.event.hash_is_intact() {
            return Err(ProofError::EventHash(self.event.hash));
        }
        let mut digest = fold_digest(&self.digest_before, self.event.position, &self.event.hash);
        let mut last = self.event.position;
        for link in &self.links {
            digest = fold_digest(&digest, link.position, &link.hash);
            last = link.position;
        }
        if last != self.checkpoint.position {
            return Err(ProofError::Coverage {
                expected: self.checkpoint.position,
                found: last,
            });
        }
        if digest != self.checkpoint.digest {
            return Err(ProofError::Digest);
        }
        self.checkpoint.verify_signature(key)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32])
    }

    fn at() -> DateTime<Utc> {
        Utc.timestamp_micros(1_790_000_000_000_000)
            .single()
            .expect("time")
    }

    fn checkpoint(key: &SigningKey) -> SignedCheckpoint {
        let digest = fold_digest(&Hash::ZERO, 1, &Hash::from_bytes([1; 32]));
        SignedCheckpoint::sign(key, 1, 42, 1, 1, digest, Hash::ZERO, at())
    }

    #[test]
    fn a_checkpoint_verifies_with_its_key_only() {
        let signer = key(1);
        let signed = checkpoint(&signer);
        assert_eq!(signed.verify_signature(&signer.verifying_key()), Ok(()));
        assert!(matches!(
            signed.verify_signature(&key(2).verifying_key()),
            Err(CheckpointError::BadSignature(_))
        ));
    }

    #[test]
    fn changing_any_signed_field_breaks_the_signature() {
        let signer = key(3);
        let public = signer.verifying_key();
        let signed = checkpoint(&signer);
        let mut moved = signed.clone();
        moved.position += 1;
        assert!(moved.verify_signature(&public).is_err());
        let mut fewer = signed.clone();
        fewer.event_count -= 1;
        assert!(fewer.verify_signature(&public).is_err());
        let mut other = signed;
        other.digest = Hash::from_bytes([9; 32]);
        assert!(other.verify_signature(&public).is_err());
    }

    #[test]
    fn the_digest_depends_on_order_and_position() {
        let a = Hash::from_bytes([1; 32]);
        let b = Hash::from_bytes([2; 32]);
        let ab = fold_digest(&fold_digest(&Hash::ZERO, 1, &a), 2, &b);
        let ba = fold_digest(&fold_digest(&Hash::ZERO, 1, &b), 2, &a);
        assert_ne!(ab, ba);
        assert_ne!(
            fold_digest(&Hash::ZERO, 1, &a),
            fold_digest(&Hash::ZERO, 2, &a)
        );
    }

    #[test]
    fn keys_round_trip_through_hex() {
        let signer = key(4);
        let parsed = parse_signing_key(&hex::encode(signer.to_bytes())).expect("signing key");
        assert_eq!(parsed.verifying_key(), signer.verifying_key());
        let public =
            parse_public_key(&hex::encode(signer.verifying_key().as_bytes())).expect("public key");
        assert_eq!(public, signer.verifying_key());
        assert_eq!(parse_public_key("00"), Err(KeyError::BadPublicKey));
    }
}
