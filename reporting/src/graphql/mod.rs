//! The reporting service's GraphQL: balances as of an instant, statements, the audit trail,
//! the access log and the projection's status, all answered from the read models.
//!
//! Every resolver reads through the reporting gate ([`crate::gate`]): the caller's
//! capability, its parsed arguments (refusals name the field), `atLeast` and `asKnownAt`,
//! the access recorded, and only then the read. Errors leave as [`ApiError`]s with a code.

mod inputs;
mod outputs;

use std::time::Duration;

use async_graphql::{Context, EmptyMutation, EmptySubscription, MergedObject, Object, Schema};
use ledger::AccountId;
use platform::{
    ApiError, Capability, RequestContext,
    access_log::query_names,
    enums::AdjustmentStatus,
    graphql::with_limits,
    scalars::{DateTime, Uuid},
};
use serde_json::{Value, json};

use crate::{
    queries::{self, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, Position, cursor},
    state::ReportingState,
};

pub use inputs::{AccessLogFilterInput, AccountFilterInput, AuditFilterInput};
pub use outputs::{
    AccessLogEntry, AccessLogEntryConnection, AccountSummary, AccountSummaryConnection,
    AdjustmentConnection, AuditEntry, AuditEntryConnection, CurrencyTotal, EntryKind,
    HistoricalBalance, HistoricalBalanceConnection, HistoricalBalanceTotals, PageCursor,
    ProjectionStatus, RelayBlocker, Statement, StatementEntry, StatementEntryConnection,
};

pub type ReportingSchema = Schema<ReportingQueries, EmptyMutation, EmptySubscription>;

/// The reporting service's query root on its own (merged into the platform's `Query` by `folio up`).
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct ReportingQueries(ReportingQuery);

/// The longest `projectionStatus` waits for NATS to report the lag before answering null.
pub const LAG_WAIT: Duration = Duration::from_secs(2);

/// The reporting service on its own (as `folio reporting` serves it).
pub fn schema(state: ReportingState) -> ReportingSchema {
    with_limits(Schema::build(
        ReportingQueries::default(),
        EmptyMutation,
        EmptySubscription,
    ))
    .data(state.access_log.clone())
    .data(state)
    .finish()
}

/// The cost of a page of `first` items whose selection costs `child_complexity` each.
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let size = first.map_or(PAGE_SIZE_DEFAULT, |n| {
        usize::try_from(n).unwrap_or(0).min(PAGE_SIZE_MAX)
    });
    size.max(1).saturating_mul(child_complexity)
}

#[derive(Default)]
pub struct ReportingQuery;

