//! GraphQL object types both services show, defined once so that the merged schema of
//! `folio up` has one of each (async-graphql refuses two Rust types under one GraphQL
//! name): the four-eyes `Adjustment` (the accounts service answers mutations with it, the
//! reporting service lists it) and the per-currency `CurrencyTotal` (balances as of a date,
//! and the period report). Shapes are ../shared/API.md's.

use async_graphql::SimpleObject;

use crate::{
    enums::AdjustmentStatus,
    scalars::{DateTime, Decimal, Uuid},
};

/// A manual correction under maker-checker (SOX): requested by one person, posted only
/// once a second person approves it (../shared/API.md, "Four-eyes adjustments").
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct Adjustment {
    pub id: Uuid,
    pub account_id: Uuid,
    /// Signed, in the account's currency: credits > 0, debits < 0.
    pub amount: Decimal,
    pub reason: String,
    /// When the money moves for the business; null: the approval's booking instant.
    pub value_date: Option<DateTime>,
    /// Where the supporting document is.
    pub evidence: Option<String>,
    pub status: AdjustmentStatus,
    /// The maker (the requesting token's `sub`).
    pub requested_by: String,
    pub requested_at: DateTime,
    /// From this instant a pending adjustment can no longer be approved.
    pub expires_at: DateTime,
    /// The checker who approved or rejected it; null while pending or once expired.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime>,
    pub comment: Option<String>,
}

/// The sum of one currency's balances.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct CurrencyTotal {
    pub currency: String,
    pub total: Decimal,
    /// How many accounts the total is over.
    pub accounts: i64,
}
