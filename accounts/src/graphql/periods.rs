//! Period close over GraphQL (../shared/API.md, "Period close"): `closePeriod`
//! (supervisor), `periodClose` and `periodCloses` (auditor, supervisor), read straight from
//! the event store's closes, and the signed report they carry.

use async_graphql::{
    Context, Object, SimpleObject,
    connection::{Connection, Edge, EmptyFields},
};
use ed25519_dalek::SigningKey;
use ledger::{ErrorCode, period::SignedPeriodReport};
use platform::{
    ApiError, Capability, RequestContext,
    access_log::query_names,
    graphql::{RoleGuard, record_read},
    objects::CurrencyTotal,
    scalars::{DateTime, Decimal},
};
use serde_json::json;
use sqlx::PgPool;

use super::inputs::path;
use crate::periods::{self, PERIOD_CLOSES_PAGE_MAX, PeriodError, StoredClose};

/// Closes listed on a page of `periodCloses` when the client does not say.
pub const PERIOD_CLOSES_PAGE_DEFAULT: i64 = 50;

/// What the period queries and `closePeriod` need: the event store and the checkpoint key
/// reports are signed with.
#[derive(Clone)]
pub struct PeriodData {
    pub pool: PgPool,
    pub signing_key: SigningKey,
}

impl std::fmt::Debug for PeriodData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeriodData { signing_key: <secret> }")
    }
}

/// Close a period (`closePeriod`, supervisor).
#[derive(async_graphql::InputObject)]
pub struct ClosePeriodInput {
    /// The last instant of the period, inclusive; it must be in the past.
    pub period_end: DateTime,
    pub idempotency_key: String,
}

/// A closed period and its signed report (../shared/API.md `PeriodClose`).
#[derive(SimpleObject)]
pub struct PeriodClose {
    pub period_end: DateTime,
    pub closed_at: DateTime,
    pub closed_by: String,
    /// How many accounts the report lists.
    pub accounts: i32,
    pub totals: Vec<CurrencyTotal>,
    /// How many events the close covers.
    pub event_count: i64,
    /// The global digest over those events, hex.
    pub digest: String,
    /// Ed25519 over the report, hex; check it with `folio verify-report FILE --public-key KEY`.
    pub signature: String,
    pub key_id: String,
    /// The last event the close covers (pass it as `atLeast` to reporting queries).
    pub position: String,
    /// The signed report itself, as `GET /reports/period.json` serves it.
    pub report: String,
}

impl From<&SignedPeriodReport> for PeriodClose {
    fn from(signed: &SignedPeriodReport) -> Self {
        let report = &signed.report;
        Self {
            period_end: DateTime(report.period_end),
            closed_at: DateTime(report.closed_at),
            closed_by: report.closed_by.clone(),
            accounts: i32::try_from(report.accounts.len()).unwrap_or(i32::MAX),
            totals: report
                .totals
                .iter()
                .map(|t| CurrencyTotal {
                    currency: t.currency.code().to_string(),
                    total: Decimal::money(t.total, t.currency),
                    accounts: t.accounts,
                })
                .collect(),
            event_count: report.event_count,
            digest: report.digest.to_hex(),
            signature: signed.signature.clone(),
            key_id: signed.key_id.clone(),
            position: report.through_position.to_string(),
            report: signed.to_file(),
        }
    }
}

/// What `closePeriod` answers.
#[derive(SimpleObject)]
pub struct PeriodClosePayload {
    pub period_close: PeriodClose,
    pub position: String,
}

/// `periodCloses`: a page of closes in period order.
pub type PeriodCloseConnection = Connection<String, PeriodClose, EmptyFields, EmptyFields>;

fn data<'a>(ctx: &Context<'a>) -> Result<&'a PeriodData, ApiError> {
    ctx.data::<PeriodData>()
        .map_err(|_| ApiError::internal("period data missing from the schema"))
}

fn store_error(error: crate::store::StoreError) -> ApiError {
    if error.is_unavailable() {
        ApiError::unavailable("the event store")
    } else {
        ApiError::internal(error)
    }
}

/// A close refused, with its code and the input it concerns.
fn close_error(error: PeriodError) -> ApiError {
    match &error {
        PeriodError::AlreadyClosed { .. } => {
            ApiError::new(ErrorCode::PeriodClosed, error.to_string())
                .at(&path("input", "periodEnd"))
        }
        PeriodError::NotEnded { .. } => {
            ApiError::new(ErrorCode::Validation, error.to_string()).at(&path("input", "periodEnd"))
        }
        PeriodError::KeyReused { .. } => {
            ApiError::new(ErrorCode::IdempotencyKeyReused, error.to_string())
                .at(&path("input", "idempotencyKey"))
        }
        PeriodError::Store(_) => match error {
            PeriodError::Store(e) => store_error(e),
            _ => unreachable!("matched above"),
        },
    }
}

