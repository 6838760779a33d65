//! Idempotency over HTTP: a retried request (same key, same input) gets the first answer
//! byte for byte and writes nothing, however it is retried; a refused request records no key.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{AccountPayload, MovementPayload, TransferPayload, key, spawn_app};

#[tokio::test]
async fn a_repeated_deposit_returns_the_first_answer_and_writes_nothing() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let input = json!({ "accountId": account.id, "amount": "25.00", "reference": "invoice 9", "idempotencyKey": key() });

    let first = app.deposit(app.teller(), input.clone()).await;
    let first_payload: MovementPayload = first.parse("deposit");
    let after_first = app.written().await;

    let again = app.deposit(app.teller(), input.clone()).await;
    assert_eq!(
        again.body, first.body,
        "the retry gets the identical payload"
    );
    let again_payload: MovementPayload = again.parse("deposit");
    assert_eq!(again_payload.event_id, first_payload.event_id);
    assert_eq!(again_payload.position, first_payload.position);
    assert_eq!(app.written().await, after_first);
    assert_eq!(
        app.read_account(account.id).await.map(|a| a.balance),
        Some("25.00".into())
    );
}

#[tokio::test]
async fn a_repeated_transfer_moves_money_once() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Grace").await.id;
    app.deposited(a, "100.00").await;
    let input =
        json!({ "fromAccountId": a, "toAccountId": b, "amount": "40.00", "idempotencyKey": key() });

    let first = app.transfer(app.teller(), input.clone()).await;
    let first_payload: TransferPayload = first.parse("transfer");
    let after_first = app.written().await;
    // Meanwhile the account moves on; the retry still answers as the first time.
    app.deposited(a, "1.00").await;
    let after_deposit = app.written().await;

    let again = app.transfer(app.teller(), input).await;
    assert_eq!(again.body, first.body);
    let again_payload: TransferPayload = again.parse("transfer");
    assert_eq!(again_payload.transfer_id, first_payload.transfer_id);
    assert_eq!(again_payload.from.balance, "60.00");
    assert_eq!(after_deposit.events, after_first.events + 1);
    assert_eq!(app.written().await, after_deposit);
    assert_eq!(
        app.read_account(b).await.map(|x| x.balance),
        Some("40.00".into())
    );
}

#[tokio::test]
async fn open_account_without_an_id_retried_with_the_same_key_opens_one_account() {
    let app = spawn_app().await;
    let input = json!({ "holder": "Ada", "currency": "USD", "idempotencyKey": key() });

    let first: AccountPayload = app
        .open_account(app.teller(), input.clone())
        .await
        .parse("openAccount");
    let written = app.written().await;
    let again: AccountPayload = app
        .open_account(app.teller(), input)
        .await
        .parse("openAccount");
    assert_eq!(again.account.id, first.account.id);
    assert_eq!(again.position, first.position);
    assert_eq!(app.written().await, written);
    assert_eq!(written.events, 1);
}

#[tokio::test]
async fn concurrent_retries_under_one_key_write_once() {
    const RETRIES: usize = 6;
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let before = app.written().await;
    let input = json!({ "accountId": account.id, "amount": "7.00", "idempotencyKey": key() });

    let answers = join_all((0..RETRIES).map(|_| app.deposit(app.teller(), input.clone()))).await;
    let payloads: Vec<MovementPayload> = answers.iter().map(|a| a.parse("deposit")).collect();
    assert!(
        payloads.iter().all(|p| p == &payloads[0]),
        "every retry gets the first answer: {payloads:?}"
    );
    let after = app.written().await;
    assert_eq!(after.events, before.events + 1);
    assert_eq!(after.idempotency_keys, before.idempotency_keys + 1);
    assert_eq!(
        app.read_account(account.id).await.map(|a| a.balance),
        Some("7.00".into())
    );
}

#[tokio::test]
async fn a_refused_request_keeps_no_key_and_is_decided_again_on_retry() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let input = json!({ "accountId": account.id, "amount": "30.00", "idempotencyKey": key() });

    app.assert_refused(
        app.withdraw(app.teller(), input.clone()),
        "INSUFFICIENT_FUNDS",
        "amount",
    )
    .await;
    app.deposited(account.id, "50.00").await;
    let paid: MovementPayload = app.withdraw(app.teller(), input).await.parse("withdraw");
    assert_eq!(paid.account.balance, "20.00");
}
