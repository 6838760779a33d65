//! Who may read the reports: an auditor reads every report and moves no money, a caller
//! without a token gets 401 on GraphQL and on the CSV reports, and a teller's CSV download
//! holds the same balances as `balancesAsOf`.

use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{AUDITOR_SUB, BalancesAsOf, TestApp, TransferPayload, key, spawn_app};

fn rfc3339(at: DateTime<Utc>) -> String {
    at.trunc_subsecs(6)
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn instant(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw)
        .unwrap_or_else(|e| panic!("{raw:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// Granted reads in the access log, to show that a refused request read nothing.
async fn accesses(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from reporting.access_log where outcome = 'GRANTED'")
        .fetch_one(&app.pool)
        .await
        .expect("count the access log")
}

/// Two accounts with money moved between them; returns their ids and the last position.
async fn two_accounts(app: &TestApp) -> (Uuid, Uuid, String) {
    let a = app.open_usd("Ada").await.id;
    let b = app.open("Hopper, Grace \"Amazing\"", "EUR", "0").await.id;
    let c = app.open_usd("Katherine").await.id;
    app.deposited(a, "100.00").await;
    app.deposited(b, "7.50").await;
    let moved: TransferPayload = app
        .transfer(
            app.teller(),
            json!({ "fromAccountId": a, "toAccountId": c, "amount": "40.00", "idempotencyKey": key() }),
        )
        .await
        .parse("transfer");
    (a, b, moved.position)
}

#[tokio::test]
async fn an_auditor_runs_every_reporting_query_but_no_mutation() {
    let app = spawn_app().await;
    let (a, b, last) = two_accounts(&app).await;
    let auditor = app.auditor();
    let now = rfc3339(Utc::now() + TimeDelta::seconds(1));

    let balance = app
        .balance_as_of(
            &auditor,
            json!({ "accountId": a, "asOf": now, "atLeast": last }),
        )
        .await;
    assert_eq!(balance.data("balanceAsOf")["balance"], json!("60.00"));
    let balances: BalancesAsOf = app
        .balances_as_of(&auditor, json!({ "asOf": now, "atLeast": last }))
        .await
        .parse("balancesAsOf");
    assert_eq!(balances.edges.len(), 3);
    let statement = app
        .statement(
            &auditor,
            json!({ "accountId": a, "from": "2000-01-01T00:00:00Z", "to": now, "atLeast": last }),
        )
        .await;
    assert_eq!(statement.data("statement")["entryCount"], json!(2));
    let trail = app
        .audit_trail(
            &auditor,
            json!({ "filter": { "accountId": b }, "atLeast": last }),
        )
        .await;
    assert_eq!(
        trail.data("auditTrail")["edges"].as_array().map(Vec::len),
        Some(2)
    );
    let status = app
        .projection_status(&auditor, json!({ "atLeast": last }))
        .await;
    assert_eq!(status.data("projectionStatus")["position"], json!(last));
    let log = app
        .access_log(&auditor, json!({ "filter": { "actor": AUDITOR_SUB } }))
        .await;
    assert_eq!(
        log.data("accessLog")["edges"].as_array().map(Vec::len),
        Some(5),
        "four recorded queries and this one: {}",
        log.body
    );

    let refusals: [(&str, &str, Value); 7] = [
        (
            crate::helpers::OPEN_ACCOUNT,
            "teller",
            json!({ "holder": "Eve", "currency": "USD", "idempotencyKey": key() }),
        ),
        (
            crate::helpers::DEPOSIT,
            "teller",
            json!({ "accountId": a, "amount": "1.00", "idempotencyKey": key() }),
        ),
        (
            crate::helpers::WITHDRAW,
            "teller",
            json!({ "accountId": a, "amount": "1.00", "idempotencyKey": key() }),
        ),
        (
            crate::helpers::TRANSFER,
            "teller",
            json!({ "fromAccountId": a, "toAccountId": b, "amount": "1.00", "idempotencyKey": key() }),
        ),
        (
            crate::helpers::FREEZE_ACCOUNT,
            "supervisor",
            json!({ "accountId": a, "reason": "audit", "idempotencyKey": key() }),
        ),
        (
            crate::helpers::UNFREEZE_ACCOUNT,
            "supervisor",
            json!({ "accountId": a, "reason": "audit", "idempotencyKey": key() }),
        ),
        (
            crate::helpers::CLOSE_ACCOUNT,
            "supervisor",
            json!({ "accountId": a, "reason": "audit", "idempotencyKey": key() }),
        ),
    ];
    for (mutation, role, input) in refusals {
        app.assert_refused(
            app.execute(Some(&auditor), &[], mutation, json!({ "input": input })),
            "FORBIDDEN",
            role,
        )
        .await;
    }
    let account = app.read_account(a).await.expect("the account exists");
    assert_eq!(account.balance, "60.00");
    assert_eq!(account.status, "OPEN");
}

#[tokio::test]
async fn without_a_token_graphql_and_both_reports_answer_401() {
    let app = spawn_app().await;
    let (a, _, last) = two_accounts(&app).await;
    // Let the projection catch up, so a 401 cannot be mistaken for a wait.
    app.balance_at(a, &rfc3339(Utc::now()), &last).await;
    let before = accesses(&app).await;

    let graphql = app
        .post_graphql(
            None,
            &[],
            &json!({
                "query": crate::helpers::BALANCES_AS_OF,
                "variables": { "asOf": rfc3339(Utc::now()) },
            }),
        )
        .await;
    assert_eq!(graphql.status, StatusCode::UNAUTHORIZED, "{}", graphql.body);
    assert_eq!(graphql.code(), Some("UNAUTHENTICATED"), "{}", graphql.body);
    assert!(graphql.body["data"].is_null(), "{}", graphql.body);

    for path in [
        format!("/reports/balances.csv?asOf={}", rfc3339(Utc::now())),
        "/reports/balances.csv".to_string(),
        format!("/reports/audit.csv?accountId={a}"),
        "/reports/audit.csv".to_string(),
    ] {
        let response = app
            .client
            .get(app.url(&path))
            .send()
            .await
            .expect("the platform answers");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            response.headers().contains_key(header::WWW_AUTHENTICATE),
            "{path} says how to authenticate"
        );
        let body: Value = response.json().await.expect("a JSON error body");
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            json!("UNAUTHENTICATED"),
            "{path}: {body}"
        );
        assert!(
            !body.to_string().contains("Ada"),
            "{path} leaks no data: {body}"
        );
    }
    assert_eq!(accesses(&app).await, before, "nothing was read");
    let refused: i64 = sqlx::query_scalar(
        "select count(*) from reporting.access_log
         where outcome = 'REFUSED' and refusal_code = 'UNAUTHENTICATED'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count the refusals");
    assert_eq!(
        refused, 5,
        "each refused attempt (one GraphQL, four CSV) is recorded"
    );
}

/// The records of an RFC 4180 document: fields split on commas, quoted fields unquoted,
/// records ended by CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty() && !quoted,
        "the last record ends with CRLF: {text:?}"
    );
    records
}

