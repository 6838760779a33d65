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
