//! The accounts and reporting services as two processes (`folio accounts` beside `folio
//! reporting`) sharing one database and one JetStream stream: a write on one port is read
//! on the other, and each port serves only its own service's operations.

use chrono::{SecondsFormat, Utc};
use folio::startup::Mode;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    MovementPayload, TestApp, assert_message_names, key, position, spawn_service, test_settings,
};

#[tokio::test]
async fn a_mutation_on_the_accounts_port_is_read_on_the_reporting_port() {
    let settings = test_settings(|_| {}).await;
    let accounts = spawn_service(&settings, Mode::Accounts).await;
    let reporting = spawn_service(&settings, Mode::Reporting).await;
    assert_ne!(accounts.address, reporting.address);

    let account = accounts.open_usd("Ada").await.id;
    let deposited: MovementPayload = accounts.deposited(account, "42.00").await;
    let withdrawn: MovementPayload = accounts
        .withdraw(
            accounts.teller(),
            json!({ "accountId": account, "amount": "2.50", "idempotencyKey": key() }),
        )
        .await
        .parse("withdraw");
    assert!(position(&withdrawn.position) > position(&deposited.position));

    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let balance = reporting
        .balance_at(account, &now, &withdrawn.position)
        .await
        .expect("the reporting service knows the account");
    assert_eq!(balance.balance, "39.50");
    assert_eq!(balance.version, 3);
    assert_eq!(balance.holder, "Ada");

    // Each port serves its own service only.
    let on_accounts = accounts
        .balance_as_of(
            accounts.teller(),
            json!({ "accountId": account, "asOf": now, "atLeast": withdrawn.position }),
        )
        .await;
    assert_eq!(on_accounts.status, StatusCode::OK);
    assert_eq!(
        on_accounts.code(),
        Some("VALIDATION"),
        "{}",
        on_accounts.body
    );
    assert_message_names(&on_accounts, "balanceAsOf");

    let before = reporting.written().await;
    let on_reporting = reporting
        .execute(
            Some(reporting.teller()),
            &[],
            "mutation($account: UUID!, $key: String!) {
               deposit(input: { accountId: $account, amount: \"1.00\", idempotencyKey: $key }) { position }
             }",
            json!({ "account": account, "key": key() }),
        )
        .await;
    assert_eq!(on_reporting.status, StatusCode::OK);
    assert_eq!(
        on_reporting.code(),
        Some("VALIDATION"),
        "{}",
        on_reporting.body
    );
    assert!(
        on_reporting.message().to_lowercase().contains("mutation"),
        "{}",
        on_reporting.body
    );
    assert!(on_reporting.body["data"].is_null(), "{}", on_reporting.body);
    assert_eq!(reporting.written().await, before, "nothing was written");
    let strongly_consistent = reporting
        .execute(
            Some(reporting.teller()),
            &[],
            "query($id: UUID!) { account(id: $id) { id balance } }",
            json!({ "id": account }),
        )
        .await;
    assert_eq!(
        strongly_consistent.code(),
        Some("VALIDATION"),
        "{}",
        strongly_consistent.body
    );
    assert_message_names(&strongly_consistent, "account");

    // The CSV reports belong to the reporting service.
    let url = |app: &TestApp| app.url(&format!("/reports/balances.csv?asOf={now}"));
    let from_reporting = reporting
        .client
        .get(url(&reporting))
        .bearer_auth(reporting.teller())
        .send()
        .await
        .expect("the reporting service answers");
    assert_eq!(from_reporting.status(), StatusCode::OK);
    let from_accounts = accounts
        .client
        .get(url(&accounts))
        .bearer_auth(accounts.teller())
        .send()
        .await
        .expect("the accounts service answers");
    assert_eq!(from_accounts.status(), StatusCode::NOT_FOUND);
}
