//! Opaque keyset cursors: the URL-safe base64 of `v2:<kind>:<key>` followed by a 16-byte
//! HMAC-SHA-256 tag, where `key` names the last item of a page. Clients pass them back
//! as `after` and never look inside.
//!
//! The version lets the format change without misreading old cursors; the kind keeps a
//! cursor of one list from being used on another; the tag makes any cursor Folio did not
//! make a VALIDATION refusal before its key reaches a query (a crafted one could name a
//! timestamp PostgreSQL cannot hold). The tag's key is derived from the deployment's
//! token secret ([`configure`]), so cursors survive restarts and work on every process.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::QueryError;

/// The format version written into every cursor.
const VERSION: &str = "v2";
/// Bytes of the HMAC tag kept in a cursor.
const TAG_BYTES: usize = 16;
/// Used before [`configure`] is called (tests that never start a server).
const UNCONFIGURED_SECRET: &[u8] = b"folio cursors of an unconfigured process";

static KEY: OnceLock<[u8; 32]> = OnceLock::new();

/// Derives the cursors' tag key from the deployment's secret; the first call wins.
pub fn configure(secret: &[u8]) {
    let _ = KEY.set(derive_key(secret));
}

fn derive_key(secret: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"folio keyset cursor v2\0");
    hasher.update(secret);
    hasher.finalize().into()
}

fn mac() -> Hmac<Sha256> {
    let key = KEY.get_or_init(|| derive_key(UNCONFIGURED_SECRET));
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length")
}
/// The longest cursor accepted; real ones are well under 100 characters.
pub const CURSOR_LEN_MAX: usize = 256;

/// The key of a list's order, as written into its cursors.
pub trait CursorKey: Sized {
    /// Which list the cursor belongs to.
    const KIND: &'static str;
    fn to_text(&self) -> String;
    fn from_text(text: &str) -> Option<Self>;
}

/// The cursor naming `key`.
pub fn encode<K: CursorKey>(key: &K) -> String {
    let text = format!("{VERSION}:{}:{}", K::KIND, key.to_text());
    let mut mac = mac();
    mac.update(text.as_bytes());
    let tag = mac.finalize().into_bytes();
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(&tag[..TAG_BYTES]);
    base64_encode(&bytes)
}

/// The key inside `cursor`, or VALIDATION naming `field` if it is not a cursor of this list.
pub fn decode<K: CursorKey>(field: &'static str, cursor: &str) -> Result<K, QueryError> {
    let refuse = || {
        QueryError::invalid(
            field,
            "is not a cursor returned by this query; pass an edge's cursor or pageInfo.endCursor",
        )
    };
    if cursor.len() > CURSOR_LEN_MAX {
        return Err(refuse());
    }
    let mut bytes = base64_decode(cursor).ok_or_else(refuse)?;
    if bytes.len() <= TAG_BYTES {
        return Err(refuse());
    }
    let tag = bytes.split_off(bytes.len() - TAG_BYTES);
    let mut mac = mac();
    mac.update(&bytes);
    mac.verify_truncated_left(&tag).map_err(|_| refuse())?;
    let text = String::from_utf8(bytes).map_err(|_| refuse())?;
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(kind), Some(key)) if kind == K::KIND => {
            K::from_text(key).ok_or_else(refuse)
        }
        _ => Err(refuse()),
    }
}

/// `after` decoded, if given.
pub fn decode_after<K: CursorKey>(after: Option<&str>) -> Result<Option<K>, QueryError> {
    after.map(|cursor| decode("after", cursor)).transpose()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// URL-safe base64 without padding (RFC 4648 §5).
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = chunk.len() + 1;
        for i in 0..symbols {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32);
    let text = text.as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let produced = chunk.len() - 1;
        // Bits beyond the last byte must be zero, so every byte string has exactly one encoding.
        let unused_bits = match produced {
            1 => n & 0xffff,
            2 => n & 0xff,
            _ => 0,
        };
        if unused_bits != 0 {
            return None;
        }
        out.extend_from_slice(&bytes[..produced]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Number(i64);

    impl CursorKey for Number {
        const KIND: &'static str = "number";
        fn to_text(&self) -> String {
            self.0.to_string()
        }
        fn from_text(text: &str) -> Option<Self> {
            text.parse().ok().map(Number)
        }
    }

    struct Other;

    impl CursorKey for Other {
        const KIND: &'static str = "other";
        fn to_text(&self) -> String {
            String::new()
        }
        fn from_text(_: &str) -> Option<Self> {
            Some(Other)
        }
    }

    #[test]
    fn base64_matches_the_rfc_test_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded), Some(plain.as_bytes().to_vec()));
        }
        assert_eq!(base64_encode(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn cursors_round_trip() {
        let cursor = encode(&Number(9_000_000_000));
        assert_eq!(
            decode::<Number>("after", &cursor).ok(),
            Some(Number(9_000_000_000))
        );
    }

    #[test]
    fn unreadable_foreign_or_forged_cursors_are_refused_naming_the_field() {
        let foreign = encode(&Other);
        // Well-formed, of the right kind, but not made by Folio: no valid tag.
        let forged = base64_encode(b"v2:number:-9223372036854775808AAAAAAAAAAAAAAAA");
        let unsigned_v1 = base64_encode(b"v1:number:42");
        let mut tampered = base64_decode(&encode(&Number(42))).expect("bytes");
        tampered[10] = b'7';
        let tampered = base64_encode(&tampered);
        for bad in [
            "",
            "!!!",
            "Zg=",
            "Zh",
            &foreign,
            &forged,
            &unsigned_v1,
            &tampered,
            &"A".repeat(CURSOR_LEN_MAX + 4),
        ] {
            let Err(error) = decode::<Number>("after", bad) else {
                panic!("{bad:?} was accepted as a cursor");
            };
            assert!(error.to_string().starts_with("after: "), "{error}");
        }
    }
}
