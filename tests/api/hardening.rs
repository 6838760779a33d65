//! The hardening reproductions (issue "Hardening"), each as it was reported and as its kind:
//! documents that used to abort the process, GraphQL spec rules, the decimal grammar,
//! tokens, the shape of every edge's answer, cursors and minor units.

use chrono::{SecondsFormat, Utc};
use platform::testing::TEST_JWT_SECRET;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Gql, TestApp, key, spawn_app, unix_now};

/// A deposit written inline in the document, with `fields` as its input object's body.
fn inline_deposit(fields: &str) -> String {
    format!("mutation {{ deposit(input: {{{fields}}}) {{ position }} }}")
}

fn assert_validation(answer: &Gql, case: &str) {
    assert_eq!(answer.status, StatusCode::OK, "{case}: {}", answer.body);
    assert_eq!(answer.code(), Some("VALIDATION"), "{case}: {}", answer.body);
}

async fn still_alive(app: &TestApp) {
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("the process still answers");
    assert_eq!(health.status(), StatusCode::OK);
    let answer = app
        .execute(Some(app.teller()), &[], "{ __typename }", json!({}))
        .await;
    assert_eq!(answer.data("__typename"), &json!("Query"));
}

#[tokio::test]
async fn documents_nested_deep_enough_to_overflow_the_parser_are_refused_and_the_process_lives() {
    let app = spawn_app().await;
    // Any validly signed token will do, even one without roles.
    let nobody = app.token("nobody", &[]);
    let depth = 1_500;
    let cases = [
        (
            "nested lists",
            format!("{{ x(a: {}1{}) }}", "[".repeat(depth), "]".repeat(depth)),
        ),
        (
            "nested objects",
            format!("{{ x(a: {}1{}) }}", "{a: ".repeat(depth), "}".repeat(depth)),
        ),
        (
            "nested lists in a variable's default",
            format!(
                "query($v: [Int] = {}1{}) {{ __typename }}",
                "[".repeat(depth),
                "]".repeat(depth)
            ),
        ),
        (
            "nested lists in a directive's argument",
            format!(
                "{{ __typename @skip(if: {}true{}) }}",
                "[".repeat(depth),
                "]".repeat(depth)
            ),
        ),
        (
            "nested selections",
            format!("{}{}", "{ a ".repeat(depth), "}".repeat(depth)),
        ),
    ];
    for (case, query) in cases {
        let answer = app.execute(Some(&nobody), &[], &query, json!({})).await;
        assert_validation(&answer, case);
        assert!(
            answer.message().contains("nests"),
            "{case}: {}",
            answer.body
        );
    }
    still_alive(&app).await;
}

