//! GraphQL for compliance staff on the accounts service: proofs for single records and
//! on-demand verification, both read straight from the event store.

use async_graphql::{Context, Json, Object, SimpleObject};
use ed25519_dalek::VerifyingKey;
use ledger::{AccountId, ErrorCode, EventId};
use platform::{
    ApiError, Capability, RequestContext,
    access_log::query_names,
    graphql::{RoleGuard, record_read},
    scalars::{DateTime, Uuid},
};
use serde_json::json;
use sqlx::PgPool;

use crate::integrity::{self, ProofError, Report, VerifyOptions};

/// The most events `verifyIntegrity` checks online; beyond that, run `folio verify`.
pub const VERIFY_ONLINE_EVENTS_MAX: u64 = 200_000;

/// What the integrity queries need: the event store and the key checkpoints are signed with.
#[derive(Clone, Debug)]
pub struct IntegrityData {
    pub pool: PgPool,
    pub public_key: VerifyingKey,
    /// The backdating window value dates are checked against.
    pub backdate_max: chrono::Duration,
}

#[derive(Default)]
pub struct IntegrityQuery;

/// The signed checkpoint a proof ends at.
#[derive(SimpleObject)]
pub struct CheckpointView {
    pub sequence: i64,
    pub position: String,
    pub event_count: i64,
    pub digest: String,
    pub signed_at: DateTime,
    pub key_id: String,
}

impl CheckpointView {
    fn of(checkpoint: &ledger::integrity::SignedCheckpoint) -> Self {
        Self {
            sequence: checkpoint.sequence,
            position: checkpoint.position.to_string(),
            event_count: checkpoint.event_count,
            digest: checkpoint.digest.to_hex(),
            signed_at: DateTime(checkpoint.signed_at),
            key_id: checkpoint.key_id.clone(),
        }
    }
}

/// Proof that one event is part of signed history; `document` is what `folio verify-proof` checks.
#[derive(SimpleObject)]
pub struct AuditProof {
    pub event_id: Uuid,
    pub position: String,
    pub hash: String,
    /// How many later events link the event to the checkpoint.
    pub links: i32,
    pub checkpoint: CheckpointView,
    /// The whole proof; save it as a file and check it offline with `folio verify-proof FILE`.
    pub document: Json<serde_json::Value>,
}

#[derive(SimpleObject)]
pub struct IntegrityProblem {
    /// HASH_MISMATCH, BROKEN_LINK, VERSION_GAP, UNREADABLE, BALANCE_DOES_NOT_FOLLOW,
    /// MISSING_TRANSFER_LEG, CHECKPOINT_MISMATCH, CHECKPOINT_INVALID, HOLD_INCONSISTENT,
    /// REVERSAL_INCONSISTENT, VALUE_DATE_OUT_OF_RANGE, ADJUSTMENT_INCONSISTENT,
    /// VALUE_DATE_IN_CLOSED_PERIOD or PERIOD_REPORT_INVALID.
    pub kind: String,
    pub account_id: Option<Uuid>,
    pub stream_version: Option<i64>,
    pub position: Option<String>,
    pub detail: String,
}

#[derive(SimpleObject)]
pub struct IntegrityReport {
    /// True when everything checked is intact and nothing was left unchecked.
    pub ok: bool,
    pub streams_checked: i64,
    pub events_checked: i64,
    pub checkpoints_checked: i64,
    /// True when the store is larger than the online limit; run `folio verify` for all of it.
    pub truncated: bool,
    pub problems: Vec<IntegrityProblem>,
    pub problems_not_listed: i64,
}

impl From<Report> for IntegrityReport {
    fn from(report: Report) -> Self {
        Self {
            ok: report.is_clean(),
            streams_checked: report.streams as i64,
            events_checked: report.events as i64,
            checkpoints_checked: report.checkpoints as i64,
            truncated: report.truncated,
            problems_not_listed: report.problems_not_listed as i64,
            problems: report
                .problems
                .into_iter()
                .map(|p| IntegrityProblem {
                    kind: p.kind.as_str().to_string(),
                    account_id: p.stream_id.map(|id| Uuid(id.as_uuid())),
                    stream_version: p.stream_version,
                    position: p.position.map(|p| p.to_string()),
                    detail: p.detail,
                })
                .collect(),
        }
    }
}