#[tokio::test]
async fn a_teller_downloads_balances_csv_that_matches_balances_as_of() {
    let app = spawn_app().await;
    let (_, _, last) = two_accounts(&app).await;
    let as_of = rfc3339(Utc::now());
    let balances: BalancesAsOf = app
        .balances_as_of(app.teller(), json!({ "asOf": as_of, "atLeast": last }))
        .await
        .parse("balancesAsOf");
    assert_eq!(balances.edges.len(), 3);

    let response = app
        .client
        .get(app.url(&format!(
            "/reports/balances.csv?asOf={as_of}&atLeast={last}"
        )))
        .bearer_auth(app.teller())
        .send()
        .await
        .expect("the platform answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let disposition = response
        .headers()
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        disposition.starts_with("attachment") && disposition.contains(".csv"),
        "{disposition}"
    );
    let text = response.text().await.expect("a CSV body");
    let records = parse_csv(&text);
    assert_eq!(
        records.first().map(|r| r.join(",")),
        Some("account_id,holder,currency,balance,version,last_change_at".to_string()),
        "{text}"
    );
    let (rows, totals): (Vec<_>, Vec<_>) = records[1..].iter().partition(|r| !r[0].is_empty());
    assert_eq!(
        rows.len(),
        balances.edges.len(),
        "one row per account: {text}"
    );
    let totals: Vec<(String, String)> = totals
        .iter()
        .map(|r| (r[2].clone(), r[3].clone()))
        .collect();
    let expected: Vec<(String, String)> = balances
        .totals
        .iter()
        .map(|t| (t.currency.clone(), t.total.clone()))
        .collect();
    assert_eq!(totals, expected, "the CSV's totals are balancesAsOf's");
    for (row, edge) in rows.iter().zip(&balances.edges) {
        let node = &edge.node;
        assert_eq!(row.len(), 6, "{row:?}");
        assert_eq!(row[0], node.account_id.to_string());
        assert_eq!(row[1], node.holder);
        assert_eq!(row[2], node.currency);
        assert_eq!(row[3], node.balance);
        assert_eq!(row[4], node.version.to_string());
        assert_eq!(instant(&row[5]), instant(&node.last_change_at), "{row:?}");
    }
    assert!(
        rows.iter().any(|r| r[1] == "Hopper, Grace \"Amazing\""),
        "a holder with a comma and quotes comes back whole: {text}"
    );

    // The download is recorded like any other look at the reports.
    let recorded: i64 = sqlx::query_scalar(
        "select count(*) from reporting.access_log where query = 'balances.csv' and actor = 'teller-tess'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count the access log");
    assert_eq!(recorded, 1);
}
