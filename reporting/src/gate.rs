//! The one way into the read models: every GraphQL resolver, CSV report and console page
//! of the reporting service reads through a [`Gate`] (DESIGN.md, "Reporting"; the access
//! log's rules are in [`platform::access_log`]). In order:
//!
//! 1. the caller must hold the read's [`Capability`] (the policy is `platform::policy`);
//! 2. the caller parses its own arguments (refusals name the field);
//! 3. [`Gate::admit`] waits for `atLeast`, fixes the booking instant (`asKnownAt`) and
//!    records the access, committed before anything is read;
//! 4. the caller queries, as known at [`Admitted::known_at`].

use chrono::{DateTime, Utc};
use platform::{ApiError, Capability, RequestContext};
use serde_json::Value;

use platform::access_log::Access;

use crate::{queries::Position, state::ReportingState};

/// A read let in by its capability, not yet admitted.
#[must_use = "a gate reads nothing until admitted"]
pub struct Gate<'a> {
    state: &'a ReportingState,
    request: &'a RequestContext,
    /// The name the access is recorded under; `None` for reads that are not recorded
    /// (the projection's own status).
    query: Option<&'static str>,
}

/// What a read may go on with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The booking instant the read is as known at: `asKnownAt`, or now.
    pub known_at: DateTime<Utc>,
}

impl ReportingState {
    /// Step 1: lets `request` in for `query` when it holds `capability`; otherwise records
    /// the refused attempt in the access log and answers FORBIDDEN naming the roles that
    /// may.
    pub async fn gate<'a>(
        &'a self,
        request: &'a RequestContext,
        query: &'static str,
        capability: Capability,
    ) -> Result<Gate<'a>, ApiError> {
        if let Err(refused) = capability.check(&request.principal) {
            self.access_log
                .record_refusal(Access::refused(
                    request,
                    query,
                    Value::Object(Default::default()),
                    &refused,
                ))
                .await;
            return Err(refused);
        }
        Ok(Gate {
            state: self,
            request,
            query: Some(query),
        })
    }

    /// Like [`Self::gate`], for a read that is not recorded in the access log (the
    /// projection's own status: no account data); its refusals are not recorded either.
    pub fn gate_unrecorded<'a>(
        &'a self,
        request: &'a RequestContext,
        capability: Capability,
    ) -> Result<Gate<'a>, ApiError> {
        capability.check(&request.principal)?;
        Ok(Gate {
            state: self,
            request,
            query: None,
        })
    }
}

impl Gate<'_> {
    /// Step 3: waits until the projection has applied `at_least` (STALE_READ after the
    /// bounded wait), fixes the booking instant (`as_known_at`, waited for the same way;
    /// VALIDATION when in the future), then records the access with `arguments` as the
    /// caller parsed them. A read that cannot be recorded is refused.
    pub async fn admit(
        self,
        arguments: Value,
        at_least: Option<Position>,
        as_known_at: Option<DateTime<Utc>>,
    ) -> Result<Admitted, ApiError> {
        self.state.consistent(at_least).await?;
        let known_at = self.state.known_at(as_known_at).await?;
        self.record(arguments, known_at).await
    }

    /// Like [`Self::admit`], for the next page of a read whose first page fixed the booking
    /// instant `known_at` (and waited for it then, when it was asked for): nothing more to
    /// wait for.
    pub async fn admit_continuing(
        self,
        arguments: Value,
        at_least: Option<Position>,
        known_at: DateTime<Utc>,
    ) -> Result<Admitted, ApiError> {
        self.state.consistent(at_least).await?;
        self.record(arguments, known_at).await
    }

    async fn record(self, arguments: Value, known_at: DateTime<Utc>) -> Result<Admitted, ApiError> {
        if let Some(query) = self.query {
            self.state
                .access_log
                .record(Access::of(self.request, query, arguments))
                .await?;
        }
        Ok(Admitted { known_at })
    }
}
