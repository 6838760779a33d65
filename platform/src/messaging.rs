//! NATS and JetStream: connecting with a clear failure, and the stream every deployment needs.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::config::NatsSettings;

/// How long JetStream remembers a `Nats-Msg-Id` to drop a duplicate publication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// How long to wait for the first connection before reporting NATS as down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error(
        "cannot reach NATS at {url}: {reason}. Start it with scripts/services, or point NATS_URL at a running server with JetStream"
    )]
    Unreachable { url: String, reason: String },
    #[error("JetStream stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
}

/// A client that keeps reconnecting in the background. Returns at once even if NATS is
/// down, so that commands keep working (the event store is the outbox); callers check
/// [`async_nats::Client::connection_state`] or wait with [`wait_connected`].
pub async fn connect(settings: &NatsSettings) -> Result<async_nats::Client, MessagingError> {
    async_nats::ConnectOptions::new()
        .name("folio")
        .connection_timeout(CONNECT_TIMEOUT)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(settings.url.as_str())
        .await
        .map_err(|e| MessagingError::Unreachable {
            url: settings.url.clone(),
            reason: e.to_string(),
        })
}

/// Waits up to `timeout` for the client to be connected.
pub async fn wait_connected(client: &async_nats::Client, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if client.connection_state() == async_nats::connection::State::Connected {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The deployment's stream (file storage, every event subject), created if missing.
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &NatsSettings,
) -> Result<stream::Stream, MessagingError> {
    js.get_or_create_stream(stream::Config {
        name: settings.stream.clone(),
        subjects: vec![ledger::subjects::all_events(&settings.subject_prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: DUPLICATE_WINDOW,
        description: Some("Folio ledger events, published from the accounts event store".into()),
        ..Default::default()
    })
    .await
    .map_err(|e| MessagingError::Stream {
        stream: settings.stream.clone(),
        reason: e.to_string(),
    })
}