#[tokio::test]
async fn a_repeated_input_field_is_refused_whether_written_inline_or_in_variables() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let before = app.written().await;
    let query = inline_deposit(&format!(
        "accountId: \"{}\", amount: \"1\", amount: \"2\", idempotencyKey: \"k\"",
        account.id
    ));
    let answer = app
        .execute(Some(app.teller()), &[], &query, json!({}))
        .await;
    assert_validation(&answer, "inline");
    assert!(answer.message().contains("\"amount\""), "{}", answer.body);

    // The same in the variables' JSON: refused before GraphQL reads it.
    let body = format!(
        r#"{{"query": "mutation($i: DepositInput!) {{ deposit(input: $i) {{ position }} }}",
            "variables": {{"i": {{"accountId": "{}", "amount": "1", "amount": "2", "idempotencyKey": "k"}}}}}}"#,
        account.id
    );
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(app.teller())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json: Value = response.json().await.expect("a JSON answer");
    assert_eq!(json["errors"][0]["extensions"]["code"], "VALIDATION");
    assert!(
        json["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("appears twice")),
        "{json}"
    );
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn a_variable_used_where_another_type_is_expected_is_refused() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let before = app.written().await;
    let input = json!({ "accountId": account.id, "amount": "5.00", "idempotencyKey": key() });
    let answer = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($i: WithdrawInput!) { deposit(input: $i) { position } }",
            json!({ "i": input }),
        )
        .await;
    assert_validation(&answer, "WithdrawInput as DepositInput");
    assert_eq!(answer.body["errors"][0]["extensions"]["field"], "input");
    assert!(
        answer.message().contains("WithdrawInput"),
        "{}",
        answer.body
    );

    let nullable = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($i: DepositInput) { deposit(input: $i) { position } }",
            json!({ "i": input }),
        )
        .await;
    assert_validation(&nullable, "a nullable variable where a value is required");

    let scalar = app
        .execute(
            Some(app.teller()),
            &[],
            "query($v: String!) { account(id: $v) { id } }",
            json!({ "v": account.id }),
        )
        .await;
    assert_validation(&scalar, "String where UUID is expected");
    assert_eq!(scalar.body["errors"][0]["extensions"]["field"], "id");
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn unknown_directives_and_directive_arguments_of_the_wrong_type_are_refused() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let cases = [
        (
            "unknown directive",
            "query($id: UUID!) { account(id: $id) @nonsense { id } }",
            "@nonsense",
        ),
        (
            "wrong argument type",
            "query($id: UUID!) { account(id: $id) @skip(if: \"yes\") { id } }",
            "@skip.if",
        ),
        (
            "missing argument",
            "query($id: UUID!) { account(id: $id) @include { id } }",
            "@include.if",
        ),
        (
            "misplaced directive",
            "query($id: UUID!) @skip(if: false) { account(id: $id) { id } }",
            "@skip",
        ),
    ];
    for (case, query, field) in cases {
        let answer = app
            .execute(Some(app.teller()), &[], query, json!({ "id": account.id }))
            .await;
        assert_validation(&answer, case);
        assert_eq!(
            answer.body["errors"][0]["extensions"]["field"],
            json!(field),
            "{case}: {}",
            answer.body
        );
        assert!(answer.body["data"].is_null(), "{case}: {}", answer.body);
    }
}

#[tokio::test]
async fn a_missing_or_mistyped_variable_is_a_client_error_never_internal() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let before = app.written().await;
    let missing = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($i: DepositInput!) { deposit(input: $i) { position } }",
            json!({}),
        )
        .await;
    assert_validation(&missing, "missing variable");
    assert_eq!(missing.body["errors"][0]["extensions"]["field"], "input");

    let mistyped = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($i: DepositInput!) { deposit(input: $i) { position } }",
            json!({ "i": { "accountId": 5, "amount": "1.00", "idempotencyKey": key() } }),
        )
        .await;
    assert_validation(&mistyped, "mistyped variable");
    assert_eq!(
        mistyped.body["errors"][0]["extensions"]["field"],
        "input.accountId"
    );

    let unknown_field = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($i: DepositInput!) { deposit(input: $i) { position } }",
            json!({ "i": { "accountId": account.id, "amount": "1.00", "idempotencyKey": key(), "memo": "x" } }),
        )
        .await;
    assert_validation(&unknown_field, "unknown input field");
    assert_eq!(
        unknown_field.body["errors"][0]["extensions"]["field"],
        "input.memo"
    );
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn every_decimal_input_follows_one_grammar_and_is_never_rounded() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    for amount in [
        "1_000",
        "1_0",
        "10.000000000000000000000000000001",
        "1e3",
        "1E3",
        "+1",
        "01",
        " 1",
        "1 ",
        "1.",
        ".5",
        "",
        "1,000",
        "0x10",
        "-1",
    ] {
        app.assert_refused(
            app.deposit(
                app.teller(),
                json!({ "accountId": account.id, "amount": amount, "idempotencyKey": key() }),
            ),
            "INVALID_AMOUNT",
            "amount",
        )
        .await;
    }
    for limit in ["1e3", "1_000", "-5", "+5"] {
        app.assert_refused(
            app.open_account(
                app.teller(),
                json!({ "holder": "Bo", "currency": "USD", "overdraftLimit": limit, "idempotencyKey": key() }),
            ),
            "INVALID_AMOUNT",
            "overdraftLimit",
        )
        .await;
    }
    assert_eq!(
        app.read_account(account.id).await.map(|a| a.balance),
        Some("0.00".into())
    );
}

