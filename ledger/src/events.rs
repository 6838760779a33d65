//! The published language: every event an account stream can hold, in its current shape,
//! and the upcasters that turn older stored shapes into the current one.
//!
//! An event is stored as `(event_type, event_version, payload)`. Writers always
//! write the current version; readers call [`AccountEvent::decode`], which accepts
//! every version ever written. Upcasters work on the JSON so that a stored row is
//! never rewritten (the event store is immutable).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{AccountId, Currency, TransferId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountOpened {
    pub account_id: AccountId,
    pub holder: String,
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub overdraft_limit: Decimal,
}

/// A deposit or a withdrawal: the amount moved and the balance it left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Movement {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    #[serde(default)]
    pub reference: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferDebited {
    pub transfer_id: TransferId,
    pub to_account_id: AccountId,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    #[serde(default)]
    pub reference: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferCredited {
    pub transfer_id: TransferId,
    pub from_account_id: AccountId,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    #[serde(default)]
    pub reference: Option<String>,
}

/// A supervisor's freeze, unfreeze or close, with the reason they gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub reason: String,
}

/// Everything that can happen to an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountEvent {
    AccountOpened(AccountOpened),
    MoneyDeposited(Movement),
    MoneyWithdrawn(Movement),
    TransferDebited(TransferDebited),
    TransferCredited(TransferCredited),
    AccountFrozen(StatusChange),
    AccountUnfrozen(StatusChange),
    AccountClosed(StatusChange),
}

/// Every event type name, as stored in `event_type` and used in subjects.
pub const EVENT_TYPES: [&str; 8] = [
    "AccountOpened",
    "MoneyDeposited",
    "MoneyWithdrawn",
    "TransferDebited",
    "TransferCredited",
    "AccountFrozen",
    "AccountUnfrozen",
    "AccountClosed",
];

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {event_type} version {event_version}")]
    Unknown {
        event_type: String,
        event_version: i16,
    },
    #[error("malformed {event_type} v{event_version} payload: {reason}")]
    Malformed {
        event_type: String,
        event_version: i16,
        reason: String,
    },
}

