//! Where the projection stands: its checkpoint, how much it has applied, and what it refused.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::QueryError;

/// The most halted accounts listed; more would mean something far bigger is wrong.
pub const HALTED_ACCOUNTS_MAX: i64 = 1_000;

/// The projection's checkpoint and health, as the read models record them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectionStatus {
    /// The highest event-store position applied together with everything published
    /// before it (the watermark as a position); `None` before the first. Never decreases.
    pub position: Option<i64>,
    /// JetStream stream sequence at or below which every message has been applied.
    pub watermark_sequence: i64,
    /// JetStream stream sequence of the last message processed (applied, skipped or parked).
    pub delivered_sequence: i64,
    /// Events waiting for a predecessor (or for a build that can read them).
    pub parked_events: i64,
    pub applied_events: i64,
    pub updated_at: Option<DateTime<Utc>>,
    /// Events refused because their hash chain did not match.
    pub integrity_alerts: i64,
    /// Accounts whose projection stopped at an integrity failure (at most [`HALTED_ACCOUNTS_MAX`]).
    pub halted_accounts: Vec<Uuid>,
}

/// The status of the projection of the JetStream stream `stream`.
pub async fn projection_status(
    pool: &PgPool,
    stream: &str,
) -> Result<ProjectionStatus, QueryError> {
    let checkpoint = sqlx::query(
        "select position, watermark_sequence, delivered_sequence, applied_events, updated_at,
                (select count(*) from reporting.parked_events) as parked_events
         from reporting.projection_checkpoints where stream = $1",
    )
    .bind(stream)
    .fetch_optional(pool)
    .await?;
    let integrity_alerts: i64 =
        sqlx::query_scalar("select count(*) from reporting.integrity_alerts")
            .fetch_one(pool)
            .await?;
    let halted_accounts: Vec<Uuid> = sqlx::query_scalar(
        "select account_id from reporting.account_balances where halted order by account_id limit $1",
    )
    .bind(HALTED_ACCOUNTS_MAX)
    .fetch_all(pool)
    .await?;
    let status = match checkpoint {
        Some(row) => ProjectionStatus {
            position: row.try_get("position")?,
            watermark_sequence: row.try_get("watermark_sequence")?,
            delivered_sequence: row.try_get("delivered_sequence")?,
            parked_events: row.try_get("parked_events")?,
            applied_events: row.try_get("applied_events")?,
            updated_at: row.try_get("updated_at")?,
            integrity_alerts,
            halted_accounts,
        },
        None => ProjectionStatus {
            position: None,
            watermark_sequence: 0,
            delivered_sequence: 0,
            parked_events: 0,
            applied_events: 0,
            updated_at: None,
            integrity_alerts,
            halted_accounts,
        },
    };
    Ok(status)
}
