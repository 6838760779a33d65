//! The audit trail: every event with who caused it, in which conversation, and its hashes,
//! filtered by any combination of account, actor, event types, correlation id and time.
//!
//! The SQL holds only the predicates given, so PostgreSQL can pick the index that
//! matches (`audit_log_account`, `audit_log_actor`, `audit_log_event_type`,
//! `audit_log_correlation`, `audit_log_recorded_at`, each ending in `position`).

use chrono::{DateTime, Utc};
use ledger::{
    AccountEvent, Currency, Hash,
    events::{EVENT_TYPES, Stored},
};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, postgres::PgRow};
use uuid::Uuid;

use super::{Page, QueryError, cursor::CursorKey, fetch_limit, parse_filter_text};

/// Which events to list; every given criterion must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub account_id: Option<Uuid>,
    pub actor: Option<String>,
    /// Event type names from [`EVENT_TYPES`]; when given, not empty.
    pub event_types: Option<Vec<String>>,
    pub correlation_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl AuditFilter {
    /// Checks and normalises a filter as a client gave it; refusals name the field.
    pub fn parse(
        account_id: Option<Uuid>,
        actor: Option<&str>,
        event_types: Option<&[String]>,
        correlation_id: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Self, QueryError> {
        let event_types = event_types
            .map(|names| {
                if names.is_empty() {
                    return Err(QueryError::invalid(
                        "eventTypes",
                        "must name at least one event type, or be left out",
                    ));
                }
                let mut known: Vec<String> = Vec::with_capacity(names.len());
                for name in names {
                    let name = name.trim();
                    if !EVENT_TYPES.contains(&name) {
                        return Err(QueryError::invalid(
                            "eventTypes",
                            format!(
                                "{name:?} is not an event type; use {}",
                                EVENT_TYPES.join(", ")
                            ),
                        ));
                    }
                    if !known.iter().any(|k| k == name) {
                        known.push(name.to_string());
                    }
                }
                Ok(known)
            })
            .transpose()?;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(QueryError::invalid("from", "must not be later than to"));
        }
        Ok(Self {
            account_id,
            actor: actor.map(|a| parse_filter_text("actor", a)).transpose()?,
            event_types,
            correlation_id: correlation_id
                .map(|c| parse_filter_text("correlationId", c))
                .transpose()?,
            from,
            to,
        })
    }
}

/// One event as the audit log holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub position: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: i16,
    pub account_id: Uuid,
    pub stream_version: i64,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    pub roles: Vec<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub command_type: Option<String>,
    pub idempotency_key: Option<String>,
    pub client_addr: Option<String>,
    pub payload: Value,
    pub hash: Hash,
    pub previous_hash: Option<Hash>,
    /// The account's currency, as projected (`None` if the account's projection has none).
    pub currency: Option<Currency>,
}

impl AuditEntry {
    fn from_row(row: &PgRow) -> Result<Self, QueryError> {
        let hash = |bytes: Vec<u8>| {
            Hash::from_slice(&bytes)
                .map_err(|e| QueryError::Invariant(format!("a stored hash is malformed: {e:?}")))
        };
        let previous: Option<Vec<u8>> = row.try_get("prev_hash")?;
        Ok(Self {
            position: row.try_get("position")?,
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            account_id: row.try_get("account_id")?,
            stream_version: row.try_get("stream_version")?,
            recorded_at: row.try_get("recorded_at")?,
            actor: row.try_get("actor")?,
            roles: row.try_get("roles")?,
            correlation_id: row.try_get("correlation_id")?,
            causation_id: row.try_get("causation_id")?,
            command_type: row.try_get("command_type")?,
            idempotency_key: row.try_get("idempotency_key")?,
            client_addr: row.try_get("client_addr")?,
            payload: row.try_get("payload")?,
            hash: hash(row.try_get("hash")?)?,
            previous_hash: previous.map(hash).transpose()?,
            currency: row
                .try_get::<Option<String>, _>("currency")?
                .and_then(|c| Currency::parse(&c).ok()),
        })
    }

