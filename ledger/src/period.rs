//! The signed period report (../shared/API.md, "Period close"; DESIGN.md "Period close"):
//! every account's balance at the period's end, the totals per currency, how many events
//! the close covers and the global digest over them, signed with the checkpoint key.
//!
//! The file is canonical JSON ([`crate::hashing::canonical_json`]: keys sorted, no
//! whitespace), so the same report always has the same bytes. The signature covers
//! `folio.period-report.v1\0` followed by the canonical bytes of the report without its
//! `keyId` and `signature`. Balances are shown with exactly their currency's minor units,
//! accounts in id order and totals in currency order, so recomputing the report from the
//! events alone gives the same bytes (`folio verify-report`).

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{AccountId, Currency, Hash, hashing::canonical_json, integrity::key_id};

/// The format name every period report carries.
pub const PERIOD_REPORT_FORMAT: &str = "folio.period-report.v1";
const PERIOD_REPORT_DOMAIN: &[u8] = b"folio.period-report.v1\0";

/// One account's balance at the period's end (value dates at or before it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeriodBalance {
    pub account_id: AccountId,
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub balance: Decimal,
}

/// The sum of one currency's balances at the period's end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeriodTotal {
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    pub accounts: i64,
}

/// The report a close signs: what the ledger held for the period when it was closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeriodReport {
    pub format: String,
    /// The last instant of the period, inclusive.
    pub period_end: DateTime<Utc>,
    pub closed_at: DateTime<Utc>,
    pub closed_by: String,
    /// The last event the close covers, in publication order `(tx_id, position)`: the
    /// transaction id as a decimal string, and the position (0 and "0" for an empty store).
    pub through_tx_id: String,
    pub through_position: i64,
    /// How many events the close covers (every event up to `through`).
    pub event_count: i64,
    /// The global digest over those events (`integrity::fold_digest`, from zero).
    pub digest: Hash,
    pub accounts: Vec<PeriodBalance>,
    pub totals: Vec<PeriodTotal>,
}

/// A period report with its signature: the file `GET /reports/period.json` serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedPeriodReport {
    #[serde(flatten)]
    pub report: PeriodReport,
    pub key_id: String,
    /// Ed25519 over the domain and the report's canonical bytes, as hex.
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeriodReportError {
    #[error("not a period report: {0}")]
    Malformed(String),
    #[error("format {0:?} is not {PERIOD_REPORT_FORMAT}")]
    Format(String),
    #[error("signed with key {found}, not with the key given ({expected})")]
    WrongKey { found: String, expected: String },
    #[error("the signature does not match the report: it was changed after it was signed")]
    BadSignature,
    #[error(
        "the file is not byte for byte the report as it was served: content or formatting was added or changed (the signed file is canonical JSON and one final newline)"
    )]
    NotAsServed,
}

impl PeriodReport {
    /// The canonical bytes of the report (what is compared byte for byte).
    pub fn canonical(&self) -> String {
        let value = serde_json::to_value(self).expect("a period report serialises to JSON");
        canonical_json(&value)
    }

    fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = PERIOD_REPORT_DOMAIN.to_vec();
        bytes.extend_from_slice(self.canonical().as_bytes());
        bytes
    }

    /// Signs the report with the checkpoint key.
    pub fn sign(self, key: &SigningKey) -> SignedPeriodReport {
        let signature = hex::encode(key.sign(&self.signing_bytes()).to_bytes());
        SignedPeriodReport {
            key_id: key_id(&key.verifying_key()),
            signature,
            report: self,
        }
    }
}

impl SignedPeriodReport {
    /// The file's bytes: canonical JSON and a final newline.
    pub fn to_file(&self) -> String {
        let value = serde_json::to_value(self).expect("a period report serialises to JSON");
        format!("{}\n", canonical_json(&value))
    }

    /// Reads a file written by [`Self::to_file`] (any JSON spelling of it).
    pub fn parse(text: &str) -> Result<Self, PeriodReportError> {
        serde_json::from_str(text).map_err(|e| PeriodReportError::Malformed(e.to_string()))
    }

