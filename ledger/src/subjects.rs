//! JetStream names: the stream, its subjects, and the subject of each event.
//!
//! Subjects are `<prefix>.accounts.<account_id>.<EventType>`, so a consumer can
//! filter by account or by event type with NATS wildcards.

use crate::{AccountId, EventId};

/// Default JetStream stream name (`FOLIO_NATS_STREAM`).
pub const DEFAULT_STREAM: &str = "LEDGER";
/// Default subject prefix (`FOLIO_NATS_SUBJECT_PREFIX`).
pub const DEFAULT_SUBJECT_PREFIX: &str = "ledger";
/// The longest stream name or prefix accepted.
pub const NAME_LEN_MAX: usize = 64;

/// The subject one event is published on.
pub fn event_subject(prefix: &str, account_id: AccountId, event_type: &str) -> String {
    format!("{prefix}.accounts.{account_id}.{event_type}")
}

/// The subject filter that covers every event of a deployment.
pub fn all_events(prefix: &str) -> String {
    format!("{prefix}.accounts.>")
}

/// The `Nats-Msg-Id` header value that deduplicates an event's publication.
pub fn message_id(event_id: EventId) -> String {
    event_id.to_string()
}

/// A stream name or subject prefix: letters, digits, `-` and `_`, at most [`NAME_LEN_MAX`].
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_account_and_event_type() {
        let id: AccountId = "0190c0de-0000-7000-8000-000000000001".parse().expect("id");
        assert_eq!(
            event_subject("ledger", id, "MoneyDeposited"),
            "ledger.accounts.0190c0de-0000-7000-8000-000000000001.MoneyDeposited"
        );
        assert_eq!(all_events("t_1"), "t_1.accounts.>");
    }

    #[test]
    fn names_with_wildcards_or_dots_are_refused() {
        assert!(is_valid_name("LEDGER"));
        assert!(is_valid_name("test_0190-ab"));
        assert!(!is_valid_name("a.b"));
        assert!(!is_valid_name("a*"));
        assert!(!is_valid_name(">"));
        assert!(!is_valid_name(""));
    }
}