    /// The event's amount: for a movement, the change to the balance (credits > 0, debits
    /// < 0); for a hold event, what the hold reserves or frees; `None` for events without
    /// one (openings, status changes) or that cannot be read.
    pub fn amount(&self) -> Option<Decimal> {
        let event = AccountEvent::decode(
            &self.event_type,
            self.event_version,
            &self.payload,
            Stored {
                recorded_at: self.recorded_at,
            },
        )
        .ok()?;
        event.balance_change().or(match event {
            AccountEvent::HoldPlaced(h) => Some(h.amount),
            AccountEvent::HoldReleased(h) => Some(h.amount),
            AccountEvent::HoldExpired(h) => Some(h.amount),
            _ => None,
        })
    }

    pub fn key(&self) -> PositionKey {
        PositionKey(self.position)
    }
}

/// The place of an event in the audit trail: its event-store position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositionKey(pub i64);

impl CursorKey for PositionKey {
    const KIND: &'static str = "position";

    fn to_text(&self) -> String {
        self.0.to_string()
    }

    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok().map(Self)
    }
}

/// The events matching `filter`, by position, `size` of them after `after`.
pub async fn audit_trail(
    pool: &PgPool,
    filter: &AuditFilter,
    size: usize,
    after: Option<PositionKey>,
) -> Result<Page<AuditEntry>, QueryError> {
    let mut query = QueryBuilder::<Postgres>::new(
        "select position, event_id, event_type, event_version, account_id, stream_version, recorded_at,
                actor, roles, correlation_id, causation_id, command_type, idempotency_key, client_addr,
                payload, prev_hash, hash,
                (select b.currency from reporting.account_balances b where b.account_id = l.account_id) as currency
         from reporting.audit_log l
         where true",
    );
    if let Some(account_id) = filter.account_id {
        query.push(" and account_id = ").push_bind(account_id);
    }
    if let Some(actor) = &filter.actor {
        query.push(" and actor = ").push_bind(actor.as_str());
    }
    match filter.event_types.as_deref() {
        Some([one]) => {
            query.push(" and event_type = ").push_bind(one.as_str());
        }
        Some(many) => {
            query
                .push(" and event_type = any(")
                .push_bind(many.to_vec())
                .push(")");
        }
        None => {}
    }
    if let Some(correlation_id) = &filter.correlation_id {
        query
            .push(" and correlation_id = ")
            .push_bind(correlation_id.as_str());
    }
    if let Some(from) = filter.from {
        query.push(" and recorded_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" and recorded_at <= ").push_bind(to);
    }
    if let Some(PositionKey(after)) = after {
        query.push(" and position > ").push_bind(after);
    }
    query
        .push(" order by position limit ")
        .push_bind(fetch_limit(size));
    let rows = query.build().fetch_all(pool).await?;
    let entries = rows
        .iter()
        .map(AuditEntry::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(entries, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_event_types_are_refused_naming_the_field() {
        let names = vec!["MoneyDeposited".to_string(), "MoneyStolen".to_string()];
        let Err(error) = AuditFilter::parse(None, None, Some(&names), None, None, None) else {
            panic!("an unknown event type was accepted");
        };
        assert!(error.to_string().starts_with("eventTypes: "), "{error}");
        assert!(error.to_string().contains("MoneyStolen"), "{error}");
    }

    #[test]
    fn repeated_event_types_are_kept_once() {
        let names = vec!["MoneyDeposited".to_string(), "MoneyDeposited".to_string()];
        let filter =
            AuditFilter::parse(None, None, Some(&names), None, None, None).expect("filter");
        assert_eq!(filter.event_types, Some(vec!["MoneyDeposited".to_string()]));
    }

    #[test]
    fn an_inverted_time_range_is_refused_naming_from() {
        let now = Utc::now();
        let Err(error) = AuditFilter::parse(
            None,
            None,
            None,
            None,
            Some(now),
            Some(now - chrono::Duration::seconds(1)),
        ) else {
            panic!("from > to was accepted");
        };
        assert!(error.to_string().starts_with("from: "), "{error}");
    }
}