    /// Reads a filed report that must be exactly the bytes [`Self::to_file`] gives: a field
    /// the signature does not cover, or any other spelling, is NotAsServed, so that what an
    /// auditor keeps is only what was signed.
    pub fn parse_file(text: &str) -> Result<Self, PeriodReportError> {
        let signed = Self::parse(text)?;
        if signed.to_file() != text {
            return Err(PeriodReportError::NotAsServed);
        }
        Ok(signed)
    }

    /// Checks the signature with `key` alone (nothing about the store).
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), PeriodReportError> {
        if self.report.format != PERIOD_REPORT_FORMAT {
            return Err(PeriodReportError::Format(self.report.format.clone()));
        }
        let expected = key_id(key);
        if self.key_id != expected {
            return Err(PeriodReportError::WrongKey {
                found: self.key_id.clone(),
                expected,
            });
        }
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(PeriodReportError::BadSignature)?;
        key.verify(&self.report.signing_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| PeriodReportError::BadSignature)
    }
}

/// The totals per currency of `balances`, in currency order.
pub fn totals_of(balances: &[PeriodBalance]) -> Vec<PeriodTotal> {
    let mut totals: std::collections::BTreeMap<&str, PeriodTotal> = Default::default();
    for balance in balances {
        let total = totals
            .entry(balance.currency.code())
            .or_insert_with(|| PeriodTotal {
                currency: balance.currency,
                total: balance.currency.zero(),
                accounts: 0,
            });
        total.total = balance.currency.display(total.total + balance.balance);
        total.accounts += 1;
    }
    totals.into_values().collect()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::TimeZone;

    use super::*;

    fn report() -> PeriodReport {
        let usd = Currency::parse("USD").expect("usd");
        let accounts = vec![
            PeriodBalance {
                account_id: AccountId::generate(),
                currency: usd,
                balance: Decimal::from_str("10.00").expect("dec"),
            },
            PeriodBalance {
                account_id: AccountId::generate(),
                currency: usd,
                balance: Decimal::from_str("-2.50").expect("dec"),
            },
        ];
        PeriodReport {
            format: PERIOD_REPORT_FORMAT.into(),
            period_end: Utc
                .with_ymd_and_hms(2026, 3, 31, 23, 59, 59)
                .single()
                .expect("t"),
            closed_at: Utc
                .with_ymd_and_hms(2026, 4, 2, 9, 0, 0)
                .single()
                .expect("t"),
            closed_by: "controller".into(),
            through_tx_id: "812".into(),
            through_position: 40,
            event_count: 40,
            digest: Hash::from_bytes([7; 32]),
            totals: totals_of(&accounts),
            accounts,
        }
    }

    #[test]
    fn a_signed_report_verifies_with_the_public_key_and_survives_its_file() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let signed = report().sign(&key);
        let read = SignedPeriodReport::parse(&signed.to_file()).expect("parses");
        assert_eq!(read, signed);
        assert_eq!(read.verify_signature(&key.verifying_key()), Ok(()));
        assert_eq!(read.report.totals[0].total.to_string(), "7.50");
    }

    #[test]
    fn a_filed_report_holds_nothing_but_the_signed_bytes() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let file = report().sign(&key).to_file();
        assert!(SignedPeriodReport::parse_file(&file).is_ok());
        let with_note = file.replacen('{', "{\"note\":\"hello\",", 1);
        assert_eq!(
            SignedPeriodReport::parse_file(&with_note),
            Err(PeriodReportError::NotAsServed)
        );
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(&file).expect("JSON"),
        )
        .expect("pretty");
        assert_eq!(
            SignedPeriodReport::parse_file(&pretty),
            Err(PeriodReportError::NotAsServed)
        );
    }

    #[test]
    fn a_changed_balance_breaks_the_signature() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let file = report()
            .sign(&key)
            .to_file()
            .replace("\"10.00\"", "\"11.00\"");
        let read = SignedPeriodReport::parse(&file).expect("parses");
        assert_eq!(
            read.verify_signature(&key.verifying_key()),
            Err(PeriodReportError::BadSignature)
        );
    }
}
