//! Money: ISO 4217 currencies with their minor units, and amounts that are valid by construction.
//!
//! Amounts are `rust_decimal::Decimal`, never floats. An amount is positive, at
//! most [`AMOUNT_MAX`], and has no more decimal places than its currency's minor
//! unit (USD 2, JPY 0, BHD 3). Parsed amounts are rescaled to the currency's
//! minor unit, so `10.5 USD` is stored and shown as `10.50`.

use std::{fmt, str::FromStr};

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount one deposit, withdrawal, transfer or overdraft limit may carry,
/// in major units of any currency: one trillion.
pub const AMOUNT_MAX: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0);

/// The most decimal places any ISO 4217 currency has (CLF, UYW have 4).
pub const MINOR_UNITS_MAX: u32 = 4;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("'{0}' is not an ISO 4217 currency code with a minor unit (for example USD, EUR, JPY)")]
    UnknownCurrency(String),
    #[error("{value} is not a valid amount: it must be greater than zero")]
    NotPositive { value: Decimal },
    #[error("{value} is not a valid amount: it must not exceed {AMOUNT_MAX}")]
    AboveMaximum { value: Decimal },
    #[error("{value} has more decimal places than {currency} allows ({minor_units})")]
    TooManyDecimalPlaces {
        value: Decimal,
        currency: Currency,
        minor_units: u32,
    },
    #[error("{value} is not a valid limit: it must be zero or more")]
    Negative { value: Decimal },
}

/// An ISO 4217 currency that has a minor unit (funds and metals such as XAU are refused).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// Parses a three-letter code; lower case is accepted and normalised.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let upper = code.trim().to_ascii_uppercase();
        iso_currency::Currency::from_code(&upper)
            .filter(|c| c.exponent().is_some())
            .map(Self)
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_string()))
    }

    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// Decimal places of the minor unit: USD 2, JPY 0, BHD 3.
    pub fn minor_units(&self) -> u32 {
        // `parse` only admits currencies with an exponent.
        u32::from(self.0.exponent().unwrap_or(0))
    }

    /// `value` expressed at this currency's scale, or an error if that would lose precision.
    pub fn fit(&self, value: Decimal) -> Result<Decimal, MoneyError> {
        let minor_units = self.minor_units();
        let normalized = value.normalize();
        if normalized.scale() > minor_units {
            return Err(MoneyError::TooManyDecimalPlaces {
                value,
                currency: *self,
                minor_units,
            });
        }
        let mut fitted = normalized;
        fitted.rescale(minor_units);
        Ok(fitted)
    }

    /// Zero at this currency's scale (`0.00` for USD).
    pub fn zero(&self) -> Decimal {
        Decimal::new(0, self.minor_units())
    }

    /// `value` as this currency shows it: exactly its minor units (`5` USD as `5.00`).
    /// A value with more places (never produced by Folio) is shown as it is, unrounded.
    pub fn display(&self, value: Decimal) -> Decimal {
        let mut shown = value.normalize();
        if shown.scale() <= self.minor_units() {
            shown.rescale(self.minor_units());
            shown
        } else {
            value
        }
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount that is greater than zero, at most [`AMOUNT_MAX`] and has at most
/// [`MINOR_UNITS_MAX`] decimal places: valid for some currency. Which currency is
/// decided by the account it is applied to, see [`Money::of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositiveAmount(Decimal);

impl PositiveAmount {
    pub fn parse(value: Decimal) -> Result<Self, MoneyError> {
        if value <= Decimal::ZERO {
            return Err(MoneyError::NotPositive { value });
        }
        if value > AMOUNT_MAX {
            return Err(MoneyError::AboveMaximum { value });
        }
        Ok(Self(value))
    }

    pub fn value(&self) -> Decimal {
        self.0
    }
}

/// A positive amount in one currency, at that currency's scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// The amount in `currency`, refused if it has more decimal places than the currency allows.
    pub fn of(amount: PositiveAmount, currency: Currency) -> Result<Self, MoneyError> {
        let amount = currency.fit(amount.value())?;
        Ok(Self { amount, currency })
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// The most digits a decimal written by a client may have (before and after the point).
/// `rust_decimal` holds 28 exactly; more could only be kept by rounding, which Folio never does.
pub const DECIMAL_DIGITS_MAX: usize = 28;

/// Why a decimal string does not follow the one grammar Folio reads amounts in
/// (`../shared/API.md`, "Errors that every operation shares"): an optional `-` (only where
/// a field is signed), digits without leading zeros, and at most one point followed by at
/// least one digit. No exponent, `_`, `+`, blanks, or rounding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecimalTextError {
    #[error("must not be empty; write a decimal number such as \"100.50\"")]
    Empty,
    #[error("must not have blanks; write a decimal number such as \"100.50\"")]
    Blank,
    #[error("must not have an exponent ({text}); write the digits out, such as \"1000\"")]
    Exponent { text: String },
    #[error("must not have '_' ({text}); write the digits only, such as \"1000\"")]
    Underscore { text: String },
    #[error("must not have a '+' sign ({text})")]
    Plus { text: String },
    #[error("must not have leading zeros ({text})")]
    LeadingZero { text: String },
    #[error("must have digits on both sides of the point ({text})")]
    LonelyPoint { text: String },
    #[error(
        "{text} is not a decimal number; write digits with at most one point, such as \"100.50\""
    )]
    NotDecimal { text: String },
    #[error("has more than {DECIMAL_DIGITS_MAX} digits; it cannot be held without rounding")]
    TooManyDigits,
    #[error("zero has no sign ({text}); write it without '-'")]
    SignedZero { text: String },
}