#[tokio::test]
async fn a_retry_that_spells_the_amount_differently_is_the_same_request() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let idempotency_key = key();
    let first = app
        .deposit(
            app.teller(),
            json!({ "accountId": account.id, "amount": "10.00", "idempotencyKey": idempotency_key }),
        )
        .await;
    let retry = app
        .deposit(
            app.teller(),
            json!({ "accountId": account.id, "amount": "10", "idempotencyKey": idempotency_key }),
        )
        .await;
    assert_eq!(retry.data("deposit"), first.data("deposit"));
    let other = app
        .deposit(
            app.teller(),
            json!({ "accountId": account.id, "amount": "10.01", "idempotencyKey": idempotency_key }),
        )
        .await;
    assert_eq!(
        other.code(),
        Some("IDEMPOTENCY_KEY_REUSED"),
        "{}",
        other.body
    );
    assert_eq!(
        app.read_account(account.id).await.map(|a| a.balance),
        Some("10.00".into())
    );
}

#[tokio::test]
async fn tokens_not_yet_valid_too_long_lived_or_naming_a_control_character_get_401() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let before = app.written().await;
    let now = unix_now();
    let cases = [
        (
            "not before in an hour",
            json!({ "sub": "eve", "roles": ["teller", "auditor"], "exp": now + 7200, "nbf": now + 3600 }),
        ),
        (
            "issued in an hour",
            json!({ "sub": "eve", "roles": ["teller", "auditor"], "exp": now + 7200, "iat": now + 3600 }),
        ),
        (
            "valid until 2200",
            json!({ "sub": "eve", "roles": ["teller", "auditor"], "exp": 7_258_118_400_i64 }),
        ),
        (
            "a NUL in sub",
            json!({ "sub": "ev\u{0}e", "roles": ["teller", "auditor"], "exp": now + 600 }),
        ),
        (
            "an escape in sub",
            json!({ "sub": "\u{1b}[31meve", "roles": ["teller", "auditor"], "exp": now + 600 }),
        ),
        (
            "a sub too long",
            json!({ "sub": "e".repeat(201), "roles": ["teller", "auditor"], "exp": now + 600 }),
        ),
    ];
    for (case, claims) in cases {
        let token = app.forge_token(&claims, TEST_JWT_SECRET.as_bytes()).await;
        let answer = app
            .deposit(
                &token,
                json!({ "accountId": account.id, "amount": "1.00", "idempotencyKey": key() }),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {}",
            answer.body
        );
        assert_eq!(answer.code(), Some("UNAUTHENTICATED"), "{case}");
        let report = app
            .client
            .get(app.url("/reports/balances.csv"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answer");
        assert_eq!(
            report.status(),
            StatusCode::UNAUTHORIZED,
            "{case}: CSV report"
        );
    }
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn malformed_bodies_get_a_json_validation_error_not_debug_text() {
    let app = spawn_app().await;
    let cases: [(&str, Option<&str>, &str, StatusCode); 7] = [
        (
            "empty body",
            Some("application/json"),
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "not JSON",
            Some("application/json"),
            "not json",
            StatusCode::BAD_REQUEST,
        ),
        (
            "a JSON array",
            Some("application/json"),
            "[1, 2]",
            StatusCode::BAD_REQUEST,
        ),
        (
            "a number query",
            Some("application/json"),
            r#"{"query": 5}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "no query",
            Some("application/json"),
            r#"{"variables": {}}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "text/plain",
            Some("text/plain"),
            r#"{"query": "{ __typename }"}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "no content type",
            None,
            r#"{"query": "{ __typename }"}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (case, content_type, body, status) in cases {
        let mut request = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(app.teller())
            .body(body.to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("answer");
        assert_eq!(response.status(), status, "{case}");
        let text = response.text().await.expect("body");
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{case}: the answer is not JSON ({e}): {text}"));
        assert_eq!(
            json["errors"][0]["extensions"]["code"], "VALIDATION",
            "{case}: {json}"
        );
        for debug in ["Error(", "InvalidRequest", "line: "] {
            assert!(!text.contains(debug), "{case}: debug text leaked: {text}");
        }
    }
}

#[tokio::test]
async fn a_cursor_folio_did_not_make_is_validation_naming_after() {
    let app = spawn_app().await;
    app.open_usd("Ada").await;
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    // The old unsigned format, and a well-formed key Folio never signed.
    let base64 = |text: &str| {
        use std::fmt::Write;
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                let _ = write!(
                    out,
                    "{}",
                    table[((n >> (18 - 6 * i)) & 0x3f) as usize] as char
                );
            }
        }
        out
    };
    for cursor in [
        base64("v1:statement:262143-12-31T23:59:59Z,1"),
        base64("v2:account:00000000-0000-0000-0000-000000000000AAAAAAAAAAAAAAAA"),
        "%%%".to_string(),
    ] {
        let answer = app
            .balances_as_of(app.teller(), json!({ "asOf": now, "after": cursor }))
            .await;
        assert_validation(&answer, &cursor);
        assert_eq!(answer.body["errors"][0]["extensions"]["field"], "after");
    }
}

#[tokio::test]
async fn statement_amounts_keep_the_currency_minor_units() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let from = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    app.deposited(account.id, "5.00").await;
    let withdrawn = app
        .withdraw(
            app.teller(),
            json!({ "accountId": account.id, "amount": "5.00", "idempotencyKey": key() }),
        )
        .await;
    let position = withdrawn.data("withdraw")["position"].clone();
    let to = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let answer = app
        .statement(
            app.teller(),
            json!({ "accountId": account.id, "from": from, "to": to, "atLeast": position }),
        )
        .await;
    let statement = answer.data("statement");
    assert_eq!(statement["openingBalance"], "0.00");
    assert_eq!(statement["closingBalance"], "0.00", "{statement}");
    assert_eq!(statement["totalCredits"], "5.00");
    assert_eq!(statement["totalDebits"], "5.00");
    let balance = app
        .balance_as_of(
            app.teller(),
            json!({ "accountId": account.id, "asOf": to, "atLeast": position }),
        )
        .await;
    assert_eq!(balance.data("balanceAsOf")["balance"], "0.00");
}

#[tokio::test]
async fn reporting_refusals_name_their_argument() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let auditor = app.auditor();
    let cases = [
        (
            app.balance_as_of(
                &auditor,
                json!({ "accountId": account.id, "asOf": "yesterday" }),
            )
            .await,
            "asOf",
        ),
        (
            app.audit_trail(&auditor, json!({ "filter": { "actor": "" } }))
                .await,
            "filter.actor",
        ),
        (
            app.balance_as_of(
                &auditor,
                json!({ "accountId": account.id, "asOf": "2026-01-01T00:00:00Z", "atLeast": "-1" }),
            )
            .await,
            "atLeast",
        ),
    ];
    for (answer, field) in cases {
        assert_validation(&answer, field);
        assert_eq!(
            answer.body["errors"][0]["extensions"]["field"],
            json!(field),
            "{}",
            answer.body
        );
    }
}

