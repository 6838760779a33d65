//! GraphQL inputs of the reporting queries and their parsing into query filters: each
//! refusal names the field and the rule.

use async_graphql::InputObject;
use platform::{
    access_log::Outcome,
    scalars::{DateTime, Uuid},
};
use serde::Serialize;

use crate::queries::{self, QueryError};

/// Which events to list; every criterion given must hold.
#[derive(InputObject, Serialize, Clone, Debug, Default)]
#[graphql(name = "AuditFilter")]
#[serde(rename_all = "camelCase")]
pub struct AuditFilterInput {
    pub account_id: Option<Uuid>,
    /// The actor (token subject) that caused the events.
    pub actor: Option<String>,
    /// Event type names, e.g. MoneyDeposited; any of them matches.
    pub event_types: Option<Vec<String>>,
    pub correlation_id: Option<String>,
    /// Recorded at or after this instant.
    pub from: Option<DateTime>,
    /// Recorded at or before this instant.
    pub to: Option<DateTime>,
}

impl AuditFilterInput {
    pub(crate) fn parse(&self) -> Result<queries::AuditFilter, QueryError> {
        queries::AuditFilter::parse(
            self.account_id.map(|id| id.0),
            self.actor.as_deref(),
            self.event_types.as_deref(),
            self.correlation_id.as_deref(),
            self.from.map(|t| t.0),
            self.to.map(|t| t.0),
        )
    }
}

/// Which accesses to list; every criterion given must hold.
#[derive(InputObject, Serialize, Clone, Debug, Default)]
#[graphql(name = "AccessLogFilter")]
#[serde(rename_all = "camelCase")]
pub struct AccessLogFilterInput {
    pub actor: Option<String>,
    /// The query name, e.g. statement, auditTrail or audit.csv.
    pub query: Option<String>,
    /// Accessed at or after this instant.
    pub from: Option<DateTime>,
    /// Accessed at or before this instant.
    pub to: Option<DateTime>,
    /// Reads of this account (its `accountId` argument, or in the read's filter).
    pub account_id: Option<Uuid>,
    /// The conversation the read belonged to (`X-Correlation-Id`).
    pub correlation_id: Option<String>,
    /// Only reads that were let in (GRANTED) or only attempts turned away (REFUSED).
    pub outcome: Option<Outcome>,
}

impl AccessLogFilterInput {
    pub(crate) fn parse(&self) -> Result<queries::AccessLogFilter, QueryError> {
        queries::AccessLogFilter::parse(
            queries::AccessCriteria {
                actor: self.actor.as_deref(),
                query: self.query.as_deref(),
                account_id: self.account_id.map(|id| id.0),
                correlation_id: self.correlation_id.as_deref(),
                outcome: self.outcome,
            },
            self.from.map(|t| t.0),
            self.to.map(|t| t.0),
        )
    }
}

/// Which accounts to list; every criterion given must hold (../shared/API.md, "Finding
/// accounts").
#[derive(InputObject, Serialize, Clone, Debug, Default)]
#[graphql(name = "AccountFilter")]
#[serde(rename_all = "camelCase")]
pub struct AccountFilterInput {
    /// Part of the holder's name, matched case-insensitively.
    pub holder: Option<String>,
    /// ISO 4217 code.
    pub currency: Option<String>,
    pub status: Option<platform::enums::AccountStatus>,
}

impl AccountFilterInput {
    pub(crate) fn parse(&self) -> Result<queries::AccountFilter, QueryError> {
        queries::AccountFilter::parse(
            self.holder.as_deref(),
            self.currency.as_deref(),
            self.status,
        )
    }
}
