//! The GraphQL scalars of API.md, shared by both services so the merged schema has one of each.
//!
//! Each input is checked before anything runs, by [`check`] (called from
//! [`crate::input_check`] with the input's path), so a malformed value is refused naming
//! the input (`input.amount`) and the expected form. `Decimal` is accepted only as a JSON
//! string in the one grammar of [`ledger::money::parse_decimal`]: a JSON number would have
//! passed through a binary float, and nothing is ever rounded.

use std::fmt;

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{DateTime as ChronoDateTime, Utc};
use ledger::{Currency, ErrorCode};
use serde::Serialize;

use crate::ApiError;

/// How each scalar is written, appended to validation errors that name the type.
pub const SCALAR_FORMS: [(&str, &str); 3] = [
    (
        "Decimal",
        "a decimal number in a JSON string, such as \"100.50\"",
    ),
    (
        "UUID",
        "a UUID string such as \"0190c0de-1234-7abc-8def-0123456789ab\"",
    ),
    (
        "DateTime",
        "an RFC 3339 string such as \"2026-03-03T17:00:00Z\"",
    ),
];

/// An exact decimal number, sent and received as a JSON string (`"100.50"`), never a float.
///
/// It serialises (for fingerprints and logs, not GraphQL) as its normalised value, so
/// `"10"` and `"10.00"` read as one and the same number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal(pub rust_decimal::Decimal);

impl Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.normalize().to_string())
    }
}

fn parse_decimal(value: &Value) -> Option<rust_decimal::Decimal> {
    match value {
        Value::String(s) => ledger::money::parse_decimal(s).ok(),
        _ => None,
    }
}

/// Why `value` is not acceptable as the custom scalar `type_name`, if it is not; `None`
/// for a good value or a type that is not one of these scalars. The refusal names no
/// field: the caller knows the input's path.
pub fn check(type_name: &str, value: &Value) -> Option<ApiError> {
    match type_name {
        "Decimal" => match value {
            Value::String(text) => ledger::money::parse_decimal(text)
                .err()
                .map(|e| ApiError::new(ErrorCode::InvalidAmount, e.to_string())),
            _ => Some(ApiError::new(
                ErrorCode::InvalidAmount,
                format!("must be {}, not a JSON {}", SCALAR_FORMS[0].1, kind(value)),
            )),
        },
        "UUID" => parse_uuid(value).is_none().then(|| {
            ApiError::new(
                ErrorCode::Validation,
                format!("must be {}", SCALAR_FORMS[1].1),
            )
        }),
        "DateTime" => parse_datetime(value).is_none().then(|| {
            ApiError::new(
                ErrorCode::Validation,
                format!("must be {}", SCALAR_FORMS[2].1),
            )
        }),
        _ => None,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Boolean(_) => "boolean",
        Value::Binary(_) => "binary value",
        Value::Enum(_) => "enum value",
        Value::List(_) => "list",
        Value::Object(_) => "object",
    }
}

/// An exact decimal number as a JSON string such as "100.50"; never a JSON number.
#[Scalar(name = "Decimal")]
impl ScalarType for Decimal {
    fn parse(value: Value) -> InputValueResult<Self> {
        parse_decimal(&value)
            .map(Decimal)
            .ok_or_else(|| InputValueError::custom(format!("expected {}", SCALAR_FORMS[0].1)))
    }