#[tokio::test]
async fn a_transaction_left_open_is_named_by_readyz_projection_status_and_metrics() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.accounts.relay_held_warn = std::time::Duration::from_secs(1);
    })
    .await;
    let account = app.open_usd("Ada").await;
    // An idle-in-transaction session that has written (holds a transaction id).
    let mut idle = app.connection().await;
    sqlx::query("begin")
        .execute(&mut idle)
        .await
        .expect("begin");
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut idle)
        .await
        .expect("pid");
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut idle)
        .await
        .expect("take a transaction id");
    let waiting = app.deposited(account.id, "1.00").await;

    let status = crate::helpers::eventually("projectionStatus names the blocker", || async {
        let answer = app
            .execute(
                Some(&app.auditor()),
                &[],
                "{ projectionStatus { relayBlocker { pid database state openForSeconds eventsWaiting } } }",
                json!({}),
            )
            .await;
        let blocker = answer.data("projectionStatus")["relayBlocker"].clone();
        (!blocker.is_null() && blocker["eventsWaiting"] == json!(true)).then_some(blocker)
    })
    .await;
    assert_eq!(status["pid"], json!(pid));
    assert_eq!(status["database"], json!(app.database_name));
    assert_eq!(status["state"], "idle in transaction");
    assert!(
        status["openForSeconds"].as_f64().is_some_and(|s| s >= 1.0),
        "{status}"
    );

    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.expect("JSON");
    let detail = body["checks"]["publication"]["detail"]
        .as_str()
        .unwrap_or("");
    assert!(detail.contains(&format!("pid {pid}")), "{body}");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let held = metrics
        .lines()
        .find(|l| l.starts_with("folio_relay_horizon_held_seconds"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(held.is_some_and(|s| s >= 1.0), "{metrics}");

    // Ending the transaction releases publication: the waiting deposit is read.
    sqlx::query("rollback")
        .execute(&mut idle)
        .await
        .expect("rollback");
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let balance = app.balance_at(account.id, &now, &waiting.position).await;
    assert_eq!(balance.map(|b| b.balance), Some("1.00".into()));
}

#[tokio::test]
async fn fragment_chains_and_fan_outs_are_refused_quickly_and_the_process_lives() {
    let app = spawn_app().await;
    let nobody = app.token("nobody", &[]);
    let chain_length = 4_900;
    let chain = format!(
        "query{{...f0}}{}fragment f{chain_length} on Query{{__typename}}",
        (0..chain_length)
            .map(|i| format!("fragment f{i} on Query{{...f{}}}", i + 1))
            .collect::<String>()
    );
    let fan_depth = 28;
    let fan = format!(
        "query{{...f0}}{}fragment f{fan_depth} on Query{{__typename}}",
        (0..fan_depth)
            .map(|i| format!("fragment f{i} on Query{{...f{} ...f{}}}", i + 1, i + 1))
            .collect::<String>()
    );
    let aliases = format!(
        "{{ {} }}",
        (0..1_500)
            .map(|i| format!("a{i}: __schema {{ types {{ fields {{ args {{ type {{ ofType {{ name }} }} }} }} }} }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let cycle = "query{...a} fragment a on Query{...b} fragment b on Query{...a}".to_string();
    for (case, query, words) in [
        ("a chain of fragments", chain, "deep"),
        ("fragments that double at every level", fan, "expands"),
        ("introspection repeated under aliases", aliases, "expands"),
        ("fragments in a cycle", cycle, "cycle"),
    ] {
        let answer = app.execute(Some(&nobody), &[], &query, json!({})).await;
        assert_validation(&answer, case);
        assert!(answer.message().contains(words), "{case}: {}", answer.body);
    }
    still_alive(&app).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: folio\r\n")
        .await
        .expect("a partial request");
    let mut buffer = [0u8; 256];
    let closed = tokio::time::timeout(
        platform::http::HEADER_READ_TIMEOUT + std::time::Duration::from_secs(10),
        slow.read(&mut buffer),
    )
    .await
    .expect("the server closes the connection within its header read timeout");
    assert!(
        matches!(closed, Ok(0) | Err(_)) || buffer.starts_with(b"HTTP/1.1 408"),
        "the connection was answered instead of closed: {closed:?}"
    );
    still_alive(&app).await;
}

#[tokio::test]
async fn directive_arguments_are_checked_like_any_other() {
    let app = spawn_app().await;
    for (case, query, field) in [
        (
            "an unknown argument",
            "{ __typename @skip(if: true, x: 1) }",
            "@skip.x",
        ),
        (
            "a repeated argument",
            "{ __typename @skip(if: false, if: true) }",
            "@skip.if",
        ),
        (
            "a repeated directive",
            "{ __typename @skip(if: false) @skip(if: false) }",
            "@skip",
        ),
    ] {
        let answer = app.execute(Some(app.teller()), &[], query, json!({})).await;
        assert_validation(&answer, case);
        assert_eq!(
            answer.body["errors"][0]["extensions"]["field"],
            json!(field),
            "{case}"
        );
    }
}

#[tokio::test]
async fn refusals_found_by_probing_name_their_input() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    // A signed zero where no sign is allowed.
    app.assert_refused(
        app.open_account(
            app.teller(),
            json!({ "holder": "Bo", "currency": "USD", "overdraftLimit": "-0", "idempotencyKey": key() }),
        ),
        "INVALID_AMOUNT",
        "overdraftLimit",
    )
    .await;
    // An explicit null for a variable whose default would have done.
    let null = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($x: Decimal = \"1\", $a: UUID!) { deposit(input: {accountId: $a, amount: $x, idempotencyKey: \"k\"}) { position } }",
            json!({ "x": null, "a": account.id }),
        )
        .await;
    assert_validation(&null, "null for a defaulted variable");
    assert_eq!(
        null.body["errors"][0]["extensions"]["field"],
        "input.amount"
    );
    // A bad amount in an operation that is not the one run still makes the document invalid.
    let other = app
        .post_graphql(
            Some(app.teller()),
            &[],
            &json!({
                "query": format!("query a {{ __typename }} mutation b {{ deposit(input: {{accountId: \"{}\", amount: \"1e3\", idempotencyKey: \"k\"}}) {{ position }} }}", account.id),
                "operationName": "a",
            }),
        )
        .await;
    assert_eq!(other.code(), Some("INVALID_AMOUNT"), "{}", other.body);
    assert_eq!(
        other.body["errors"][0]["extensions"]["field"],
        "input.amount"
    );
    // Integrity questions about something that is not there.
    let proof = app
        .execute(
            Some(&app.auditor()),
            &[],
            "query($e: UUID!) { auditProof(eventId: $e) { position } }",
            json!({ "e": uuid::Uuid::nil() }),
        )
        .await;
    assert_eq!(proof.code(), Some("VALIDATION"), "{}", proof.body);
    assert_eq!(proof.body["errors"][0]["extensions"]["field"], "eventId");
    let verify = app
        .execute(
            Some(&app.auditor()),
            &[],
            "query($a: UUID!) { verifyIntegrity(accountId: $a) { ok } }",
            json!({ "a": uuid::Uuid::nil() }),
        )
        .await;
    assert_eq!(verify.code(), Some("ACCOUNT_NOT_FOUND"), "{}", verify.body);
    assert_eq!(verify.body["errors"][0]["extensions"]["field"], "accountId");
}

#[tokio::test]
async fn a_subject_with_invisible_or_direction_changing_characters_gets_401() {
    let app = spawn_app().await;
    let now = unix_now();
    for sub in [
        "alice\u{202e}ecila",
        "al\u{200b}ice",
        "\u{feff}alice",
        "alice\u{2028}x",
    ] {
        let token = app
            .forge_token(
                &json!({ "sub": sub, "roles": ["auditor"], "exp": now + 600 }),
                TEST_JWT_SECRET.as_bytes(),
            )
            .await;
        let report = app
            .client
            .get(app.url("/reports/balances.csv"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answer");
        assert_eq!(report.status(), StatusCode::UNAUTHORIZED, "{sub:?}");
    }
}