/// Reads `text` as an exact decimal by the grammar of [`DecimalTextError`]; the value keeps
/// every digit written (`"10.000"` is 10.000). Whether a sign is allowed is the caller's
/// rule: this accepts a leading `-`.
pub fn parse_decimal(text: &str) -> Result<Decimal, DecimalTextError> {
    // As a JSON string: how a client developer wrote it, invisible characters escaped.
    let shown = || crate::text::quoted(&text.chars().take(64).collect::<String>());
    if text.is_empty() {
        return Err(DecimalTextError::Empty);
    }
    if text.chars().any(char::is_whitespace) {
        return Err(DecimalTextError::Blank);
    }
    if text.contains(['e', 'E'])
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || ".-+eE".contains(c))
    {
        return Err(DecimalTextError::Exponent { text: shown() });
    }
    if text.contains('_') {
        return Err(DecimalTextError::Underscore { text: shown() });
    }
    if text.starts_with('+') {
        return Err(DecimalTextError::Plus { text: shown() });
    }
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if fraction.is_some_and(|f| f.is_empty()) || whole.is_empty() {
        if unsigned.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && unsigned.matches('.').count() == 1
            && unsigned.len() > 1
        {
            return Err(DecimalTextError::LonelyPoint { text: shown() });
        }
        return Err(DecimalTextError::NotDecimal { text: shown() });
    }
    if !digits(whole) || !fraction.is_none_or(digits) {
        return Err(DecimalTextError::NotDecimal { text: shown() });
    }
    if whole.len() > 1 && whole.starts_with('0') {
        return Err(DecimalTextError::LeadingZero { text: shown() });
    }
    if whole.len() + fraction.map_or(0, str::len) > DECIMAL_DIGITS_MAX {
        return Err(DecimalTextError::TooManyDigits);
    }
    let value = Decimal::from_str_exact(text).map_err(|_| DecimalTextError::TooManyDigits)?;
    if value.is_zero() && text.starts_with('-') {
        return Err(DecimalTextError::SignedZero { text: shown() });
    }
    Ok(value)
}

