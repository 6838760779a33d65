//! GraphQL enums both services show, defined once so that the merged schema of `folio up`
//! has one of each (async-graphql refuses two Rust types under one GraphQL name), and the
//! reporting read models store the same names.

use std::fmt;

use async_graphql::Enum;
use serde::{Deserialize, Serialize};

/// Where an account stands (../shared/API.md `AccountStatus`).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountStatus {
    /// Takes debits and credits.
    Open,
    /// Takes neither until unfrozen; holds may still be released.
    Frozen,
    /// Takes nothing, for good.
    Closed,
}

impl AccountStatus {
    pub const ALL: [Self; 3] = [Self::Open, Self::Frozen, Self::Closed];

    /// As GraphQL shows it and the read models store it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Frozen => "FROZEN",
            Self::Closed => "CLOSED",
        }
    }

    /// The status stored as `text`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a four-eyes adjustment stands (../shared/API.md `AdjustmentStatus`).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AdjustmentStatus {
    /// Requested; nothing has moved. Approvable until it expires.
    Pending,
    /// Approved by a second person and posted to the account.
    Approved,
    /// Turned down; nothing moved.
    Rejected,
    /// Nobody decided it in time; nothing moved.
    Expired,
}

impl AdjustmentStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Approved, Self::Rejected, Self::Expired];

    /// As GraphQL shows it and the read models store it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Expired => "EXPIRED",
        }
    }

    /// The status stored as `text`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself() {
        for status in AccountStatus::ALL {
            assert_eq!(AccountStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(AccountStatus::parse("open"), None);
    }
}