impl AccountEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::AccountOpened(_) => "AccountOpened",
            Self::MoneyDeposited(_) => "MoneyDeposited",
            Self::MoneyWithdrawn(_) => "MoneyWithdrawn",
            Self::TransferDebited(_) => "TransferDebited",
            Self::TransferCredited(_) => "TransferCredited",
            Self::AccountFrozen(_) => "AccountFrozen",
            Self::AccountUnfrozen(_) => "AccountUnfrozen",
            Self::AccountClosed(_) => "AccountClosed",
        }
    }

    /// The version writers use today. Older versions are upcast by [`Self::decode`].
    pub fn event_version(&self) -> i16 {
        match self {
            Self::AccountOpened(_) | Self::MoneyDeposited(_) => 2,
            _ => 1,
        }
    }

    /// The payload as stored (current version).
    pub fn to_payload(&self) -> Value {
        let value = match self {
            Self::AccountOpened(e) => serde_json::to_value(e),
            Self::MoneyDeposited(e) | Self::MoneyWithdrawn(e) => serde_json::to_value(e),
            Self::TransferDebited(e) => serde_json::to_value(e),
            Self::TransferCredited(e) => serde_json::to_value(e),
            Self::AccountFrozen(e) | Self::AccountUnfrozen(e) | Self::AccountClosed(e) => {
                serde_json::to_value(e)
            }
        };
        // Every field is a string, a UUID or an option of those: serialising cannot fail.
        value.expect("event payloads serialise to JSON")
    }

    /// Reads a stored payload of any version ever written as the current shape.
    pub fn decode(
        event_type: &str,
        event_version: i16,
        payload: &Value,
    ) -> Result<Self, DecodeError> {
        let unknown = || DecodeError::Unknown {
            event_type: event_type.to_string(),
            event_version,
        };
        let current = match (event_type, event_version) {
            ("AccountOpened", 1) => upcast_account_opened_v1(payload),
            ("MoneyDeposited", 1) => upcast_money_deposited_v1(payload),
            ("AccountOpened" | "MoneyDeposited", 2) => Ok(payload.clone()),
            (t, 1) if EVENT_TYPES.contains(&t) => Ok(payload.clone()),
            _ => return Err(unknown()),
        }
        .map_err(|reason| malformed(event_type, event_version, reason))?;
        let read = |v: Value| -> Result<Self, DecodeError> {
            Ok(match event_type {
                "AccountOpened" => Self::AccountOpened(parse(event_type, event_version, v)?),
                "MoneyDeposited" => Self::MoneyDeposited(parse(event_type, event_version, v)?),
                "MoneyWithdrawn" => Self::MoneyWithdrawn(parse(event_type, event_version, v)?),
                "TransferDebited" => Self::TransferDebited(parse(event_type, event_version, v)?),
                "TransferCredited" => Self::TransferCredited(parse(event_type, event_version, v)?),
                "AccountFrozen" => Self::AccountFrozen(parse(event_type, event_version, v)?),
                "AccountUnfrozen" => Self::AccountUnfrozen(parse(event_type, event_version, v)?),
                "AccountClosed" => Self::AccountClosed(parse(event_type, event_version, v)?),
                _ => return Err(unknown()),
            })
        };
        read(current)
    }

    /// The balance the account had right after this event, for events that move money.
    pub fn balance_after(&self) -> Option<Decimal> {
        match self {
            Self::MoneyDeposited(m) | Self::MoneyWithdrawn(m) => Some(m.balance_after),
            Self::TransferDebited(t) => Some(t.balance_after),
            Self::TransferCredited(t) => Some(t.balance_after),
            _ => None,
        }
    }

    /// The signed change to the balance: credits positive, debits negative.
    pub fn balance_change(&self) -> Option<Decimal> {
        match self {
            Self::MoneyDeposited(m) => Some(m.amount),
            Self::MoneyWithdrawn(m) => Some(-m.amount),
            Self::TransferDebited(t) => Some(-t.amount),
            Self::TransferCredited(t) => Some(t.amount),
            _ => None,
        }
    }
}

fn parse<T: DeserializeOwned>(
    event_type: &str,
    event_version: i16,
    value: Value,
) -> Result<T, DecodeError> {
    serde_json::from_value(value).map_err(|e| malformed(event_type, event_version, e.to_string()))
}

fn malformed(event_type: &str, event_version: i16, reason: String) -> DecodeError {
    DecodeError::Malformed {
        event_type: event_type.to_string(),
        event_version,
        reason,
    }
}

fn field<'a>(payload: &'a Value, name: &str) -> Result<&'a Value, String> {
    payload
        .get(name)
        .ok_or_else(|| format!("missing field {name}"))
}

fn currency_of(payload: &Value) -> Result<Currency, String> {
    let code = field(payload, "currency")?
        .as_str()
        .ok_or("currency is not a string")?;
    Currency::parse(code).map_err(|e| e.to_string())
}

fn minor_to_decimal(payload: &Value, name: &str, currency: Currency) -> Result<String, String> {
    let minor = field(payload, name)?
        .as_i64()
        .ok_or_else(|| format!("{name} is not an integer"))?;
    Ok(Decimal::new(minor, currency.minor_units()).to_string())
}

/// v1 named the holder `owner` and had no overdraft limit (every account had 0).
fn upcast_account_opened_v1(payload: &Value) -> Result<Value, String> {
    let currency = currency_of(payload)?;
    Ok(json!({
        "accountId": field(payload, "accountId")?,
        "holder": field(payload, "owner")?,
        "currency": currency.code(),
        "overdraftLimit": currency.zero().to_string(),
    }))
}

