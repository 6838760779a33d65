//! GraphQL inputs and their parsing into domain commands: each refusal names the field and the rule.

use async_graphql::{InputObject, OneofObject};
use ledger::{
    AccountId, Currency, Hash, PositiveAmount, TransferId, hashing::canonical_json,
    money::parse_limit,
};
use platform::{
    ApiError,
    scalars::{Decimal, Uuid},
};
use rust_decimal::Decimal as Amount;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    commands::{CloseAccount, FreezeAccount, IDEMPOTENCY_KEY_LEN_MAX, UnfreezeAccount},
    domain::{ChangeStatus, Deposit, Holder, OpenAccount, Reason, Reference, Transfer, Withdraw},
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
    #[serde(skip)]
    pub idempotency_key: String,
}

#[derive(InputObject, Serialize)]
pub struct WithdrawInput {
    pub account_id: Uuid,
    /// In the account's currency, with at most its decimal places.
    pub amount: Decimal,
    pub reference: Option<String>,
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
    #[serde(skip)]
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

/// A parsed request: its command, idempotency key, and its content in canonical form (the
/// values as parsed: trimmed, normalised, defaults filled in; without the key or anything
/// Folio generates), which its fingerprint is taken of.
pub(crate) struct Parsed<C> {
    pub command: C,
    pub key: String,
    pub canonical: Value,
}

/// Identifies a request's content (without its idempotency key): a retry has the same
/// fingerprint whenever it asks for the same thing, however it is spelt (`"10"` or
/// `"10.00"`, `"usd"` or `"USD"`, an omitted default or the default written out).
pub(crate) fn fingerprint(command_type: &str, canonical: &Value) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(command_type.as_bytes());
    hasher.update([0]);
    hasher.update(canonical_json(canonical).as_bytes());
    Hash::from_bytes(hasher.finalize().into())
}

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
) -> Value {
    json!({
        "accountId": account_id,
        "amount": normalized(amount.value()),
        "reference": reference_text(reference),
    })
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
        };
        let canonical = movement_canonical(command.account_id, command.amount, &command.reference);
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
        };
        let canonical = movement_canonical(command.account_id, command.amount, &command.reference);
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
        };
        let canonical = json!({
            "fromAccountId": transfer.from,
            "toAccountId": transfer.to,
            "amount": normalized(transfer.amount.value()),
            "reference": reference_text(&transfer.reference),
        });
        Ok(Parsed {
            command: transfer,
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
            idempotency_key: key.into(),
        }
    }

    fn print(input: &DepositInput) -> Hash {
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
