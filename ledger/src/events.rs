//! The published language: every event an account stream can hold, in its current shape,
//! and the upcasters that turn older stored shapes into the current one.
//!
//! An event is stored as `(event_type, event_version, payload)`. Writers always write the
//! current version; readers call [`AccountEvent::decode`], which accepts every version ever
//! written: an upcaster turns version `n` into `n + 1`, and they chain up to the current
//! one. Upcasters work on the JSON so that a stored row is never rewritten (the event store
//! is immutable).
//!
//! Every event type is listed once, in the [`events!`] table at the bottom of this file,
//! with its payload, its current version and its upcasters: the enum, the list of names,
//! the versions, encoding and decoding all come from that table.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{AccountId, AdjustmentId, Currency, EventId, HoldId, ReversalId, TransferId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountOpened {
    pub account_id: AccountId,
    pub holder: String,
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub overdraft_limit: Decimal,
}

/// A deposit or a withdrawal: the amount moved, the balance it left, and when the money
/// moved for the business (the value date; the booking instant is the event's `recorded_at`).
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
    pub value_date: DateTime<Utc>,
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
    pub value_date: DateTime<Utc>,
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
    pub value_date: DateTime<Utc>,
}

/// A supervisor's freeze, unfreeze or close, with the reason they gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub reason: String,
}

/// Funds reserved by a card authorisation: the balance stays, the available balance drops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldPlaced {
    pub hold_id: HoldId,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
    /// From this instant the hold counts for nothing; `None`: it lasts until settled.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reference: Option<String>,
}

/// A hold settled by taking `amount` of it (the rest, `released_amount`, is freed): a
/// withdrawal, or with `to_account_id` the debit leg of a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldCaptured {
    pub hold_id: HoldId,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub released_amount: Decimal,
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    pub value_date: DateTime<Utc>,
    #[serde(default)]
    pub to_account_id: Option<AccountId>,
    #[serde(default)]
    pub transfer_id: Option<TransferId>,
    #[serde(default)]
    pub reference: Option<String>,
}

/// A hold settled without taking anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldReleased {
    pub hold_id: HoldId,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A hold that reached its `expires_at` without being settled (written by the sweep; the
/// hold counted for nothing from `expires_at` on already).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldExpired {
    pub hold_id: HoldId,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// What kind of movement a reversal undid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReversedKind {
    Deposit,
    Withdrawal,
    TransferOut,
    TransferIn,
    HoldCapture,
}

/// One leg of a reversal: the compensating change to this account for the movement
/// `reversed_event_id` made on it. Never an edit of that movement: a new, linked event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MovementReversed {
    pub reversal_id: ReversalId,
    pub reversed_event_id: EventId,
    pub reversed_kind: ReversedKind,
    /// The signed change to this account: credits > 0, debits < 0.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    pub value_date: DateTime<Utc>,
    /// The transfer both legs of which are reversed, when it was one.
    #[serde(default)]
    pub transfer_id: Option<TransferId>,
    #[serde(default)]
    pub counterparty_account_id: Option<AccountId>,
    pub reason: String,
}

/// A manual correction asked for by its maker (four-eyes, SOX maker-checker): nothing
/// moves until a second person approves it (../shared/API.md, "Four-eyes adjustments").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentRequested {
    pub adjustment_id: AdjustmentId,
    /// Signed: credits > 0, debits < 0.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
    pub reason: String,
    /// When the money is to move for the business; `None`: the approval's booking instant.
    #[serde(default)]
    pub value_date: Option<DateTime<Utc>>,
    /// Where the supporting document is (a ticket, a scan, a statement line).
    #[serde(default)]
    pub evidence: Option<String>,
    /// The maker (the token's `sub`).
    pub requested_by: String,
    /// From this instant it can no longer be approved (`FOLIO_ADJUSTMENT_EXPIRY_DAYS`).
    pub expires_at: DateTime<Utc>,
}

/// An approved adjustment booked on the account: the money moves, and the event carries
/// both identities, maker and checker, into the hash chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentPosted {
    pub adjustment_id: AdjustmentId,
    /// Signed: credits > 0, debits < 0.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    pub value_date: DateTime<Utc>,
    pub reason: String,
    #[serde(default)]
    pub evidence: Option<String>,
    /// The maker.
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// The checker: a supervisor other than the maker.
    pub approved_by: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// An adjustment turned down by a supervisor; nothing moved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentRejected {
    pub adjustment_id: AdjustmentId,
    pub rejected_by: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// An adjustment nobody decided before its `expires_at` (written by the sweep; it could
