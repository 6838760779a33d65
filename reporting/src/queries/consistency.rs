//! Read-your-writes across services: a mutation returns the event-store position it wrote,
//! and a query given that position as `atLeast` waits (bounded) until the projection has
//! applied it, or fails with STALE_READ.
//!
//! Positions are not commit order, so "applied" cannot mean "the checkpoint passed it".
//! It means what DESIGN.md's honest watermark says: the event at that position was
//! applied from a stream sequence at or below the projection's watermark, so every
//! event published before it (every command that committed before it was written)
//! is applied too.

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use super::QueryError;

/// How often the audit log is asked whether a position has arrived.
pub const POSITION_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The most digits a position has (`i64::MAX` has 19).
const POSITION_DIGITS_MAX: usize = 19;

/// An event-store position, as a client sends it: a decimal string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(i64);

impl Position {
    /// Parses `text` as a position; VALIDATION naming `field` otherwise.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, QueryError> {
        let refuse = || {
            QueryError::invalid(
                field,
                format!(
                    "{text:?} is not a position; pass the position string a mutation returned, such as \"42\""
                ),
            )
        };
        if text.is_empty()
            || text.len() > POSITION_DIGITS_MAX
            || !text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(refuse());
        }
        text.parse().map(Self).map_err(|_| refuse())
    }

    pub fn value(&self) -> i64 {
        self.0
    }
}

/// Waits until the projection has applied `position` (polling every
/// [`POSITION_POLL_INTERVAL`] for at most `wait`); STALE_READ if it has not.
pub async fn wait_for_position(
    pool: &PgPool,
    stream: &str,
    position: Position,
    wait: Duration,
) -> Result<(), QueryError> {
    // Positions start at 1: nothing has to be waited for to reflect position 0.
    if position.0 == 0 {
        return Ok(());
    }
    let started = Instant::now();
    let deadline = started + wait;
    loop {
        let applied: bool = sqlx::query_scalar(
            "select exists (
                 select 1 from reporting.audit_log a
                 join reporting.projection_checkpoints c on c.stream = $2
                 where a.position = $1 and a.stream_sequence <= c.watermark_sequence)",
        )
        .bind(position.0)
        .bind(stream)
        .fetch_one(pool)
        .await?;
        if applied {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(POSITION_POLL_INTERVAL.min(deadline - now)).await;
    }
    let checkpoint: Option<i64> = sqlx::query_scalar(
        "select position from reporting.projection_checkpoints where stream = $1",
    )
    .bind(stream)
    .fetch_optional(pool)
    .await?
    .flatten();
    Err(QueryError::Stale {
        wanted: position.0,
        checkpoint,
        waited_ms: started.elapsed().as_millis(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_decimal_strings() {
        assert_eq!(Position::parse("atLeast", "42").ok(), Some(Position(42)));
        assert_eq!(
            Position::parse("atLeast", "9223372036854775807").ok(),
            Some(Position(i64::MAX))
        );
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "abc",
            "9223372036854775808",
            "0x10",
        ] {
            let Err(error) = Position::parse("atLeast", bad) else {
                panic!("{bad:?} was accepted as a position");
            };
            assert!(error.to_string().starts_with("atLeast: "), "{error}");
        }
    }
}
