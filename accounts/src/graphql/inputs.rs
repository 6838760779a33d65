//! GraphQL inputs and their parsing into domain commands: each refusal names the field and the rule.

use async_graphql::{InputObject, OneofObject};
use ledger::{
    AccountId, AdjustmentId, Currency, EventId, HoldId, PositiveAmount, ReversalId, TransferId,
    money::parse_limit,
};
use platform::{
    ApiError,
    scalars::{DateTime, Decimal, Uuid},
};
use rust_decimal::Decimal as Amount;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    commands::{
        CloseAccount, FreezeAccount, IDEMPOTENCY_KEY_LEN_MAX, ReversalTarget, UnfreezeAccount,
    },
    domain::{
        AdjustmentAmount, ChangeStatus, Deposit, Evidence, Holder, OpenAccount, PlaceHold, Reason,
        Reference, Transfer, Withdraw,
    },
};

#[derive(InputObject, Serialize)]
pub struct OpenAccountInput {
    /// Chosen by the client, or generated when omitted.
    pub account_id: Option<Uuid>,
    pub holder: String,
    /// ISO 4217 code, e.g. USD.
    pub currency: String,
    /// How far below zero the balance may go; 0 when omitted.
    pub overdraft_limit: Option<Decimal>,
    #[serde(skip)]
    pub idempotency_key: String,
}

#[derive(InputObject, Serialize)]
pub struct DepositInput {
    pub account_id: Uuid,
    /// In the account's currency, with at most its decimal places.
    pub amount: Decimal,
    pub reference: Option<String>,
    /// When the money moved for the business (default: the booking instant); at most
    /// `FOLIO_BACKDATE_DAYS_MAX` days back, never in the future.
    pub value_date: Option<DateTime>,
    #[serde(skip)]
    pub idempotency_key: String,
}

#[derive(InputObject, Serialize)]
pub struct WithdrawInput {
    pub account_id: Uuid,
    /// In the account's currency, with at most its decimal places.
    pub amount: Decimal,
    pub reference: Option<String>,
    /// When the money moved for the business (default: the booking instant).
    pub value_date: Option<DateTime>,
    #[serde(skip)]
    pub idempotency_key: String,
}

#[derive(InputObject, Serialize)]
pub struct TransferInput {
    pub from_account_id: Uuid,
    pub to_account_id: Uuid,
    /// In the accounts' currency, with at most its decimal places.
    pub amount: Decimal,
    pub reference: Option<String>,
    /// When the money moved for the business (default: the booking instant).
    pub value_date: Option<DateTime>,
    #[serde(skip)]
    pub idempotency_key: String,
}

/// Reserve funds on an account (`placeHold`, ../shared/API.md "Holds").
#[derive(InputObject)]
pub struct PlaceHoldInput {
    pub account_id: Uuid,
    /// Positive, in the account's currency, at most its available balance (plus overdraft).
    pub amount: Decimal,
    /// Chosen by the client (e.g. the card authorisation's id), or generated when omitted.
    pub hold_id: Option<Uuid>,
    /// From this instant on the hold counts for nothing and cannot be captured; must be in
    /// the future. Never expires when omitted.
    pub expires_at: Option<DateTime>,
    pub reference: Option<String>,
    pub idempotency_key: String,
}

/// Take a hold (`captureHold`): a withdrawal, or a transfer to `toAccountId`.
#[derive(InputObject)]
pub struct CaptureHoldInput {
    pub hold_id: Uuid,
    /// At most the held amount (default: all of it); the rest is released.
    pub amount: Option<Decimal>,
    /// With it the capture is a transfer to this account; without it a withdrawal.
    pub to_account_id: Option<Uuid>,
    pub reference: Option<String>,
    /// When the money moved for the business (default: the booking instant).
    pub value_date: Option<DateTime>,
    pub idempotency_key: String,
}

/// Free a hold without taking anything (`releaseHold`).
#[derive(InputObject)]
pub struct ReleaseHoldInput {
    pub hold_id: Uuid,
    /// Why; recorded in the event for the audit trail.
    pub reason: Option<String>,
    pub idempotency_key: String,
}

