//! Folio's shared kernel: the language the accounts and reporting services share.
//!
//! Money and currencies, identifiers, the published event contracts (with their
//! upcasters), the envelope an event travels in, the hash chain that makes
//! history tamper-evident, JetStream subject names and the closed set of error
//! codes. Nothing here performs IO or knows about HTTP, GraphQL, SQL or NATS.

pub mod envelope;
pub mod error_code;
pub mod events;
pub mod hashing;
pub mod ids;
pub mod integrity;
pub mod money;
pub mod period;
pub mod status;
pub mod subjects;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;

pub use envelope::{EventMetadata, RecordedEvent};
pub use error_code::ErrorCode;
pub use events::AccountEvent;
pub use hashing::Hash;
pub use ids::{AccountId, AdjustmentId, CommandId, EventId, HoldId, ReversalId, TransferId};
pub use money::{Currency, Money, MoneyError, PositiveAmount};
