//! The concepts the read models store, one enum each, shared by the projection that
//! writes them, the queries that read them back and the GraphQL that shows them
//! (../shared/API.md `EntryKind`). A value the database holds that none of them names is
//! a broken invariant, reported as such.

use std::fmt;

use async_graphql::Enum;
use ledger::events::ReversedKind;

/// What moved money on an account: one statement line each.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[graphql(name = "EntryKind")]
pub enum EntryKind {
    Deposit,
    Withdrawal,
    TransferIn,
    TransferOut,
    /// A compensating movement that undid another (linked both ways).
    Reversal,
    /// A hold taken: a withdrawal, or a transfer's debit when it named a destination.
    HoldCapture,
    /// A correction approved by a second person (four-eyes).
    Adjustment,
}

impl EntryKind {
    pub const ALL: [Self; 7] = [
        Self::Deposit,
        Self::Withdrawal,
        Self::TransferIn,
        Self::TransferOut,
        Self::Reversal,
        Self::HoldCapture,
        Self::Adjustment,
    ];

    /// As stored in `ledger_entries.kind` and shown by GraphQL.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Deposit => "DEPOSIT",
            Self::Withdrawal => "WITHDRAWAL",
            Self::TransferIn => "TRANSFER_IN",
            Self::TransferOut => "TRANSFER_OUT",
            Self::Reversal => "REVERSAL",
            Self::HoldCapture => "HOLD_CAPTURE",
            Self::Adjustment => "ADJUSTMENT",
        }
    }

    /// The kind stored as `text`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The kind of the movement a reversal undid.
    pub fn reversed(kind: ReversedKind) -> Self {
        match kind {
            ReversedKind::Deposit => Self::Deposit,
            ReversedKind::Withdrawal => Self::Withdrawal,
            ReversedKind::TransferOut => Self::TransferOut,
            ReversedKind::TransferIn => Self::TransferIn,
            ReversedKind::HoldCapture => Self::HoldCapture,
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an account stands: the one enum the projection stores, the queries read and
/// GraphQL shows (shared with the accounts service's schema).
pub use platform::enums::AccountStatus;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_name_reads_back_as_itself() {
        for kind in EntryKind::ALL {
            assert_eq!(EntryKind::parse(kind.as_str()), Some(kind));
        }
        for status in AccountStatus::ALL {
            assert_eq!(AccountStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(EntryKind::parse("REFUND"), None);
        assert_eq!(AccountStatus::parse("open"), None);
    }
}
