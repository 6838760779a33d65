//! `executeBatch` (../shared/API.md, "Batches"): independent and atomic batches, refusals
//! with their code and field, idempotent retries, and the size limit.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, key, spawn_app};

const EXECUTE_BATCH: &str = "mutation($input: BatchInput!) {
  executeBatch(input: $input) {
    results { index ok code message field eventId transferId position }
    committed position
  }
}";

async fn batch(app: &TestApp, operations: Value, atomic: bool) -> Value {
    let answer = app
        .execute(
            Some(app.teller()),
            &[],
            EXECUTE_BATCH,
            json!({ "input": { "operations": operations, "atomic": atomic } }),
        )
        .await;
    answer.data("executeBatch").clone()
}

fn deposit(account: Uuid, amount: &str, idempotency_key: &str) -> Value {
    json!({ "deposit": { "accountId": account, "amount": amount, "idempotencyKey": idempotency_key } })
}

fn withdraw(account: Uuid, amount: &str, idempotency_key: &str) -> Value {
    json!({ "withdraw": { "accountId": account, "amount": amount, "idempotencyKey": idempotency_key } })
}

fn transfer(from: Uuid, to: Uuid, amount: &str, idempotency_key: &str) -> Value {
    json!({ "transfer": { "fromAccountId": from, "toAccountId": to, "amount": amount, "idempotencyKey": idempotency_key } })
}

async fn balance(app: &TestApp, id: Uuid) -> String {
    app.read_account(id).await.expect("account").balance
}

#[tokio::test]
async fn an_independent_batch_with_one_refused_operation_commits_the_others() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Bob").await.id;
    let before = app.event_count().await;
    let operations = json!([
        deposit(a, "100.00", &key()),
        withdraw(b, "5.00", &key()),
        transfer(a, b, "30.00", &key()),
    ]);
    let payload = batch(&app, operations, false).await;
    assert_eq!(payload["committed"], 2, "{payload}");
    let results = payload["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["ok"], true);
    assert!(results[0]["eventId"].is_string());
    assert_eq!(results[1]["ok"], false);
    assert_eq!(results[1]["code"], "INSUFFICIENT_FUNDS");
    assert_eq!(results[1]["field"], "input.operations.1.withdraw.amount");
    assert!(
        results[1]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("input.operations.1.withdraw.amount: ")),
        "{payload}"
    );
    assert_eq!(results[2]["ok"], true);
    assert!(results[2]["transferId"].is_string());
    for (index, result) in results.iter().enumerate() {
        assert_eq!(result["index"], index);
    }
    assert_eq!(
        app.event_count().await,
        before + 3,
        "a deposit and two legs"
    );
    assert_eq!(balance(&app, a).await, "70.00");
    assert_eq!(balance(&app, b).await, "30.00");
    assert_eq!(payload["position"], results[2]["position"]);
}

#[tokio::test]
async fn an_atomic_batch_with_one_refused_operation_commits_nothing() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Bob").await.id;
    let before = app.written().await;
    let operations = json!([
        deposit(a, "100.00", &key()),
        withdraw(b, "5.00", &key()),
        transfer(a, b, "30.00", &key()),
    ]);
    let payload = batch(&app, operations, true).await;
    assert_eq!(payload["committed"], 0, "{payload}");
    assert!(payload["position"].is_null());
    let codes: Vec<&str> = payload["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["code"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        codes,
        [
            "LINKED_OPERATION_FAILED",
            "INSUFFICIENT_FUNDS",
            "LINKED_OPERATION_FAILED"
        ]
    );
    assert_eq!(
        payload["results"][1]["field"],
        "input.operations.1.withdraw.amount"
    );
    assert_eq!(
        app.written().await,
        before,
        "nothing written, no key recorded"
    );
    assert_eq!(balance(&app, a).await, "0.00");

    // An operation refused before it reaches the ledger (its amount is zero) fails the
    // atomic unit the same way.
    let zero = batch(
        &app,
        json!([deposit(a, "1.00", &key()), deposit(b, "0", &key())]),
        true,
    )
    .await;
    assert_eq!(zero["results"][0]["code"], "LINKED_OPERATION_FAILED");
    assert_eq!(zero["results"][1]["code"], "INVALID_AMOUNT");
    assert_eq!(
        zero["results"][1]["field"],
        "input.operations.1.deposit.amount"
    );
    assert_eq!(app.written().await, before);

    // The same batch, refusal removed, commits as one.
    let payload = batch(
        &app,
        json!([
            deposit(a, "100.00", &key()),
            transfer(a, b, "30.00", &key())
        ]),
        true,
    )
    .await;
    assert_eq!(payload["committed"], 2, "{payload}");
    assert_eq!(balance(&app, a).await, "70.00");
    assert_eq!(balance(&app, b).await, "30.00");
}

