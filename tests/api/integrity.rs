//! The history the platform writes through its API can be trusted: every stream is a
//! gap-free hash chain, and the stored events cannot be edited or removed.

use accounts::store::EventStore;
use ledger::AccountId;
use serde_json::json;

use crate::helpers::{key, spawn_app};

#[tokio::test]
async fn every_stream_written_through_the_api_is_an_intact_hash_chain() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Grace").await.id;
    app.deposited(a, "100.00").await;
    let _ = app
        .transfer(
            app.teller(),
            json!({ "fromAccountId": a, "toAccountId": b, "amount": "30.00", "idempotencyKey": key() }),
        )
        .await
        .data("transfer");
    app.frozen(b).await;

    let store = EventStore::new(app.pool.clone());
    for (id, expected_versions) in [(a, 3), (b, 3)] {
        let events = store
            .read_stream_from(AccountId::from_uuid(id), 1)
            .await
            .expect("read the stream");
        assert_eq!(events.len(), expected_versions);
        let mut previous = None;
        for (index, event) in events.iter().enumerate() {
            assert_eq!(
                event.stream_version,
                i64::try_from(index).expect("small") + 1
            );
            assert_eq!(
                event.prev_hash, previous,
                "version {}",
                event.stream_version
            );
            assert!(event.hash_is_intact(), "version {}", event.stream_version);
            previous = Some(event.hash);
        }
    }
}

#[tokio::test]
async fn stored_events_cannot_be_updated_deleted_or_truncated() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.deposited(account.id, "10.00").await;
    let before = app.written().await;

    for statement in [
        "update accounts.events set payload = jsonb_set(payload, '{amount}', '\"1000.00\"')",
        "delete from accounts.events",
        "truncate accounts.events",
    ] {
        let refused = sqlx::query(statement).execute(&app.pool).await;
        let error = refused.expect_err(statement).to_string();
        assert!(error.contains("append-only"), "{statement}: {error}");
    }
    assert_eq!(app.written().await, before);
    assert_eq!(
        app.read_account(account.id).await.map(|a| a.balance),
        Some("10.00".into())
    );
}
