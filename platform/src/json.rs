//! Reading a JSON request body strictly: an object that names one key twice is refused.
//!
//! RFC 8259 says names "SHOULD be unique" and leaves duplicates to the reader; serde_json
//! keeps the last. For money that is not good enough: `{"amount": "1", "amount": "2"}`
//! in a GraphQL variable would book 2 while a log or proxy that kept the first shows 1.
//! Nesting is bounded by serde_json's own recursion limit (128).

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Value};

/// A JSON value whose objects have unique keys.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "the key {:?} appears twice in one object",
                    key.chars().take(64).collect::<String>()
                )));
            }
            let Unique(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Parses `bytes` as JSON, refusing an object with a repeated key.
pub fn from_slice_unique(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Unique>(bytes).map(|Unique(value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_keys_parse_as_usual() {
        let value = from_slice_unique(br#"{"a": [1, {"b": "x"}], "c": null, "d": 1.5}"#);
        assert_eq!(
            value.ok(),
            Some(serde_json::json!({"a": [1, {"b": "x"}], "c": null, "d": 1.5}))
        );
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        for body in [
            &br#"{"amount": "1", "amount": "2"}"#[..],
            br#"{"variables": {"input": {"amount": "1", "amount": "2"}}}"#,
            br#"[{"a": 1}, {"b": 1, "b": 1}]"#,
        ] {
            let error = from_slice_unique(body).expect_err("duplicate accepted");
            assert!(error.to_string().contains("appears twice"), "{error}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(from_slice_unique(deep.as_bytes()).is_err());
    }
}
