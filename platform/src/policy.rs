//! Who may do what: every capability Folio guards and the roles that hold it, in one place
//! (../shared/API.md gives the roles per operation). GraphQL guards, the CSV reports and
//! the console all ask here; nothing else lists roles.

use std::fmt;

use crate::{ApiError, Principal, Role};

/// Something a caller may be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Open accounts and move money: deposits, withdrawals, transfers, batches, holds.
    MoveMoney,
    /// Freeze, unfreeze and close accounts.
    ChangeStatus,
    /// Reverse a movement.
    Reverse,
    /// Ask for a four-eyes adjustment (the maker).
    RequestAdjustment,
    /// Approve or reject an adjustment (the checker; never the maker, SOX maker-checker).
    DecideAdjustment,
    /// List adjustments (`adjustments`): supervisors decide them, auditors review them.
    ReadAdjustments,
    /// Close an accounting period (`closePeriod`).
    ClosePeriod,
    /// Read period closes and their signed reports (`periodClose`, `periodCloses`,
    /// `period.json`).
    ReadPeriodReports,
    /// Read one account as the event store knows it (`account(id)`).
    ReadAccount,
    /// Find accounts, and read balances, statements and the projection's status
    /// (GraphQL, CSV and the console).
    ReadReports,
    /// Query the audit trail through the API (`auditTrail`, `audit.csv`).
    ReadAuditTrail,
    /// Review the audit trail in the console: compliance work, not a teller's.
    ReviewAuditTrail,
    /// Read who looked at what (`accessLog`, `access.csv`, the console's access-log page).
    ReadAccessLog,
    /// Ask for an event's audit proof.
    ProveEvent,
    /// Run an integrity verification online.
    VerifyIntegrity,
}

const TELLER: &[Role] = &[Role::Teller];
const SUPERVISOR: &[Role] = &[Role::Supervisor];
const AUDITOR: &[Role] = &[Role::Auditor];
const TELLER_OR_SUPERVISOR: &[Role] = &[Role::Teller, Role::Supervisor];
const AUDITOR_OR_SUPERVISOR: &[Role] = &[Role::Auditor, Role::Supervisor];
const EVERY_ROLE: &[Role] = &[Role::Auditor, Role::Teller, Role::Supervisor];

impl Capability {
    /// The roles that hold the capability.
    pub const fn roles(self) -> &'static [Role] {
        match self {
            Self::MoveMoney => TELLER,
            Self::ChangeStatus | Self::Reverse | Self::DecideAdjustment | Self::ClosePeriod => {
                SUPERVISOR
            }
            Self::RequestAdjustment => TELLER_OR_SUPERVISOR,
            Self::ReadAdjustments | Self::ReadPeriodReports => AUDITOR_OR_SUPERVISOR,
            Self::ReadAccount | Self::ReadReports | Self::ReadAuditTrail => EVERY_ROLE,
            Self::ReviewAuditTrail | Self::VerifyIntegrity => AUDITOR_OR_SUPERVISOR,
            Self::ReadAccessLog | Self::ProveEvent => AUDITOR,
        }
    }

    /// Whether `principal` holds it.
    pub fn allows(self, principal: &Principal) -> bool {
        principal.has_any(self.roles())
    }

    /// `Ok` when `principal` holds it; FORBIDDEN naming the roles that do otherwise.
    pub fn check(self, principal: &Principal) -> Result<(), ApiError> {
        if self.allows(principal) {
            Ok(())
        } else {
            Err(ApiError::forbidden(self.roles()))
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn principal(roles: &[Role]) -> Principal {
        Principal {
            actor: "someone".into(),
            roles: roles.iter().copied().collect::<BTreeSet<_>>(),
        }
    }

    #[test]
    fn tellers_move_money_and_never_review_compliance() {
        let teller = principal(&[Role::Teller]);
        assert!(Capability::MoveMoney.allows(&teller));
        assert!(Capability::ReadReports.allows(&teller));
        for denied in [
            Capability::ReviewAuditTrail,
            Capability::ReadAccessLog,
            Capability::Reverse,
            Capability::ChangeStatus,
            Capability::VerifyIntegrity,
            Capability::DecideAdjustment,
            Capability::ReadAdjustments,
            Capability::ClosePeriod,
            Capability::ReadPeriodReports,
        ] {
            assert!(!denied.allows(&teller), "{denied}");
        }
        assert!(Capability::RequestAdjustment.allows(&teller));
    }

    #[test]
    fn supervisors_make_and_check_adjustments_and_close_periods() {
        let supervisor = principal(&[Role::Supervisor]);
        for allowed in [
            Capability::RequestAdjustment,
            Capability::DecideAdjustment,
            Capability::ReadAdjustments,
            Capability::ClosePeriod,
            Capability::ReadPeriodReports,
        ] {
            assert!(allowed.allows(&supervisor), "{allowed}");
        }
        let auditor = principal(&[Role::Auditor]);
        assert!(Capability::ReadAdjustments.allows(&auditor));
        assert!(Capability::ReadPeriodReports.allows(&auditor));
        assert!(!Capability::DecideAdjustment.allows(&auditor));
        assert!(!Capability::ClosePeriod.allows(&auditor));
    }

    #[test]
    fn auditors_read_everything_and_move_nothing() {
        let auditor = principal(&[Role::Auditor]);
        for allowed in [
            Capability::ReadReports,
            Capability::ReadAuditTrail,
            Capability::ReviewAuditTrail,
            Capability::ReadAccessLog,
            Capability::ProveEvent,
            Capability::VerifyIntegrity,
        ] {
            assert!(allowed.allows(&auditor), "{allowed}");
        }
        let refused = Capability::MoveMoney.check(&auditor).expect_err("refused");
        assert_eq!(refused.code, ledger::ErrorCode::Forbidden);
        assert!(refused.message.contains("teller"), "{}", refused.message);
    }
}
