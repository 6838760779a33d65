//! Typed identifiers, so an account id can never be passed where a transfer id belongs.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (UUID v7) identifier.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// An account, and the event stream that records it.
    AccountId
);
uuid_id!(
    /// One transfer; both of its legs carry it.
    TransferId
);
uuid_id!(
    /// One stored event; also the JetStream message id that deduplicates publication.
    EventId
);
uuid_id!(
    /// One executed command; every event it produced names it in its metadata.
    CommandId
);
uuid_id!(
    /// One hold (a card authorisation's reservation of funds), from placing to settling.
    HoldId
);
uuid_id!(
    /// One reversal; the events that undo a movement (both legs of a transfer) carry it.
    ReversalId
);
uuid_id!(
    /// One four-eyes adjustment, from its request to its approval, rejection or expiry.
    AdjustmentId
);