/// Undo a movement by compensating events (`reverse`, supervisor): exactly one of
/// `eventId` (a deposit, a withdrawal or a hold capture) and `transferId`.
#[derive(InputObject)]
pub struct ReverseInput {
    pub event_id: Option<Uuid>,
    pub transfer_id: Option<Uuid>,
    /// Why; recorded in every compensating event.
    pub reason: String,
    pub idempotency_key: String,
}

#[derive(InputObject, Serialize)]
pub struct AccountStatusInput {
    pub account_id: Uuid,
    /// Why; recorded in the event for the audit trail.
    pub reason: String,
    #[serde(skip)]
    pub idempotency_key: String,
}

/// The most operations one `executeBatch` may carry (../shared/API.md, "Batches").
pub const BATCH_OPERATIONS_MAX: usize = 1_000;

/// A batch of deposits, withdrawals and transfers.
#[derive(InputObject)]
pub struct BatchInput {
    /// At most 1,000, each with its own idempotency key.
    pub operations: Vec<BatchOperationInput>,
    /// true: all or none; false: each stands alone.
    pub atomic: bool,
}

/// Exactly one operation.
#[derive(OneofObject)]
pub enum BatchOperationInput {
    Deposit(DepositInput),
    Withdraw(WithdrawInput),
    Transfer(TransferInput),
}

/// Ask for a four-eyes adjustment (`requestAdjustment`, teller or supervisor).
#[derive(InputObject)]
pub struct RequestAdjustmentInput {
    pub account_id: Uuid,
    /// Signed: credits > 0, debits < 0 (a leading `-`), never zero.
    pub amount: Decimal,
    /// Why; recorded in the request and in the posting.
    pub reason: String,
    /// When the money is to move for the business (default: the approval's booking instant).
    pub value_date: Option<DateTime>,
    /// Where the supporting document is (a ticket, a scan, a statement line).
    pub evidence: Option<String>,
    pub idempotency_key: String,
}

/// Approve or reject an adjustment (`approveAdjustment`, `rejectAdjustment`, supervisor).
#[derive(InputObject)]
pub struct AdjustmentDecisionInput {
    pub adjustment_id: Uuid,
    /// Recorded with the decision.
    pub comment: Option<String>,
    pub idempotency_key: String,
}

/// A parsed request: its command, idempotency key, and its content in canonical form (the
/// values as parsed: trimmed, normalised, defaults filled in; without the key or anything
/// Folio generates), which its fingerprint is taken of.
pub(crate) struct Parsed<C> {
    pub command: C,
    pub key: String,
    pub canonical: Value,
}

impl<C> Parsed<C> {
    /// The same request, its command turned into another (the edge completes a command
    /// with what only the store knows, e.g. which account a hold is on).
    pub fn map<D>(self, f: impl FnOnce(C) -> D) -> Parsed<D> {
        Parsed {
            command: f(self.command),
            key: self.key,
            canonical: self.canonical,
        }
    }
}

pub(crate) use crate::commands::fingerprint;

fn normalized(value: Amount) -> String {
    value.normalize().to_string()
}

fn reference_text(reference: &Option<Reference>) -> Value {
    reference
        .as_ref()
        .map(|r| r.as_str())
        .filter(|r| !r.is_empty())
        .map_or(Value::Null, |r| Value::String(r.to_string()))
}