    fn is_valid(value: &Value) -> bool {
        parse_decimal(value).is_some()
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

impl From<rust_decimal::Decimal> for Decimal {
    fn from(value: rust_decimal::Decimal) -> Self {
        Self(value)
    }
}

impl Decimal {
    /// An amount of `currency`, shown with exactly its minor units (`0` USD as `0.00`).
    pub fn money(value: rust_decimal::Decimal, currency: Currency) -> Self {
        Self(currency.display(value))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A UUID as a string, e.g. an account id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Uuid(pub uuid::Uuid);

fn parse_uuid(value: &Value) -> Option<uuid::Uuid> {
    match value {
        Value::String(s) => uuid::Uuid::parse_str(s).ok(),
        _ => None,
    }
}

/// A UUID as a string such as "0190c0de-1234-7abc-8def-0123456789ab".
#[Scalar(
    name = "UUID",
    specified_by_url = "https://www.rfc-editor.org/rfc/rfc9562"
)]
impl ScalarType for Uuid {
    fn parse(value: Value) -> InputValueResult<Self> {
        parse_uuid(&value)
            .map(Uuid)
            .ok_or_else(|| InputValueError::custom(format!("expected {}", SCALAR_FORMS[1].1)))
    }

    fn is_valid(value: &Value) -> bool {
        parse_uuid(value).is_some()
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

impl From<uuid::Uuid> for Uuid {
    fn from(value: uuid::Uuid) -> Self {
        Self(value)
    }
}

/// An instant, RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DateTime(pub ChronoDateTime<Utc>);

/// An RFC 3339 instant at the precision Folio stores (microseconds: finer digits are
/// dropped, as PostgreSQL would). A leap second (`23:59:60`) is refused: PostgreSQL cannot
/// read it back.
fn parse_datetime(value: &Value) -> Option<ChronoDateTime<Utc>> {
    use chrono::{SubsecRound, Timelike};
    match value {
        Value::String(s) => ChronoDateTime::parse_from_rfc3339(s)
            .ok()
            .filter(|t| t.nanosecond() < 1_000_000_000)
            .map(|t| t.with_timezone(&Utc).trunc_subsecs(6)),
        _ => None,
    }
}

/// An instant as an RFC 3339 string such as "2026-03-03T17:00:00Z" (any offset is accepted).
#[Scalar(
    name = "DateTime",
    specified_by_url = "https://www.rfc-editor.org/rfc/rfc3339"
)]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        parse_datetime(&value)
            .map(DateTime)
            .ok_or_else(|| InputValueError::custom(format!("expected {}", SCALAR_FORMS[2].1)))
    }

    fn is_valid(value: &Value) -> bool {
        parse_datetime(value).is_some()
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

impl From<ChronoDateTime<Utc>> for DateTime {
    fn from(value: ChronoDateTime<Utc>) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_strings_only() {
        assert!(<Decimal as ScalarType>::is_valid(&Value::String(
            "100.50".into()
        )));
        assert!(!<Decimal as ScalarType>::is_valid(&Value::from(0.1)));
        assert!(!<Decimal as ScalarType>::is_valid(&Value::String(
            "ten".into()
        )));
        assert_eq!(
            <Decimal as ScalarType>::parse(Value::String("0.10".into())).ok(),
            Some(Decimal(rust_decimal::Decimal::new(10, 2)))
        );
    }

    #[test]
    fn uuids_and_datetimes_are_checked_before_execution() {
        assert!(!<Uuid as ScalarType>::is_valid(&Value::String("x".into())));
        assert!(<DateTime as ScalarType>::is_valid(&Value::String(
            "2026-03-03T17:00:00+01:00".into()
        )));
        assert!(!<DateTime as ScalarType>::is_valid(&Value::String(
            "2026-03-03".into()
        )));
    }

    #[test]
    fn datetimes_keep_microseconds_and_refuse_leap_seconds() {
        let parsed =
            <DateTime as ScalarType>::parse(Value::String("2026-11-15T23:59:59.999999999Z".into()))
                .ok();
        assert_eq!(
            parsed.map(|t| t.to_value()),
            Some(Value::String("2026-11-15T23:59:59.999999Z".into())),
            "stored as PostgreSQL stores it"
        );
        assert!(!<DateTime as ScalarType>::is_valid(&Value::String(
            "2026-11-28T23:59:60.5Z".into()
        )));
    }

    #[test]
    fn datetimes_are_written_in_utc() {
        let parsed =
            <DateTime as ScalarType>::parse(Value::String("2026-03-03T18:00:00+01:00".into())).ok();
        assert_eq!(
            parsed.map(|t| t.to_value()),
            Some(Value::String("2026-03-03T17:00:00Z".into()))
        );
    }
}