/// not be approved from `expires_at` on already).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentExpired {
    pub adjustment_id: AdjustmentId,
}

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

/// What an upcaster may know of a stored event besides its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The booking instant: versions written before value dates existed moved the money then.
    pub recorded_at: DateTime<Utc>,
}

/// Turns the payload of one version into the next version's.
type Upcaster = fn(&Value, Stored) -> Result<Value, String>;

/// The event table: `Name(Payload) = current version { from version => upcaster, ... }`.
macro_rules! events {
    ($( $(#[$doc:meta])* $name:ident($payload:ty) = $current:literal { $($from:literal => $upcast:path),* $(,)? } ),* $(,)?) => {
        /// Everything that can happen to an account.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum AccountEvent {
            $( $(#[$doc])* $name($payload), )*
        }

        /// Every event type name, as stored in `event_type` and used in subjects.
        pub const EVENT_TYPES: &[&str] = &[ $( stringify!($name), )* ];

        impl AccountEvent {
            /// The type name, as stored in `event_type`.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $( Self::$name(_) => stringify!($name), )*
                }
            }

            /// The version writers use today. Older versions are upcast by [`Self::decode`].
            pub fn event_version(&self) -> i16 {
                match self {
                    $( Self::$name(_) => $current, )*
                }
            }

            /// The payload as stored (current version).
            pub fn to_payload(&self) -> Value {
                let value = match self {
                    $( Self::$name(e) => serde_json::to_value(e), )*
                };
                // Every field is a string, a UUID, an instant or an option of those.
                value.expect("event payloads serialise to JSON")
            }

            fn current_version(event_type: &str) -> Option<i16> {
                match event_type {
                    $( stringify!($name) => Some($current), )*
                    _ => None,
                }
            }

            fn upcaster(event_type: &str, from: i16) -> Option<Upcaster> {
                match (event_type, from) {
                    $( $( (stringify!($name), $from) => Some($upcast as Upcaster), )* )*
                    _ => None,
                }
            }

            fn read(event_type: &str, event_version: i16, value: Value) -> Result<Self, DecodeError> {
                match event_type {
                    $( stringify!($name) => Ok(Self::$name(parse(event_type, event_version, value)?)), )*
                    _ => Err(DecodeError::Unknown {
                        event_type: event_type.to_string(),
                        event_version,
                    }),
                }
            }
        }
    };
}

events! {
    AccountOpened(AccountOpened) = 2 { 1 => upcast_account_opened_v1 },
    MoneyDeposited(Movement) = 3 { 1 => upcast_money_deposited_v1, 2 => add_value_date },
    MoneyWithdrawn(Movement) = 2 { 1 => add_value_date },
    TransferDebited(TransferDebited) = 2 { 1 => add_value_date },
    TransferCredited(TransferCredited) = 2 { 1 => add_value_date },
    AccountFrozen(StatusChange) = 1 {},
    AccountUnfrozen(StatusChange) = 1 {},
    AccountClosed(StatusChange) = 1 {},
    HoldPlaced(HoldPlaced) = 1 {},
    HoldCaptured(HoldCaptured) = 1 {},
    HoldReleased(HoldReleased) = 1 {},
    HoldExpired(HoldExpired) = 1 {},
    MovementReversed(MovementReversed) = 1 {},
    AdjustmentRequested(AdjustmentRequested) = 1 {},
    AdjustmentPosted(AdjustmentPosted) = 1 {},
    AdjustmentRejected(AdjustmentRejected) = 1 {},
    AdjustmentExpired(AdjustmentExpired) = 1 {},
}

impl AccountEvent {
    /// Reads a stored payload of any version ever written as the current shape, chaining
    /// upcasters from its version to the current one.
    pub fn decode(
        event_type: &str,
        event_version: i16,
        payload: &Value,
        stored: Stored,
    ) -> Result<Self, DecodeError> {
        let unknown = || DecodeError::Unknown {
            event_type: event_type.to_string(),
            event_version,
        };
        let current = Self::current_version(event_type).ok_or_else(unknown)?;
        if event_version < 1 || event_version > current {
            return Err(unknown());
        }
        let mut version = event_version;
        let mut value = payload.clone();
        while version < current {
            let upcast = Self::upcaster(event_type, version).ok_or_else(unknown)?;
            value =
                upcast(&value, stored).map_err(|reason| malformed(event_type, version, reason))?;
            version += 1;
        }
        Self::read(event_type, event_version, value)
    }

    /// The balance the account had right after this event, for events that move money.
    pub fn balance_after(&self) -> Option<Decimal> {
        match self {
            Self::MoneyDeposited(m) | Self::MoneyWithdrawn(m) => Some(m.balance_after),
            Self::TransferDebited(t) => Some(t.balance_after),
            Self::TransferCredited(t) => Some(t.balance_after),
            Self::HoldCaptured(c) => Some(c.balance_after),
            Self::MovementReversed(r) => Some(r.balance_after),
            Self::AdjustmentPosted(a) => Some(a.balance_after),
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
            Self::HoldCaptured(c) => Some(-c.amount),
            Self::MovementReversed(r) => Some(r.amount),
            Self::AdjustmentPosted(a) => Some(a.amount),
            _ => None,
        }
    }

    /// When the money moved for the business, for events that move money.
    pub fn value_date(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::MoneyDeposited(m) | Self::MoneyWithdrawn(m) => Some(m.value_date),
            Self::TransferDebited(t) => Some(t.value_date),
            Self::TransferCredited(t) => Some(t.value_date),
            Self::HoldCaptured(c) => Some(c.value_date),
            Self::MovementReversed(r) => Some(r.value_date),
            Self::AdjustmentPosted(a) => Some(a.value_date),
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
fn upcast_account_opened_v1(payload: &Value, _: Stored) -> Result<Value, String> {
    let currency = currency_of(payload)?;
    Ok(json!({
        "accountId": field(payload, "accountId")?,
        "holder": field(payload, "owner")?,
        "currency": currency.code(),
        "overdraftLimit": currency.zero().to_string(),
    }))
}

/// v1 carried integer minor units (`amountMinor: 1050` for 10.50 USD).
fn upcast_money_deposited_v1(payload: &Value, _: Stored) -> Result<Value, String> {
    let currency = currency_of(payload)?;
    Ok(json!({
        "amount": minor_to_decimal(payload, "amountMinor", currency)?,
        "currency": currency.code(),
        "balanceAfter": minor_to_decimal(payload, "balanceAfterMinor", currency)?,
        "reference": payload.get("reference").cloned().unwrap_or(Value::Null),
    }))
}

/// Movements written before value dates existed moved the money when they were booked.
fn add_value_date(payload: &Value, stored: Stored) -> Result<Value, String> {
    let mut upcast = payload.clone();
    let object = upcast
        .as_object_mut()
        .ok_or("the payload is not an object")?;
    object.insert(
        "valueDate".into(),
        serde_json::to_value(stored.recorded_at).map_err(|e| e.to_string())?,
    );
    Ok(upcast)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::TimeZone;

    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").expect("usd")
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 31, 17, 0, 0)
            .single()
            .expect("instant")
    }

    fn stored() -> Stored {
        Stored {
            recorded_at: Utc
                .with_ymd_and_hms(2026, 4, 2, 9, 0, 0)
                .single()
                .expect("instant"),
        }
    }

    fn samples() -> Vec<AccountEvent> {
        let movement = Movement {
            amount: Decimal::from_str("10.50").expect("dec"),
            currency: usd(),
            balance_after: Decimal::from_str("110.50").expect("dec"),
            reference: Some("rent".into()),
            value_date: at(),
        };
        let hold = HoldId::generate();
        let adjustment = AdjustmentId::generate();
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
                value_date: at(),
            }),
            AccountEvent::TransferCredited(TransferCredited {
                transfer_id: TransferId::generate(),
                from_account_id: AccountId::generate(),
                amount: movement.amount,
                currency: usd(),
                balance_after: movement.balance_after,
                reference: None,
                value_date: at(),
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
            AccountEvent::HoldPlaced(HoldPlaced {
                hold_id: hold,
                amount: movement.amount,
                currency: usd(),
                expires_at: Some(at()),
                reference: Some("card 4242".into()),
            }),
            AccountEvent::HoldCaptured(HoldCaptured {
                hold_id: hold,
                amount: Decimal::from_str("7.00").expect("dec"),
                released_amount: Decimal::from_str("3.50").expect("dec"),
                currency: usd(),
                balance_after: Decimal::from_str("103.50").expect("dec"),
                value_date: at(),
                to_account_id: Some(AccountId::generate()),
                transfer_id: Some(TransferId::generate()),
                reference: None,
            }),
            AccountEvent::HoldReleased(HoldReleased {
                hold_id: hold,
                amount: movement.amount,
                reason: Some("cancelled".into()),
            }),
            AccountEvent::HoldExpired(HoldExpired {
                hold_id: hold,
                amount: movement.amount,
            }),
            AccountEvent::MovementReversed(MovementReversed {
                reversal_id: ReversalId::generate(),
                reversed_event_id: EventId::generate(),
                reversed_kind: ReversedKind::Deposit,
                amount: Decimal::from_str("-10.50").expect("dec"),
                currency: usd(),
                balance_after: Decimal::from_str("100.00").expect("dec"),
                value_date: at(),
                transfer_id: None,
                counterparty_account_id: None,
                reason: "booked twice".into(),
            }),
            AccountEvent::AdjustmentRequested(AdjustmentRequested {
                adjustment_id: adjustment,
                amount: Decimal::from_str("-4.20").expect("dec"),
                currency: usd(),
                reason: "bank fee charged twice".into(),
                value_date: Some(at()),
                evidence: Some("ticket 81".into()),
                requested_by: "maker".into(),
                expires_at: stored().recorded_at,
            }),
            AccountEvent::AdjustmentPosted(AdjustmentPosted {
                adjustment_id: adjustment,
                amount: Decimal::from_str("-4.20").expect("dec"),
                currency: usd(),
                balance_after: Decimal::from_str("95.80").expect("dec"),
                value_date: at(),
                reason: "bank fee charged twice".into(),
                evidence: None,
                requested_by: "maker".into(),
                requested_at: at(),
                approved_by: "checker".into(),
                comment: Some("seen the ticket".into()),
            }),
            AccountEvent::AdjustmentRejected(AdjustmentRejected {
                adjustment_id: adjustment,
                rejected_by: "checker".into(),
                comment: None,
            }),
            AccountEvent::AdjustmentExpired(AdjustmentExpired {
                adjustment_id: adjustment,
            }),
        ]
    }

    #[test]
    fn every_event_round_trips_through_its_current_payload() {
        for event in samples() {
            let payload = event.to_payload();
            let decoded = AccountEvent::decode(
                event.event_type(),
                event.event_version(),
                &payload,
                stored(),
            );
            assert_eq!(decoded, Ok(event));
        }
    }

    #[test]
    fn every_event_type_is_listed_once() {
        let types: Vec<&str> = samples().iter().map(AccountEvent::event_type).collect();
        assert_eq!(types, EVENT_TYPES.to_vec());
    }

    #[test]
    fn amounts_are_stored_as_strings_never_numbers() {
        let payload = samples()[1].to_payload();
        assert_eq!(payload["amount"], json!("10.50"));
        assert_eq!(payload["balanceAfter"], json!("110.50"));
        assert_eq!(payload["valueDate"], json!("2026-03-31T17:00:00Z"));
    }

    #[test]
    fn account_opened_v1_upcasts_owner_to_holder_with_zero_overdraft() {
        let id = AccountId::generate();
        let v1 = json!({ "accountId": id, "owner": "Grace Hopper", "currency": "JPY" });
        let decoded = AccountEvent::decode("AccountOpened", 1, &v1, stored());
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
    fn money_deposited_v1_upcasts_through_v2_to_minor_units_and_a_value_date() {
        let v1 = json!({ "amountMinor": 1050, "currency": "BHD", "balanceAfterMinor": 2_000_500 });
        let Ok(AccountEvent::MoneyDeposited(m)) =
            AccountEvent::decode("MoneyDeposited", 1, &v1, stored())
        else {
            panic!("v1 deposit did not decode");
        };
        assert_eq!(m.amount.to_string(), "1.050");
        assert_eq!(m.balance_after.to_string(), "2000.500");
        assert_eq!(m.reference, None);
        assert_eq!(m.value_date, stored().recorded_at, "moved when booked");
    }

    #[test]
    fn movements_written_before_value_dates_moved_when_they_were_booked() {
        let v1 = json!({ "amount": "5.00", "currency": "USD", "balanceAfter": "5.00", "reference": null });
        for (event_type, version) in [("MoneyDeposited", 2), ("MoneyWithdrawn", 1)] {
            let decoded =
                AccountEvent::decode(event_type, version, &v1, stored()).expect("decodes");
            assert_eq!(
                decoded.value_date(),
                Some(stored().recorded_at),
                "{event_type}"
            );
        }
    }

    #[test]
    fn unknown_types_and_versions_are_errors_not_panics() {
        assert!(matches!(
            AccountEvent::decode("MoneyTeleported", 1, &json!({}), stored()),
            Err(DecodeError::Unknown { .. })
        ));
        assert!(matches!(
            AccountEvent::decode("MoneyWithdrawn", 7, &json!({}), stored()),
            Err(DecodeError::Unknown { .. })
        ));
        assert!(matches!(
            AccountEvent::decode("MoneyWithdrawn", 0, &json!({}), stored()),
            Err(DecodeError::Unknown { .. })
        ));
        assert!(matches!(
            AccountEvent::decode("MoneyWithdrawn", 1, &json!({"amount": 3}), stored()),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