#[tokio::test]
async fn a_retried_batch_answers_as_the_first_time_and_moves_money_once() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Bob").await.id;
    let operations = json!([deposit(a, "50.00", &key()), transfer(a, b, "20.00", &key()),]);
    let first = batch(&app, operations.clone(), true).await;
    let events = app.event_count().await;
    let again = batch(&app, operations.clone(), true).await;
    assert_eq!(again, first);
    let independent = batch(&app, operations, false).await;
    assert_eq!(independent["results"], first["results"]);
    assert_eq!(app.event_count().await, events);
    assert_eq!(balance(&app, a).await, "30.00");

    // One key reused for another input fails that operation (and, atomically, the rest).
    let reused = first["results"][0].clone();
    assert_eq!(reused["ok"], true);
    let idempotency_key = key();
    batch(&app, json!([deposit(a, "1.00", &idempotency_key)]), false).await;
    let payload = batch(
        &app,
        json!([
            deposit(b, "1.00", &key()),
            deposit(a, "2.00", &idempotency_key)
        ]),
        true,
    )
    .await;
    assert_eq!(payload["results"][0]["code"], "LINKED_OPERATION_FAILED");
    assert_eq!(payload["results"][1]["code"], "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(
        payload["results"][1]["field"],
        "input.operations.1.deposit.idempotencyKey"
    );
    assert_eq!(balance(&app, b).await, "20.00");
}

#[tokio::test]
async fn a_batch_holds_up_to_a_thousand_operations() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Bob").await.id;
    app.deposited(a, "1000.00").await;
    let thousand: Vec<Value> = (0..1_000)
        .map(|n| {
            if n % 2 == 0 {
                transfer(a, b, "1.00", &key())
            } else {
                transfer(b, a, "0.50", &key())
            }
        })
        .collect();
    let payload = batch(&app, json!(thousand), true).await;
    assert_eq!(payload["committed"], 1_000);
    assert_eq!(balance(&app, a).await, "750.00");
    assert_eq!(balance(&app, b).await, "250.00");

    let too_many: Vec<Value> = (0..1_001).map(|_| deposit(a, "1.00", &key())).collect();
    let before = app.written().await;
    let answer = app
        .execute(
            Some(app.teller()),
            &[],
            EXECUTE_BATCH,
            json!({ "input": { "operations": too_many, "atomic": false } }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.code(), Some("VALIDATION"), "{}", answer.body);
    assert_eq!(
        answer.body["errors"][0]["extensions"]["field"],
        "input.operations"
    );
    assert_eq!(app.written().await, before);

    let neither = app
        .execute(
            Some(app.teller()),
            &[],
            EXECUTE_BATCH,
            json!({ "input": { "operations": [ { "deposit": null, "withdraw": null } ], "atomic": false } }),
        )
        .await;
    assert_eq!(neither.code(), Some("VALIDATION"), "{}", neither.body);
    assert_eq!(
        neither.body["errors"][0]["extensions"]["field"],
        "input.operations.0"
    );
}

#[tokio::test]
async fn a_batch_needs_the_teller_role() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let answer = app
        .execute(
            Some(&app.auditor()),
            &[],
            EXECUTE_BATCH,
            json!({ "input": { "operations": [deposit(a, "1.00", &key())], "atomic": false } }),
        )
        .await;
    assert_eq!(answer.code(), Some("FORBIDDEN"), "{}", answer.body);
    assert_eq!(balance(&app, a).await, "0.00");
}
