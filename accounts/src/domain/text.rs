//! Bounded, printable text fields of commands: holder names, references and reasons.

use std::fmt;

/// The longest account holder name.
pub const HOLDER_LEN_MAX: usize = 200;
/// The longest payment reference.
pub const REFERENCE_LEN_MAX: usize = 140;
/// The longest reason a supervisor may give.
pub const REASON_LEN_MAX: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters (got {len})")]
    TooLong { max: usize, len: usize },
    #[error("must not contain control, invisible or direction-changing characters")]
    ControlCharacter,
}

fn bounded(raw: &str, max: usize, required: bool) -> Result<String, TextError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() && required {
        return Err(TextError::Empty);
    }
    let len = trimmed.chars().count();
    if len > max {
        return Err(TextError::TooLong { max, len });
    }
    if trimmed.chars().any(ledger::text::is_unprintable) {
        return Err(TextError::ControlCharacter);
    }
    Ok(trimmed.to_string())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $max:expr, $required:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, TextError> {
                bounded(raw, $max, $required).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// The account holder's name: 1 to 200 printable characters, trimmed.
    Holder,
    HOLDER_LEN_MAX,
    true
);
text_type!(
    /// A payment reference: up to 140 printable characters; blank means none.
    Reference,
    REFERENCE_LEN_MAX,
    false
);
text_type!(
    /// Why a supervisor froze, unfroze or closed an account: 1 to 500 printable characters.
    Reason,
    REASON_LEN_MAX,
    true
);

text_type!(
    /// Where an adjustment's supporting document is: up to 500 printable characters.
    Evidence,
    REASON_LEN_MAX,
    false
);

/// The reference as stored in an event: `None` when absent or blank.
pub(crate) fn optional(reference: &Option<Reference>) -> Option<String> {
    reference
        .as_ref()
        .map(|r| r.as_str().to_string())
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_trimmed_and_bounded() {
        assert_eq!(
            Holder::parse("  Ada  ").map(|h| h.as_str().to_string()),
            Ok("Ada".into())
        );
        assert_eq!(Holder::parse("   "), Err(TextError::Empty));
        assert_eq!(
            Holder::parse(&"x".repeat(201)),
            Err(TextError::TooLong { max: 200, len: 201 })
        );
        assert_eq!(Holder::parse("Ada\u{7}"), Err(TextError::ControlCharacter));
    }

    #[test]
    fn a_blank_reference_means_none() {
        let blank = Reference::parse(" ").ok();
        assert_eq!(optional(&blank), None);
        assert_eq!(Reason::parse(""), Err(TextError::Empty));
    }
}