/// `closePeriod`, merged into the accounts service's mutations.
#[derive(Default)]
pub struct PeriodMutation;

#[Object]
impl PeriodMutation {
    /// Closes the period ending at `periodEnd` (supervisor): afterwards no movement,
    /// capture, reversal or adjustment may carry a value date at or before it
    /// (PERIOD_CLOSED), and the close keeps a signed report of every account's balance at
    /// `periodEnd`. The same key and period again answer the first close; another close of
    /// a period ending at or before the last one is PERIOD_CLOSED.
    #[graphql(guard = "RoleGuard::new(Capability::ClosePeriod)")]
    async fn close_period(
        &self,
        ctx: &Context<'_>,
        input: ClosePeriodInput,
    ) -> Result<PeriodClosePayload, ApiError> {
        let key = input.idempotency_key.trim();
        if key.is_empty() || key.len() > crate::commands::IDEMPOTENCY_KEY_LEN_MAX {
            return Err(ApiError::validation(
                &path("input", "idempotencyKey"),
                format!(
                    "must be 1 to {} characters",
                    crate::commands::IDEMPOTENCY_KEY_LEN_MAX
                ),
            ));
        }
        let request = RequestContext::of(ctx)?;
        let data = data(ctx)?;
        let close = periods::close_period(
            &data.pool,
            &data.signing_key,
            &request.principal.actor,
            key,
            input.period_end.0,
        )
        .await
        .map_err(close_error)?;
        tracing::info!(actor = %request.principal.actor, period_end = %input.period_end.0, "period closed");
        Ok(payload(&close))
    }
}

fn payload(close: &StoredClose) -> PeriodClosePayload {
    PeriodClosePayload {
        period_close: PeriodClose::from(&close.signed),
        position: close.position().to_string(),
    }
}

/// `periodClose` and `periodCloses`, merged into the accounts service's queries.
#[derive(Default)]
pub struct PeriodQuery;

#[Object]
impl PeriodQuery {
    /// The close of the period ending exactly at `periodEnd`, or null (auditor, supervisor).
    #[graphql(guard = "RoleGuard::new(Capability::ReadPeriodReports)")]
    async fn period_close(
        &self,
        ctx: &Context<'_>,
        period_end: DateTime,
    ) -> Result<Option<PeriodClose>, ApiError> {
        record_read(
            ctx,
            query_names::PERIOD_CLOSE,
            json!({ "periodEnd": crate::domain::instant(&period_end.0) }),
        )
        .await?;
        let close = periods::period_close(&data(ctx)?.pool, period_end.0)
            .await
            .map_err(store_error)?;
        Ok(close.map(|c| PeriodClose::from(&c.signed)))
    }

    /// Every close, in period order (auditor, supervisor). `first` defaults to 50, at most
    /// 500; `after` is a cursor from an earlier page.
    #[graphql(guard = "RoleGuard::new(Capability::ReadPeriodReports)")]
    async fn period_closes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<PeriodCloseConnection, ApiError> {
        let size = match first {
            Some(n) if n < 0 => return Err(ApiError::validation("first", "must be zero or more")),
            Some(n) => i64::from(n).min(PERIOD_CLOSES_PAGE_MAX),
            None => PERIOD_CLOSES_PAGE_DEFAULT,
        };
        let after_end = after
            .as_deref()
            .map(|a| {
                chrono::DateTime::parse_from_rfc3339(a)
                    .map(|d| d.with_timezone(&chrono::Utc))
                    .map_err(|_| ApiError::validation("after", "not a cursor of periodCloses"))
            })
            .transpose()?;
        record_read(
            ctx,
            query_names::PERIOD_CLOSES,
            json!({ "first": first, "after": after }),
        )
        .await?;
        let mut closes = periods::period_closes(&data(ctx)?.pool, after_end, size + 1)
            .await
            .map_err(store_error)?;
        let has_next = closes.len() as i64 > size;
        closes.truncate(usize::try_from(size).unwrap_or(0));
        let mut connection = Connection::new(after_end.is_some(), has_next);
        connection.edges.extend(closes.iter().map(|c| {
            Edge::new(
                c.signed
                    .report
                    .period_end
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                PeriodClose::from(&c.signed),
            )
        }));
        Ok(connection)
    }
}
