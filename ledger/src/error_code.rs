//! The closed, stable set of error codes a client can receive (`extensions.code` in GraphQL).

use std::fmt;

/// One variant per reason an operation fails (`../shared/API.md`, "Errors" and "Errors that
/// every operation shares"). Mapped once, at the edge, to `extensions.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Validation,
    Unauthenticated,
    Forbidden,
    AccountNotFound,
    AccountFrozen,
    AccountClosed,
    InsufficientFunds,
    CurrencyMismatch,
    InvalidAmount,
    SameAccount,
    NonzeroBalance,
    IdempotencyKeyReused,
    ConcurrencyConflict,
    StaleRead,
    Unavailable,
    Internal,
    HoldNotFound,
    HoldNotActive,
    MovementNotFound,
    NotReversible,
    AlreadyReversed,
    ValueDateOutOfRange,
    PeriodClosed,
    LinkedOperationFailed,
    AdjustmentNotFound,
    AdjustmentNotPending,
    SelfApproval,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 27] = [
        Self::Validation,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::AccountNotFound,
        Self::AccountFrozen,
        Self::AccountClosed,
        Self::InsufficientFunds,
        Self::CurrencyMismatch,
        Self::InvalidAmount,
        Self::SameAccount,
        Self::NonzeroBalance,
        Self::IdempotencyKeyReused,
        Self::ConcurrencyConflict,
        Self::StaleRead,
        Self::Unavailable,
        Self::Internal,
        Self::HoldNotFound,
        Self::HoldNotActive,
        Self::MovementNotFound,
        Self::NotReversible,
        Self::AlreadyReversed,
        Self::ValueDateOutOfRange,
        Self::PeriodClosed,
        Self::LinkedOperationFailed,
        Self::AdjustmentNotFound,
        Self::AdjustmentNotPending,
        Self::SelfApproval,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Validation => "VALIDATION",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::AccountNotFound => "ACCOUNT_NOT_FOUND",
            Self::AccountFrozen => "ACCOUNT_FROZEN",
            Self::AccountClosed => "ACCOUNT_CLOSED",
            Self::InsufficientFunds => "INSUFFICIENT_FUNDS",
            Self::CurrencyMismatch => "CURRENCY_MISMATCH",
            Self::InvalidAmount => "INVALID_AMOUNT",
            Self::SameAccount => "SAME_ACCOUNT",
            Self::NonzeroBalance => "NONZERO_BALANCE",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::ConcurrencyConflict => "CONCURRENCY_CONFLICT",
            Self::StaleRead => "STALE_READ",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::HoldNotFound => "HOLD_NOT_FOUND",
            Self::HoldNotActive => "HOLD_NOT_ACTIVE",
            Self::MovementNotFound => "MOVEMENT_NOT_FOUND",
            Self::NotReversible => "NOT_REVERSIBLE",
            Self::AlreadyReversed => "ALREADY_REVERSED",
            Self::ValueDateOutOfRange => "VALUE_DATE_OUT_OF_RANGE",
            Self::PeriodClosed => "PERIOD_CLOSED",
            Self::LinkedOperationFailed => "LINKED_OPERATION_FAILED",
            Self::AdjustmentNotFound => "ADJUSTMENT_NOT_FOUND",
            Self::AdjustmentNotPending => "ADJUSTMENT_NOT_PENDING",
            Self::SelfApproval => "SELF_APPROVAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_distinct_screaming_snake_case() {
        let names: HashSet<&str> = ErrorCode::ALL.iter().map(ErrorCode::as_str).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        );
    }
}