/// v1 carried integer minor units (`amountMinor: 1050` for 10.50 USD).
fn upcast_money_deposited_v1(payload: &Value) -> Result<Value, String> {
    let currency = currency_of(payload)?;
    Ok(json!({
        "amount": minor_to_decimal(payload, "amountMinor", currency)?,
        "currency": currency.code(),
        "balanceAfter": minor_to_decimal(payload, "balanceAfterMinor", currency)?,
        "reference": payload.get("reference").cloned().unwrap_or(Value::Null),
    }))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").expect("usd")
    }

    fn samples() -> Vec<AccountEvent> {
        let movement = Movement {
            amount: Decimal::from_str("10.50").expect("dec"),
            currency: usd(),
            balance_after: Decimal::from_str("110.50").expect("dec"),
            reference: Some("rent".into()),
        };
        vec![
            AccountEvent::AccountOpened(AccountOpened {
                account_id: AccountId::generate(),
                holder: "Ada Lovelace".into(),
                currency: usd(),
                overdraft_limit: Decimal::from_str("50.00").expect("dec"),
            }),
            AccountEvent::MoneyDeposited(movement.clone()),
            AccountEvent::MoneyWithdrawn(movement.clone()),
            AccountEvent::TransferDebited(TransferDebited {
                transfer_id: TransferId::generate(),
                to_account_id: AccountId::generate(),
                amount: movement.amount,
                currency: usd(),
                balance_after: movement.balance_after,
                reference: None,
            }),
            AccountEvent::TransferCredited(TransferCredited {
                transfer_id: TransferId::generate(),
                from_account_id: AccountId::generate(),
                amount: movement.amount,
                currency: usd(),
                balance_after: movement.balance_after,
                reference: None,
            }),
            AccountEvent::AccountFrozen(StatusChange {
                reason: "fraud review".into(),
            }),
            AccountEvent::AccountUnfrozen(StatusChange {
                reason: "cleared".into(),
            }),
            AccountEvent::AccountClosed(StatusChange {
                reason: "customer request".into(),
            }),
        ]
    }

    #[test]
    fn every_event_round_trips_through_its_current_payload() {
        for event in samples() {
            let payload = event.to_payload();
            let decoded = AccountEvent::decode(event.event_type(), event.event_version(), &payload);
            assert_eq!(decoded, Ok(event));
        }
    }

    #[test]
    fn every_event_type_is_listed() {
        let types: Vec<&str> = samples().iter().map(AccountEvent::event_type).collect();
        assert_eq!(types, EVENT_TYPES.to_vec());
    }

    #[test]
    fn amounts_are_stored_as_strings_never_numbers() {
        let payload = samples()[1].to_payload();
        assert_eq!(payload["amount"], json!("10.50"));
        assert_eq!(payload["balanceAfter"], json!("110.50"));
    }

    #[test]
    fn account_opened_v1_upcasts_owner_to_holder_with_zero_overdraft() {
        let id = AccountId::generate();
        let v1 = json!({ "accountId": id, "owner": "Grace Hopper", "currency": "JPY" });
        let decoded = AccountEvent::decode("AccountOpened", 1, &v1);
        assert_eq!(
            decoded,
            Ok(AccountEvent::AccountOpened(AccountOpened {
                account_id: id,
                holder: "Grace Hopper".into(),
                currency: Currency::parse("JPY").expect("jpy"),
                overdraft_limit: Decimal::ZERO,
            }))
        );
    }

    #[test]
    fn money_deposited_v1_upcasts_minor_units_to_decimals() {
        let v1 = json!({ "amountMinor": 1050, "currency": "BHD", "balanceAfterMinor": 2_000_500 });
        let Ok(AccountEvent::MoneyDeposited(m)) = AccountEvent::decode("MoneyDeposited", 1, &v1)
        else {
            panic!("v1 deposit did not decode");
        };
        assert_eq!(m.amount.to_string(), "1.050");
        assert_eq!(m.balance_after.to_string(), "2000.500");
        assert_eq!(m.reference, None);
    }

    #[test]
    fn unknown_types_and_versions_are_errors_not_panics() {
        assert!(matches!(
            AccountEvent::decode("MoneyTeleported", 1, &json!({})),
            Err(DecodeError::Unknown { .. })
        ));
        assert!(matches!(
            AccountEvent::decode("MoneyWithdrawn", 7, &json!({})),
            Err(DecodeError::Unknown { .. })
        ));
        assert!(matches!(
            AccountEvent::decode("MoneyWithdrawn", 1, &json!({"amount": 3})),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