fn data<'a>(ctx: &Context<'a>) -> Result<&'a IntegrityData, ApiError> {
    ctx.data::<IntegrityData>()
        .map_err(|_| ApiError::internal("integrity data missing from the schema"))
}

#[Object]
impl IntegrityQuery {
    /// A proof that one event is part of the signed history, checkable offline (auditor).
    #[graphql(guard = "RoleGuard::new(Capability::ProveEvent)")]
    async fn audit_proof(&self, ctx: &Context<'_>, event_id: Uuid) -> Result<AuditProof, ApiError> {
        let request = RequestContext::of(ctx)?;
        tracing::info!(actor = %request.principal.actor, event_id = %event_id.0, "audit proof requested");
        record_read(
            ctx,
            query_names::AUDIT_PROOF,
            json!({ "eventId": event_id.0 }),
        )
        .await?;
        let proof = integrity::audit_proof(&data(ctx)?.pool, EventId::from_uuid(event_id.0))
            .await
            .map_err(|error| match error {
                ProofError::NoSuchEvent(_) => {
                    ApiError::new(ErrorCode::Validation, error.to_string()).at("eventId")
                }
                ProofError::NotYetCheckpointed(_) => {
                    ApiError::new(ErrorCode::StaleRead, error.to_string()).at("eventId")
                }
                ProofError::Store(e) if e.is_unavailable() => {
                    ApiError::unavailable("the event store")
                }
                ProofError::Store(e) => ApiError::internal(e),
            })?;
        let document = serde_json::to_value(&proof).map_err(ApiError::internal)?;
        Ok(AuditProof {
            event_id,
            position: proof.event.position.to_string(),
            hash: proof.event.hash.to_hex(),
            links: i32::try_from(proof.links.len()).map_err(ApiError::internal)?,
            checkpoint: CheckpointView::of(&proof.checkpoint),
            document: Json(document),
        })
    }

    /// The newest signed checkpoint: the global digest over every event up to its position,
    /// signed with the checkpoint key (auditor, supervisor); null before the first.
    #[graphql(guard = "RoleGuard::new(Capability::VerifyIntegrity)")]
    async fn latest_checkpoint(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<CheckpointView>, ApiError> {
        let checkpoint = integrity::latest_checkpoint(&data(ctx)?.pool)
            .await
            .map_err(|e| {
                if e.is_unavailable() {
                    ApiError::unavailable("the event store")
                } else {
                    ApiError::internal(e)
                }
            })?;
        Ok(checkpoint.as_ref().map(CheckpointView::of))
    }

    /// Verifies one account's history, or the whole store up to an online limit (auditor, supervisor).
    #[graphql(guard = "RoleGuard::new(Capability::VerifyIntegrity)")]
    async fn verify_integrity(
        &self,
        ctx: &Context<'_>,
        account_id: Option<Uuid>,
    ) -> Result<IntegrityReport, ApiError> {
        let request = RequestContext::of(ctx)?;
        tracing::info!(actor = %request.principal.actor, account_id = ?account_id.map(|a| a.0), "integrity verification requested");
        record_read(
            ctx,
            query_names::VERIFY_INTEGRITY,
            json!({ "accountId": account_id.map(|a| a.0) }),
        )
        .await?;
        let data = data(ctx)?;
        let options = VerifyOptions {
            public_key: data.public_key,
            account: account_id.map(|id| AccountId::from_uuid(id.0)),
            external: None,
            events_max: Some(VERIFY_ONLINE_EVENTS_MAX),
            progress: None,
            backdate_max: data.backdate_max,
        };
        let report = integrity::verify(&data.pool, &options).await.map_err(|e| {
            if e.is_unavailable() {
                ApiError::unavailable("the event store")
            } else {
                ApiError::internal(e)
            }
        })?;
        if let Some(id) = account_id
            && report.streams == 0
        {
            return Err(
                ApiError::new(ErrorCode::AccountNotFound, format!("no account {}", id.0))
                    .at("accountId"),
            );
        }
        Ok(report.into())
    }
}