/// `base.name`: the path of an input field as the client wrote it.
pub(crate) fn path(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

fn idempotency_key(base: &str, raw: &str) -> Result<String, ApiError> {
    let field = path(base, "idempotencyKey");
    let key = raw.trim();
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_LEN_MAX {
        return Err(ApiError::validation(
            &field,
            format!("must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} characters"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(ApiError::validation(
            &field,
            "must not contain control characters",
        ));
    }
    Ok(key.to_string())
}

fn amount(base: &str, value: Decimal) -> Result<PositiveAmount, ApiError> {
    PositiveAmount::parse(value.0).map_err(|e| ApiError::invalid_amount(&path(base, "amount"), e))
}

fn reference(base: &str, raw: &Option<String>) -> Result<Option<Reference>, ApiError> {
    raw.as_deref()
        .map(Reference::parse)
        .transpose()
        .map_err(|e| ApiError::validation(&path(base, "reference"), e))
}

impl OpenAccountInput {
    /// The command and idempotency key; `base` is the input's path (`input`).
    pub(crate) fn parse(&self, base: &str) -> Result<Parsed<OpenAccount>, ApiError> {
        let key = idempotency_key(base, &self.idempotency_key)?;
        let holder = Holder::parse(&self.holder)
            .map_err(|e| ApiError::validation(&path(base, "holder"), e))?;
        let currency = Currency::parse(&self.currency)
            .map_err(|e| ApiError::validation(&path(base, "currency"), e))?;
        let overdraft_limit =
            parse_limit(self.overdraft_limit.map_or(Amount::ZERO, |d| d.0), currency)
                .map_err(|e| ApiError::invalid_amount(&path(base, "overdraftLimit"), e))?;
        let command = OpenAccount {
            account_id: self
                .account_id
                .map(|id| AccountId::from_uuid(id.0))
                .unwrap_or_else(AccountId::generate),
            holder,
            currency,
            overdraft_limit,
        };
        let canonical = json!({
            "accountId": self.account_id.map(|id| id.0),
            "holder": command.holder.as_str(),
            "currency": command.currency.code(),
            "overdraftLimit": normalized(command.overdraft_limit),
        });
        Ok(Parsed {
            command,
            key,
            canonical,
        })
    }
}

fn movement_canonical(
    account_id: AccountId,
    amount: PositiveAmount,
    reference: &Option<Reference>,
    value_date: Option<chrono::DateTime<chrono::Utc>>,
) -> Value {
    with_value_date(
        json!({
            "accountId": account_id,
            "amount": normalized(amount.value()),
            "reference": reference_text(reference),
        }),
        value_date,
    )
}

/// Adds `valueDate` to a canonical form only when given, so a request without one keeps
/// the fingerprint it had before value dates existed (a retry across the upgrade).
fn with_value_date(
    mut canonical: Value,
    value_date: Option<chrono::DateTime<chrono::Utc>>,
) -> Value {
    if let (Some(date), Value::Object(map)) = (value_date, &mut canonical) {
        map.insert("valueDate".into(), json!(date));
    }
    canonical
}

fn optional_uuid(id: Option<Uuid>) -> Value {
    id.map_or(Value::Null, |id| Value::String(id.0.to_string()))
}

/// The parts a deposit and a withdrawal share.
fn movement(
    base: &str,
    account_id: Uuid,
    value: Decimal,
    raw_reference: &Option<String>,
    raw_key: &str,
) -> Result<(AccountId, PositiveAmount, Option<Reference>, String), ApiError> {
    let key = idempotency_key(base, raw_key)?;
    Ok((
        AccountId::from_uuid(account_id.0),
        amount(base, value)?,
        reference(base, raw_reference)?,
        key,
    ))
}

impl DepositInput {
    pub(crate) fn parse(&self, base: &str) -> Result<Parsed<Deposit>, ApiError> {
        let (account_id, amount, reference, key) = movement(
            base,
            self.account_id,
            self.amount,
            &self.reference,
            &self.idempotency_key,
        )?;
        let command = Deposit {
            account_id,
            amount,
            reference,
            value_date: self.value_date.map(|d| d.0),
        };
        let canonical = movement_canonical(
            command.account_id,
            command.amount,
            &command.reference,
            command.value_date,
        );
        Ok(Parsed {
            command,
            key,
            canonical,
        })
    }
}

impl WithdrawInput {
    pub(crate) fn parse(&self, base: &str) -> Result<Parsed<Withdraw>, ApiError> {
        let (account_id, amount, reference, key) = movement(
            base,
            self.account_id,
            self.amount,
            &self.reference,
            &self.idempotency_key,
        )?;
        let command = Withdraw {
            account_id,
            amount,
            reference,
            value_date: self.value_date.map(|d| d.0),
        };
        let canonical = movement_canonical(
            command.account_id,
            command.amount,
            &command.reference,
            command.value_date,
        );
        Ok(Parsed {
            command,
            key,
            canonical,
        })
    }
}

impl TransferInput {
    pub(crate) fn parse(&self, base: &str) -> Result<Parsed<Transfer>, ApiError> {
        let key = idempotency_key(base, &self.idempotency_key)?;
        let transfer = Transfer {
            transfer_id: TransferId::generate(),
            from: AccountId::from_uuid(self.from_account_id.0),
            to: AccountId::from_uuid(self.to_account_id.0),
            amount: amount(base, self.amount)?,
            reference: reference(base, &self.reference)?,
            value_date: self.value_date.map(|d| d.0),
        };
        let canonical = with_value_date(
            json!({
                "fromAccountId": transfer.from,
                "toAccountId": transfer.to,
                "amount": normalized(transfer.amount.value()),
                "reference": reference_text(&transfer.reference),
            }),
            transfer.value_date,
        );
        Ok(Parsed {
            command: transfer,
            key,
            canonical,
        })
    }
}

impl PlaceHoldInput {
    pub(crate) fn parse(&self, base: &str) -> Result<Parsed<PlaceHold>, ApiError> {
        let key = idempotency_key(base, &self.idempotency_key)?;
        let command = PlaceHold {
            account_id: AccountId::from_uuid(self.account_id.0),
            hold_id: self
                .hold_id
                .map(|id| HoldId::from_uuid(id.0))
                .unwrap_or_else(HoldId::generate),
            amount: amount(base, self.amount)?,
            expires_at: self.expires_at.map(|d| d.0),
            reference: reference(base, &self.reference)?,
        };
        let canonical = json!({
            "accountId": command.account_id,
            "amount": normalized(command.amount.value()),
            "holdId": optional_uuid(self.hold_id),
            "expiresAt": command.expires_at,
            "reference": reference_text(&command.reference),
        });
        Ok(Parsed {
            command,
            key,
            canonical,
        })
    }
}

/// A capture as parsed, before the edge finds which account holds the hold.
pub(crate) struct CaptureRequest {
    pub hold_id: HoldId,
    pub amount: Option<PositiveAmount>,
    pub to: Option<AccountId>,
    pub reference: Option<Reference>,
    pub value_date: Option<chrono::DateTime<chrono::Utc>>,
}

impl CaptureHoldInput {
    pub(crate) fn parse(&self, base: &str) -> Result<Parsed<CaptureRequest>, ApiError> {
        let key = idempotency_key(base, &self.idempotency_key)?;
        let command = CaptureRequest {
            hold_id: HoldId::from_uuid(self.hold_id.0),
            amount: self.amount.map(|a| amount(base, a)).transpose()?,
            to: self.to_account_id.map(|id| AccountId::from_uuid(id.0)),
            reference: reference(base, &self.reference)?,
            value_date: self.value_date.map(|d| d.0),
        };
        let canonical = json!({
            "holdId": command.hold_id,
            "amount": command.amount.map(|a| normalized(a.value())),
            "toAccountId": command.to,
            "reference": reference_text(&command.reference),
            "valueDate": command.value_date,
        });
        Ok(Parsed {
            command,
            key,
            canonical,
        })
    }
}

impl ReleaseHoldInput {
    pub(crate) fn parse(&self, base: &str) -> Result<Parsed<(HoldId, Option<Reason>)>, ApiError> {
        let key = idempotency_key(base, &self.idempotency_key)?;
        let reason = self
            .reason
            .as_deref()
            .map(Reason::parse)
            .transpose()
            .map_err(|e| ApiError::validation(&path(base, "reason"), e))?;
        let canonical = json!({
            "holdId": self.hold_id.0,
            "reason": reason.as_ref().map(|r| r.as_str()),
        });
        Ok(Parsed {
            command: (HoldId::from_uuid(self.hold_id.0), reason),
            key,
            canonical,
        })
    }
}

/// A reversal as parsed, before the edge finds the movement it names.
pub(crate) struct ReverseRequest {
    pub reversal_id: ReversalId,
    pub target: ReversalTarget,
    pub reason: Reason,
}

impl ReverseInput {
    pub(crate) fn parse(&self, base: &str) -> Result<Parsed<ReverseRequest>, ApiError> {
        let key = idempotency_key(base, &self.idempotency_key)?;
        let target = match (self.event_id, self.transfer_id) {
            (Some(event), None) => ReversalTarget::Event(EventId::from_uuid(event.0)),
            (None, Some(transfer)) => ReversalTarget::Transfer(TransferId::from_uuid(transfer.0)),
            (Some(_), Some(_)) => {
                return Err(ApiError::validation(
                    &path(base, "transferId"),
                    "give exactly one of eventId and transferId, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::validation(
                    &path(base, "eventId"),
                    "give exactly one of eventId (a deposit, withdrawal or hold capture) and transferId",
                ));
            }
        };
        let reason = Reason::parse(&self.reason)
            .map_err(|e| ApiError::validation(&path(base, "reason"), e))?;
        let canonical = json!({
            "eventId": optional_uuid(self.event_id),
            "transferId": optional_uuid(self.transfer_id),
            "reason": reason.as_str(),
        });
        Ok(Parsed {
            command: ReverseRequest {
                reversal_id: ReversalId::generate(),
                target,
                reason,
            },
            key,
            canonical,
        })
    }
}

/// An adjustment request as parsed, before the edge adds the maker and the expiry.
pub(crate) struct AdjustmentRequest {
    pub account_id: AccountId,
    pub amount: AdjustmentAmount,
    pub reason: Reason,
    pub value_date: Option<chrono::DateTime<chrono::Utc>>,
    pub evidence: Option<Evidence>,
}

impl RequestAdjustmentInput {
    pub(crate) fn parse(&self, base: &str) -> Result<Parsed<AdjustmentRequest>, ApiError> {
        let key = idempotency_key(base, &self.idempotency_key)?;
        let amount = AdjustmentAmount::parse(self.amount.0)
            .map_err(|e| ApiError::invalid_amount(&path(base, "amount"), e))?;
        let reason = Reason::parse(&self.reason)
            .map_err(|e| ApiError::validation(&path(base, "reason"), e))?;
        let evidence = self
            .evidence
            .as_deref()
            .map(Evidence::parse)
            .transpose()
            .map_err(|e| ApiError::validation(&path(base, "evidence"), e))?
            .filter(|e| !e.as_str().is_empty());
        let value_date = self.value_date.map(|d| d.0);
        let canonical = json!({
            "accountId": self.account_id.0,
            "amount": normalized(self.amount.0),
            "reason": reason.as_str(),
            "valueDate": value_date,
            "evidence": evidence.as_ref().map(|e| e.as_str()),
        });
        Ok(Parsed {
            command: AdjustmentRequest {
                account_id: AccountId::from_uuid(self.account_id.0),
                amount,
                reason,
                value_date,
                evidence,
            },
            key,
            canonical,
        })
    }
}

impl AdjustmentDecisionInput {
    pub(crate) fn parse(
        &self,
        base: &str,
    ) -> Result<Parsed<(AdjustmentId, Option<Reason>)>, ApiError> {
        let key = idempotency_key(base, &self.idempotency_key)?;
        let comment = self
            .comment
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(Reason::parse)
            .transpose()
            .map_err(|e| ApiError::validation(&path(base, "comment"), e))?;
        let canonical = json!({
            "adjustmentId": self.adjustment_id.0,
            "comment": comment.as_ref().map(|c| c.as_str()),
        });
        Ok(Parsed {
            command: (AdjustmentId::from_uuid(self.adjustment_id.0), comment),
            key,
            canonical,
        })
    }
}

impl AccountStatusInput {
    fn parse<C>(&self, base: &str, wrap: fn(ChangeStatus) -> C) -> Result<Parsed<C>, ApiError> {
        let key = idempotency_key(base, &self.idempotency_key)?;
        let reason = Reason::parse(&self.reason)
            .map_err(|e| ApiError::validation(&path(base, "reason"), e))?;
        let canonical = json!({ "accountId": self.account_id.0, "reason": reason.as_str() });
        Ok(Parsed {
            command: wrap(ChangeStatus {
                account_id: AccountId::from_uuid(self.account_id.0),
                reason,
            }),
            key,
            canonical,
        })
    }

    pub(crate) fn freeze(&self, base: &str) -> Result<Parsed<FreezeAccount>, ApiError> {
        self.parse(base, FreezeAccount)
    }

    pub(crate) fn unfreeze(&self, base: &str) -> Result<Parsed<UnfreezeAccount>, ApiError> {
        self.parse(base, UnfreezeAccount)
    }

    pub(crate) fn close(&self, base: &str) -> Result<Parsed<CloseAccount>, ApiError> {
        self.parse(base, CloseAccount)
    }
}

#[cfg(test)]
mod tests {
    use ledger::ErrorCode;

    use super::*;

    fn deposit(amount: &str, key: &str) -> DepositInput {
        DepositInput {
            account_id: Uuid(uuid::Uuid::nil()),
            amount: Decimal(amount.parse().expect("decimal")),
            reference: None,
            value_date: None,
            idempotency_key: key.into(),
        }
    }

    fn print(input: &DepositInput) -> ledger::Hash {
        let parsed = input.parse("input").expect("a valid deposit");
        fingerprint("deposit", &parsed.canonical)
    }

    #[test]
    fn the_fingerprint_ignores_the_idempotency_key_but_not_the_content() {
        let one = print(&deposit("10", "a"));
        assert_eq!(one, print(&deposit("10", "b")));
        assert_eq!(
            one,
            print(&deposit("10.00", "a")),
            "the parsed amount counts, not its spelling"
        );
        assert_ne!(one, print(&deposit("11", "a")));
        let canonical = deposit("10", "a").parse("input").expect("valid").canonical;
        assert_ne!(one, fingerprint("withdraw", &canonical));
    }

    #[test]
    fn an_opening_spelt_differently_is_the_same_request() {
        let input = |currency: &str, holder: &str, limit: Option<&str>| OpenAccountInput {
            account_id: None,
            holder: holder.into(),
            currency: currency.into(),
            overdraft_limit: limit.map(|l| Decimal(l.parse().expect("decimal"))),
            idempotency_key: "k".into(),
        };
        let print = |input: OpenAccountInput| {
            fingerprint(
                "openAccount",
                &input.parse("input").expect("valid").canonical,
            )
        };
        let plain = print(input("USD", "Zoe", None));
        assert_eq!(plain, print(input("usd", "Zoe", None)));
        assert_eq!(plain, print(input("USD", "  Zoe ", None)));
        assert_eq!(plain, print(input("USD", "Zoe", Some("0"))));
        assert_eq!(plain, print(input("USD", "Zoe", Some("0.00"))));
        assert_ne!(plain, print(input("USD", "Zoe", Some("1"))));
    }

    #[test]
    fn refusals_name_the_field_and_code() {
        let Err(error) = deposit("0", "k").parse("input").map(|p| p.key) else {
            panic!("zero amount accepted");
        };
        assert_eq!(error.code, ErrorCode::InvalidAmount);
        assert_eq!(error.field.as_deref(), Some("input.amount"));

        let Err(error) = deposit("1", " ").parse("input").map(|p| p.key) else {
            panic!("blank key accepted");
        };
        assert_eq!(error.code, ErrorCode::Validation);
        assert_eq!(error.field.as_deref(), Some("input.idempotencyKey"));
        assert!(
            error.client_message().starts_with("input.idempotencyKey: "),
            "{}",
            error.message
        );
    }

    #[test]
    fn an_unknown_currency_is_a_validation_error_naming_currency() {
        let input = OpenAccountInput {
            account_id: None,
            holder: "Ada".into(),
            currency: "ABC".into(),
            overdraft_limit: None,
            idempotency_key: "k".into(),
        };
        let Err(error) = input.parse("input").map(|p| p.key) else {
            panic!("unknown currency accepted");
        };
        assert_eq!(error.code, ErrorCode::Validation);
        assert_eq!(error.field.as_deref(), Some("input.currency"));
    }
}
