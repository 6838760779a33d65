//! What every stored event says about its cause: who (token subject and roles), in which
//! conversation (correlation id, echoed in the response), under which command and key.

use platform::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{DEPOSIT, MovementPayload, TRANSFER, TransferPayload, key, spawn_app};

async fn metadata_of(pool: &sqlx::PgPool, event_id: Uuid) -> Value {
    sqlx::query_scalar("select metadata from accounts.events where event_id = $1")
        .bind(event_id)
        .fetch_one(pool)
        .await
        .expect("the event is stored")
}

#[tokio::test]
async fn a_deposit_records_its_actor_roles_correlation_and_command() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let alice = app.token("alice", &[Role::Teller]);
    let idempotency_key = key();

    let answer = app
        .execute(
            Some(&alice),
            &[("X-Correlation-Id", "corr-123")],
            DEPOSIT,
            json!({ "input": { "accountId": account.id, "amount": "12.34", "idempotencyKey": idempotency_key } }),
        )
        .await;
    let deposited: MovementPayload = answer.parse("deposit");
    assert_eq!(
        answer
            .headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok()),
        Some("corr-123")
    );

    let metadata = metadata_of(&app.pool, deposited.event_id).await;
    assert_eq!(metadata["actor"], json!("alice"));
    assert_eq!(metadata["roles"], json!(["teller"]));
    assert_eq!(metadata["correlationId"], json!("corr-123"));
    assert_eq!(metadata["idempotencyKey"], json!(idempotency_key));
    assert_eq!(metadata["commandType"], json!("deposit"));
    let command_id = metadata["commandId"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .unwrap_or_else(|| panic!("commandId is a UUID: {metadata}"));
    assert_eq!(metadata["causationId"], json!(command_id.to_string()));
    assert_eq!(metadata["clientAddr"], json!("127.0.0.1"));

    let (event_type, stream_id): (String, Uuid) =
        sqlx::query_as("select event_type, stream_id from accounts.events where event_id = $1")
            .bind(deposited.event_id)
            .fetch_one(&app.pool)
            .await
            .expect("the event row");
    assert_eq!(event_type, "MoneyDeposited");
    assert_eq!(stream_id, account.id);
}

#[tokio::test]
async fn a_correlation_id_is_generated_when_the_client_sends_none_or_an_unusable_one() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;

    for headers in [vec![], vec![("X-Correlation-Id", "has spaces in it")]] {
        let answer = app
            .execute(
                Some(app.teller()),
                &headers,
                DEPOSIT,
                json!({ "input": { "accountId": account.id, "amount": "1.00", "idempotencyKey": key() } }),
            )
            .await;
        let deposited: MovementPayload = answer.parse("deposit");
        let echoed = answer
            .headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .expect("every response carries a correlation id")
            .to_string();
        assert!(Uuid::parse_str(&echoed).is_ok(), "{echoed:?}");
        let metadata = metadata_of(&app.pool, deposited.event_id).await;
        assert_eq!(metadata["correlationId"], json!(echoed));
    }
}

#[tokio::test]
async fn both_legs_of_a_transfer_share_one_command_and_transaction() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Grace").await.id;
    app.deposited(a, "50.00").await;
    let bob = app.token("bob", &[Role::Teller, Role::Auditor]);

    let answer = app
        .execute(
            Some(&bob),
            &[("X-Correlation-Id", "payroll-7")],
            TRANSFER,
            json!({ "input": { "fromAccountId": a, "toAccountId": b, "amount": "20.00", "reference": "june", "idempotencyKey": key() } }),
        )
        .await;
    let transferred: TransferPayload = answer.parse("transfer");

    let legs: Vec<(Uuid, String, Value, Value, String)> = sqlx::query_as(
        "select stream_id, event_type, payload, metadata, tx_id::text from accounts.events
         where payload->>'transferId' = $1 order by stream_id = $2 desc",
    )
    .bind(transferred.transfer_id.to_string())
    .bind(a)
    .fetch_all(&app.pool)
    .await
    .expect("the transfer's events");
    assert_eq!(legs.len(), 2, "{legs:?}");
    let (debit, credit) = (&legs[0], &legs[1]);
    assert_eq!((debit.0, debit.1.as_str()), (a, "TransferDebited"));
    assert_eq!((credit.0, credit.1.as_str()), (b, "TransferCredited"));
    assert_eq!(debit.2["amount"], json!("20.00"));
    assert_eq!(credit.2["amount"], json!("20.00"));
    assert_eq!(debit.2["reference"], json!("june"));
    assert_eq!(debit.2["toAccountId"], json!(b));
    assert_eq!(credit.2["fromAccountId"], json!(a));
    assert_eq!(debit.3, credit.3, "one command, one metadata");
    assert_eq!(debit.3["actor"], json!("bob"));
    assert_eq!(debit.3["roles"], json!(["teller", "auditor"]));
    assert_eq!(debit.3["correlationId"], json!("payroll-7"));
    assert_eq!(debit.3["commandType"], json!("transfer"));
    assert_eq!(
        debit.4, credit.4,
        "both legs are written by one transaction"
    );
}