/// A limit such as an overdraft: zero or more, at most [`AMOUNT_MAX`], at the currency's scale.
pub fn parse_limit(value: Decimal, currency: Currency) -> Result<Decimal, MoneyError> {
    if value < Decimal::ZERO {
        return Err(MoneyError::Negative { value });
    }
    if value > AMOUNT_MAX {
        return Err(MoneyError::AboveMaximum { value });
    }
    currency.fit(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test decimal")
    }

    #[test]
    fn amount_max_is_one_trillion() {
        assert_eq!(AMOUNT_MAX, Decimal::new(1_000_000_000_000, 0));
    }

    #[test]
    fn currencies_know_their_minor_units() {
        assert_eq!(Currency::parse("USD").map(|c| c.minor_units()), Ok(2));
        assert_eq!(Currency::parse("jpy").map(|c| c.minor_units()), Ok(0));
        assert_eq!(Currency::parse("BHD").map(|c| c.minor_units()), Ok(3));
    }

    #[test]
    fn rejects_unknown_currencies_and_metals() {
        assert_eq!(
            Currency::parse("XYZ"),
            Err(MoneyError::UnknownCurrency("XYZ".into()))
        );
        assert_eq!(
            Currency::parse("XAU"),
            Err(MoneyError::UnknownCurrency("XAU".into()))
        );
    }

    #[test]
    fn amounts_must_be_positive_and_below_the_maximum() {
        assert!(matches!(
            PositiveAmount::parse(dec("0")),
            Err(MoneyError::NotPositive { .. })
        ));
        assert!(matches!(
            PositiveAmount::parse(dec("-1")),
            Err(MoneyError::NotPositive { .. })
        ));
        assert!(matches!(
            PositiveAmount::parse(AMOUNT_MAX + Decimal::ONE),
            Err(MoneyError::AboveMaximum { .. })
        ));
        assert_eq!(
            PositiveAmount::parse(AMOUNT_MAX).map(|a| a.value()),
            Ok(AMOUNT_MAX)
        );
    }

    #[test]
    fn money_is_rescaled_to_the_currency_and_refuses_extra_decimals() {
        let usd = Currency::parse("USD").expect("usd");
        let jpy = Currency::parse("JPY").expect("jpy");
        let ten_and_a_half = PositiveAmount::parse(dec("10.5")).expect("amount");
        assert_eq!(
            Money::of(ten_and_a_half, usd).map(|m| m.amount().to_string()),
            Ok("10.50".to_string())
        );
        assert!(matches!(
            Money::of(ten_and_a_half, jpy),
            Err(MoneyError::TooManyDecimalPlaces { minor_units: 0, .. })
        ));
        let trailing_zero = PositiveAmount::parse(dec("10.500")).expect("amount");
        assert_eq!(
            Money::of(trailing_zero, usd).map(|m| m.amount().to_string()),
            Ok("10.50".to_string())
        );
        let three_places = PositiveAmount::parse(dec("10.005")).expect("amount");
        assert!(Money::of(three_places, usd).is_err());
    }

    #[test]
    fn decimals_follow_one_strict_grammar() {
        for (text, value) in [
            ("0", "0"),
            ("10", "10"),
            ("10.00", "10.00"),
            ("0.5", "0.5"),
            ("-12.50", "-12.50"),
            ("1000000000000", "1000000000000"),
            ("10.000000000000000000000000", "10.000000000000000000000000"),
        ] {
            assert_eq!(
                parse_decimal(text).map(|d| d.to_string()),
                Ok(value.to_string()),
                "{text}"
            );
        }
        for (text, refusal) in [
            ("", DecimalTextError::Empty),
            (" 1", DecimalTextError::Blank),
            ("1 000", DecimalTextError::Blank),
            (
                "1e3",
                DecimalTextError::Exponent {
                    text: "\"1e3\"".into(),
                },
            ),
            (
                "1.5E-2",
                DecimalTextError::Exponent {
                    text: "\"1.5E-2\"".into(),
                },
            ),
            (
                "1_000",
                DecimalTextError::Underscore {
                    text: "\"1_000\"".into(),
                },
            ),
            (
                "1_0",
                DecimalTextError::Underscore {
                    text: "\"1_0\"".into(),
                },
            ),
            (
                "+1",
                DecimalTextError::Plus {
                    text: "\"+1\"".into(),
                },
            ),
            (
                "01",
                DecimalTextError::LeadingZero {
                    text: "\"01\"".into(),
                },
            ),
            (
                "-00.5",
                DecimalTextError::LeadingZero {
                    text: "\"-00.5\"".into(),
                },
            ),
            (
                "10.",
                DecimalTextError::LonelyPoint {
                    text: "\"10.\"".into(),
                },
            ),
            (
                ".5",
                DecimalTextError::LonelyPoint {
                    text: "\".5\"".into(),
                },
            ),
            (
                "1.2.3",
                DecimalTextError::NotDecimal {
                    text: "\"1.2.3\"".into(),
                },
            ),
            (
                "ten",
                DecimalTextError::NotDecimal {
                    text: "\"ten\"".into(),
                },
            ),
            (
                "0x10",
                DecimalTextError::NotDecimal {
                    text: "\"0x10\"".into(),
                },
            ),
            (
                "--1",
                DecimalTextError::NotDecimal {
                    text: "\"--1\"".into(),
                },
            ),
            (
                "NaN",
                DecimalTextError::NotDecimal {
                    text: "\"NaN\"".into(),
                },
            ),
            (
                "10.000000000000000000000000000001",
                DecimalTextError::TooManyDigits,
            ),
            (
                "99999999999999999999999999999",
                DecimalTextError::TooManyDigits,
            ),
        ] {
            assert_eq!(parse_decimal(text), Err(refusal), "{text:?}");
        }
    }

    #[test]
    fn zero_is_written_without_a_sign() {
        for text in ["-0", "-0.00", "-0.0000"] {
            assert_eq!(
                parse_decimal(text),
                Err(DecimalTextError::SignedZero {
                    text: format!("{text:?}")
                })
            );
        }
        assert!(parse_decimal("0.00").is_ok());
    }

    #[test]
    fn limits_may_be_zero_but_not_negative() {
        let usd = Currency::parse("USD").expect("usd");
        assert_eq!(
            parse_limit(Decimal::ZERO, usd).map(|d| d.to_string()),
            Ok("0.00".into())
        );
        assert!(matches!(
            parse_limit(dec("-5"), usd),
            Err(MoneyError::Negative { .. })
        ));
    }
}