#[Object]
impl ReportingQuery {
    /// Accounts by part of the holder's name (case-insensitive), currency and status, by
    /// account id, with their balance and available balance as projected.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        filter: Option<AccountFilterInput>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<String>,
    ) -> Result<AccountSummaryConnection, ApiError> {
        let (state, request) = caller(ctx)?;
        let gate = state
            .gate(request, query_names::ACCOUNTS, Capability::ReadReports)
            .await?;
        let filter = filter.unwrap_or_default();
        let parsed = filter.parse().map_err(|e| e.under("filter"))?;
        let size = queries::page_size(first.map(i64::from))?;
        let after_key = cursor::decode_after::<queries::AccountKey>(after.as_deref())?;
        let at_least = parse_at_least(at_least.as_deref())?;
        let arguments = json!({
            "filter": filter, "first": first, "after": after, "atLeast": at_least_text(at_least),
        });
        gate.admit(arguments, at_least, None).await?;
        let page = queries::accounts(&state.pool, &parsed, size, after_key).await?;
        Ok(outputs::plain_connection(
            page,
            after_key.is_some(),
            queries::AccountSummary::key,
        ))
    }

    /// Four-eyes adjustments of `status` on `accountId` (both optional), in request order
    /// (supervisor, auditor): who asked for what, who approved or rejected it, and when. A
    /// pending adjustment past its expiry shows as EXPIRED.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn adjustments(
        &self,
        ctx: &Context<'_>,
        status: Option<AdjustmentStatus>,
        account_id: Option<Uuid>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<String>,
    ) -> Result<AdjustmentConnection, ApiError> {
        let (state, request) = caller(ctx)?;
        let gate = state
            .gate(
                request,
                query_names::ADJUSTMENTS,
                Capability::ReadAdjustments,
            )
            .await?;
        let size = queries::page_size(first.map(i64::from))?;
        let after_key = cursor::decode_after::<queries::AdjustmentKey>(after.as_deref())?;
        let at_least = parse_at_least(at_least.as_deref())?;
        let arguments = json!({
            "status": status.map(|s| s.as_str()), "accountId": account_id.map(|a| a.0),
            "first": first, "after": after, "atLeast": at_least_text(at_least),
        });
        gate.admit(arguments, at_least, None).await?;
        let account_id = account_id.map(|a| AccountId::from_uuid(a.0));
        let page = queries::adjustments(&state.pool, status, account_id, size, after_key).await?;
        Ok(outputs::plain_connection(
            page,
            after_key.is_some(),
            queries::AdjustmentRow::key,
        ))
    }

    /// An account's balance at value date `asOf` (inclusive) as known at booking instant
    /// `asKnownAt` (default: now): the movements valued at or before `asOf` and booked at
    /// or before `asKnownAt`. Null if the account was not known to exist then. An answer
    /// with a past `asKnownAt` never changes.
    async fn balance_as_of(
        &self,
        ctx: &Context<'_>,
        account_id: Uuid,
        as_of: DateTime,
        as_known_at: Option<DateTime>,
        at_least: Option<String>,
    ) -> Result<Option<HistoricalBalance>, ApiError> {
        let (state, request) = caller(ctx)?;
        let gate = state
            .gate(request, query_names::BALANCE_AS_OF, Capability::ReadReports)
            .await?;
        let account_id = AccountId::from_uuid(account_id.0);
        let at_least = parse_at_least(at_least.as_deref())?;
        let arguments = json!({
            "accountId": account_id, "asOf": as_of.0, "asKnownAt": as_known_at.map(|k| k.0),
            "atLeast": at_least_text(at_least),
        });
        let admitted = gate
            .admit(arguments, at_least, as_known_at.map(|k| k.0))
            .await?;
        let axes = queries::TwoAxes {
            as_of: as_of.0,
            known_at: admitted.known_at,
        };
        let balance = queries::balance_as_of(&state.pool, account_id, axes).await?;
        Ok(balance.map(|b| HistoricalBalance::at(b, axes, as_known_at.is_some())))
    }

    /// Every account that existed at value date `asOf` with its balance then as known at
    /// `asKnownAt` (default: now), by account id, with per-currency totals over all of them.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    #[allow(
        clippy::too_many_arguments,
        reason = "one parameter per GraphQL argument"
    )]
    async fn balances_as_of(
        &self,
        ctx: &Context<'_>,
        as_of: DateTime,
        #[graphql(desc = "ISO 4217 code: only accounts in this currency")] currency: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<String>,
        as_known_at: Option<DateTime>,
    ) -> Result<HistoricalBalanceConnection, ApiError> {
        let (state, request) = caller(ctx)?;
        let gate = state
            .gate(
                request,
                query_names::BALANCES_AS_OF,
                Capability::ReadReports,
            )
            .await?;
        let currency_filter = currency
            .as_deref()
            .map(|c| queries::parse_currency("currency", c))
            .transpose()?;
        let size = queries::page_size(first.map(i64::from))?;
        let after_key = cursor::decode_after::<queries::AccountKey>(after.as_deref())?;
        let at_least = parse_at_least(at_least.as_deref())?;
        let arguments = json!({
            "asOf": as_of.0, "asKnownAt": as_known_at.map(|k| k.0),
            "currency": currency_filter.map(|c| c.code()), "first": first, "after": after,
            "atLeast": at_least_text(at_least),
        });
        let admitted = gate
            .admit(arguments, at_least, as_known_at.map(|k| k.0))
            .await?;
        let axes = queries::TwoAxes {
            as_of: as_of.0,
            known_at: admitted.known_at,
        };
        let with_totals = ctx.look_ahead().field("totals").exists();
        let found = queries::balances_as_of(
            &state.pool,
            axes,
            currency_filter,
            size,
            after_key,
            with_totals,
        )
        .await?;
        let totals = HistoricalBalanceTotals {
            totals: found
                .totals
                .unwrap_or_default()
                .into_iter()
                .map(CurrencyTotal::from)
                .collect(),
        };
        Ok(outputs::connection(
            found.page,
            after_key.is_some(),
            queries::HistoricalBalance::key,
            |b| HistoricalBalance::at(b, axes, as_known_at.is_some()),
            totals,
        ))
    }

    /// An account's movements valued in [from, to] (both inclusive) and booked by
    /// `asKnownAt` (default: now), in value-date order, with the balance before and after
    /// and the range's credits and debits.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    #[allow(
        clippy::too_many_arguments,
        reason = "one parameter per GraphQL argument"
    )]
    async fn statement(
        &self,
        ctx: &Context<'_>,
        account_id: Uuid,
        from: DateTime,
        to: DateTime,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<String>,
        as_known_at: Option<DateTime>,
    ) -> Result<Statement, ApiError> {
        let (state, request) = caller(ctx)?;
        let gate = state
            .gate(request, query_names::STATEMENT, Capability::ReadReports)
            .await?;
        let (account_id, from, to) = (AccountId::from_uuid(account_id.0), from.0, to.0);
        if from > to {
            return Err(ApiError::validation("from", "must not be later than to"));
        }
        let size = queries::page_size(first.map(i64::from))?;
        let after_key = cursor::decode_after::<queries::EntryKey>(after.as_deref())?;
        let at_least = parse_at_least(at_least.as_deref())?;
        let arguments = json!({
            "accountId": account_id, "from": from, "to": to, "asKnownAt": as_known_at.map(|k| k.0),
            "first": first, "after": after, "atLeast": at_least_text(at_least),
        });
        // The pages of one statement are read as known at one instant: the cursor's.
        let admitted = match &after_key {
            Some(key) => {
                let known_at = queries::StatementScope::continuing(key, as_known_at.map(|k| k.0))?;
                gate.admit_continuing(arguments, at_least, known_at).await?
            }
            None => {
                gate.admit(arguments, at_least, as_known_at.map(|k| k.0))
                    .await?
            }
        };
        let statement = queries::statement(
            &state.pool,
            account_id,
            from,
            to,
            admitted.known_at,
            size,
            after_key,
        )
        .await?;
        Ok(Statement::from_query(
            statement,
            after_key.is_some(),
            as_known_at.is_some(),
        ))
    }

    /// Events with who caused them and their hashes, by position; every criterion given must hold.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        filter: AuditFilterInput,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<String>,
    ) -> Result<AuditEntryConnection, ApiError> {
        let (state, request) = caller(ctx)?;
        let gate = state
            .gate(
                request,
                query_names::AUDIT_TRAIL,
                Capability::ReadAuditTrail,
            )
            .await?;
        let parsed = filter.parse().map_err(|e| e.under("filter"))?;
        let size = queries::page_size(first.map(i64::from))?;
        let after_key = cursor::decode_after::<queries::PositionKey>(after.as_deref())?;
        let at_least = parse_at_least(at_least.as_deref())?;
        let arguments = json!({
            "filter": filter, "first": first, "after": after, "atLeast": at_least_text(at_least),
        });
        gate.admit(arguments, at_least, None).await?;
        let page = queries::audit_trail(&state.pool, &parsed, size, after_key).await?;
        Ok(outputs::plain_connection(
            page,
            after_key.is_some(),
            queries::AuditEntry::key,
        ))
    }

    /// The projection's checkpoint, lag and integrity alerts.
    async fn projection_status(
        &self,
        ctx: &Context<'_>,
        at_least: Option<String>,
    ) -> Result<ProjectionStatus, ApiError> {
        let (state, request) = caller(ctx)?;
        let gate = state.gate_unrecorded(request, Capability::ReadReports)?;
        let at_least = parse_at_least(at_least.as_deref())?;
        gate.admit(Value::Null, at_least, None).await?;
        let status = queries::projection_status(&state.pool, &state.settings.stream).await?;
        let look_ahead = ctx.look_ahead();
        let lag =
            if look_ahead.field("lagEvents").exists() || look_ahead.field("lagSeconds").exists() {
                tokio::time::timeout(LAG_WAIT, state.consumer.lag())
                    .await
                    .ok()
                    .and_then(Result::ok)
            } else {
                None
            };
        Ok(ProjectionStatus::new(status, lag, state.relay.current()))
    }

    /// Who looked at which report, newest first (auditor only).
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn access_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AccessLogFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<AccessLogEntryConnection, ApiError> {
        let (state, request) = caller(ctx)?;
        let gate = state
            .gate(request, query_names::ACCESS_LOG, Capability::ReadAccessLog)
            .await?;
        let filter = filter.unwrap_or_default();
        let parsed = filter.parse().map_err(|e| e.under("filter"))?;
        let size = queries::page_size(first.map(i64::from))?;
        let after_key = cursor::decode_after::<queries::AccessKey>(after.as_deref())?;
        let arguments = json!({ "filter": filter, "first": first, "after": after });
        gate.admit(arguments, None, None).await?;
        let page = queries::access_log(&state.pool, &parsed, size, after_key).await?;
        Ok(outputs::plain_connection(
            page,
            after_key.is_some(),
            queries::AccessLogEntry::key,
        ))
    }
}

