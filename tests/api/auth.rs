//! Authentication and roles at the HTTP edge: no valid bearer token, no GraphQL (HTTP 401);
//! a valid token without the needed role gets FORBIDDEN; refused requests write nothing.

use platform::{Role, testing::TEST_JWT_SECRET};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{DEPOSIT, Gql, TestApp, error_code, key, spawn_app, unix_now};

fn deposit_body(account_id: Uuid) -> Value {
    json!({
        "query": DEPOSIT.replace("...AccountFields", "id balance"),
        "variables": { "input": { "accountId": account_id, "amount": "5.00", "idempotencyKey": key() } },
    })
}

/// Sends a deposit with the raw `Authorization` header value (none when `None`).
async fn deposit_with_header(app: &TestApp, account_id: Uuid, authorization: Option<&str>) -> Gql {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .json(&deposit_body(account_id));
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = request.send().await.expect("the platform answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.expect("a JSON body");
    Gql {
        status,
        headers,
        body,
    }
}

fn assert_unauthenticated(answer: &Gql, case: &str) {
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {}",
        answer.body
    );
    assert_eq!(
        error_code(&answer.body),
        Some("UNAUTHENTICATED"),
        "{case}: {}",
        answer.body
    );
    assert!(
        answer
            .headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer")),
        "{case}: a 401 names the scheme it wants"
    );
    assert!(answer.body.get("data").is_none(), "{case}: {}", answer.body);
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_and_write_nothing() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.deposited(account.id, "10.00").await;
    let before = app.written().await;

    let other_secret = platform::TokenKeys::new(&secrecy::SecretString::from(
        "another-secret-0123456789abcdef-xyz",
    ))
    .mint("mallory", &[Role::Teller], crate::helpers::TOKEN_TTL)
    .expect("mint with another secret");
    let expired = app
        .forge_token(
            &json!({ "sub": "bob", "roles": ["teller"], "exp": unix_now() - 3600 }),
            TEST_JWT_SECRET.as_bytes(),
        )
        .await;
    let blank_subject = app
        .forge_token(
            &json!({ "sub": "  ", "roles": ["teller"], "exp": unix_now() + 600 }),
            TEST_JWT_SECRET.as_bytes(),
        )
        .await;
    let cases: [(&str, Option<String>); 7] = [
        ("no token", None),
        ("basic credentials", Some("Basic YWxpY2U6c2VjcmV0".into())),
        ("bearer without a token", Some("Bearer ".into())),
        ("not a JWT", Some("Bearer not-a-jwt".into())),
        (
            "signed with another secret",
            Some(format!("Bearer {other_secret}")),
        ),
        ("expired", Some(format!("Bearer {expired}"))),
        ("blank subject", Some(format!("Bearer {blank_subject}"))),
    ];
    for (case, authorization) in &cases {
        let answer = deposit_with_header(&app, account.id, authorization.as_deref()).await;
        assert_unauthenticated(&answer, case);
    }
    assert_eq!(app.written().await, before);
    assert_eq!(
        app.read_account(account.id).await.map(|a| a.balance),
        Some("10.00".into())
    );
}

#[tokio::test]
async fn an_expired_token_is_refused_for_its_expiry_alone() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let claims = |exp: i64| json!({ "sub": "bob", "roles": ["teller"], "exp": exp });

    // The same hand-made token, unexpired, is accepted: only `exp` differs.
    let fresh = app
        .forge_token(&claims(unix_now() + 600), TEST_JWT_SECRET.as_bytes())
        .await;
    let accepted = deposit_with_header(&app, account.id, Some(&format!("Bearer {fresh}"))).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(
        accepted.body["data"]["deposit"]["account"]["balance"],
        json!("5.00")
    );

    let expired = app
        .forge_token(&claims(unix_now() - 3600), TEST_JWT_SECRET.as_bytes())
        .await;
    let before = app.written().await;
    let refused = deposit_with_header(&app, account.id, Some(&format!("Bearer {expired}"))).await;
    assert_unauthenticated(&refused, "expired");
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{}",
        refused.body
    );
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn a_valid_token_with_the_wrong_role_is_forbidden_and_writes_nothing() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await;
    let b = app.open_usd("Grace").await;
    app.deposited(a.id, "10.00").await;
    let auditor = app.token("audrey", &[Role::Auditor]);
    let supervisor = app.token("sam", &[Role::Supervisor]);
    let teller = app.token("tess", &[Role::Teller]);
    let nobody = app.token("nina", &[]);
    let movement = |id: Uuid| json!({ "accountId": id, "amount": "1.00", "idempotencyKey": key() });
    let status = |id: Uuid| json!({ "accountId": id, "reason": "review", "idempotencyKey": key() });
    let transfer = json!({ "fromAccountId": a.id, "toAccountId": b.id, "amount": "1.00", "idempotencyKey": key() });
    let open = json!({ "holder": "Eve", "currency": "USD", "idempotencyKey": key() });
    let before = app.written().await;

    for token in [&auditor, &supervisor, &nobody] {
        for answer in [
            app.open_account(token, open.clone()).await,
            app.deposit(token, movement(a.id)).await,
            app.withdraw(token, movement(a.id)).await,
            app.transfer(token, transfer.clone()).await,
        ] {
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(answer.code(), Some("FORBIDDEN"), "{}", answer.body);
            assert!(answer.message().contains("teller"), "{}", answer.body);
        }
    }
    for token in [&auditor, &teller, &nobody] {
        for answer in [
            app.freeze_account(token, status(a.id)).await,
            app.unfreeze_account(token, status(a.id)).await,
            app.close_account(token, status(b.id)).await,
        ] {
            assert_eq!(answer.code(), Some("FORBIDDEN"), "{}", answer.body);
            assert!(answer.message().contains("supervisor"), "{}", answer.body);
        }
    }
    // A token without any known role reads nothing either.
    let read = app.account(&nobody, a.id).await;
    assert_eq!(read.code(), Some("FORBIDDEN"), "{}", read.body);

    assert_eq!(app.written().await, before);
    let read_a = app.read_account(a.id).await.expect("account");
    assert_eq!(
        (read_a.balance.as_str(), read_a.status.as_str()),
        ("10.00", "OPEN")
    );
    assert_eq!(
        app.read_account(b.id).await.map(|x| x.status),
        Some("OPEN".into())
    );
}

#[tokio::test]
async fn an_auditor_reads_accounts_but_moves_no_money() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.deposited(account.id, "42.00").await;
    let auditor = app.token("audrey", &[Role::Auditor]);

    let read = app.account(&auditor, account.id).await;
    assert_eq!(read.data("account")["balance"], json!("42.00"));
    assert_eq!(read.data("account")["id"], json!(account.id));

    app.assert_refused(
        app.withdraw(
            &auditor,
            json!({ "accountId": account.id, "amount": "1.00", "idempotencyKey": key() }),
        ),
        "FORBIDDEN",
        "teller",
    )
    .await;
}

#[tokio::test]
async fn unknown_role_names_in_a_token_grant_nothing() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let admin = app
        .forge_token(
            &json!({ "sub": "root", "roles": ["admin", "superuser"], "exp": unix_now() + 600 }),
            TEST_JWT_SECRET.as_bytes(),
        )
        .await;
    app.assert_refused(
        app.deposit(
            &admin,
            json!({ "accountId": account.id, "amount": "1.00", "idempotencyKey": key() }),
        ),
        "FORBIDDEN",
        "teller",
    )
    .await;
}