/// The reporting state and who is asking.
fn caller<'a>(ctx: &Context<'a>) -> Result<(&'a ReportingState, &'a RequestContext), ApiError> {
    Ok((state(ctx)?, RequestContext::of(ctx)?))
}

fn state<'a>(ctx: &Context<'a>) -> Result<&'a ReportingState, ApiError> {
    ctx.data::<ReportingState>()
        .map_err(|_| ApiError::internal("reporting state missing from the schema data"))
}

fn parse_at_least(text: Option<&str>) -> Result<Option<Position>, ApiError> {
    Ok(text.map(|t| Position::parse("atLeast", t)).transpose()?)
}

fn at_least_text(position: Option<Position>) -> Value {
    position.map_or(Value::Null, |p| Value::String(p.value().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_costs_its_size_times_its_selection() {
        assert_eq!(page_cost(None, 10), PAGE_SIZE_DEFAULT * 10);
        assert_eq!(page_cost(Some(20), 10), 200);
        assert_eq!(page_cost(Some(100_000), 10), PAGE_SIZE_MAX * 10);
        assert_eq!(page_cost(Some(0), 10), 10);
        assert_eq!(page_cost(Some(-5), 10), 10);
    }

    #[test]
    fn the_schema_names_the_contract_types() {
        let sdl = Schema::build(ReportingQuery, EmptyMutation, EmptySubscription)
            .finish()
            .sdl();
        for name in [
            "type HistoricalBalanceConnection",
            "type StatementEntryConnection",
            "type AuditEntryConnection",
            "type AccessLogEntryConnection",
            "type HistoricalBalance ",
            "type Statement ",
            "type StatementEntry ",
            "type AuditEntry ",
            "type ProjectionStatus ",
            "type CurrencyTotal ",
            "enum EntryKind",
            "input AuditFilter ",
        ] {
            assert!(sdl.contains(name), "{name} missing from\n{sdl}");
        }
    }
}
