//! Reads are evidence too (PCI DSS 10.2.1): every read of account data, on either service,
//! and every refused attempt (401, FORBIDDEN, a report the role may not see) is a row of
//! the access log saying who, what, when, from where and why; the runtime role can only
//! add rows.

use chrono::{Duration, SecondsFormat, Utc};
use platform::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{AUDITOR_SUB, TestApp, key, spawn_app};

/// Every access-log row matching `filter`, newest first, as the auditor reads them.
async fn rows(app: &TestApp, filter: Value) -> Vec<Value> {
    let answer = app
        .access_log(&app.auditor(), json!({ "filter": filter, "first": 100 }))
        .await;
    answer.data("accessLog")["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"].clone())
        .collect()
}

fn the_one<'a>(rows: &'a [Value], what: &str) -> &'a Value {
    assert_eq!(rows.len(), 1, "exactly one row for {what}: {rows:#?}");
    &rows[0]
}

#[tokio::test]
async fn a_refused_access_shows_up_in_the_access_log_with_who_what_where_and_why() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await.id;

    // FORBIDDEN by a field's guard: a viewer of nothing but accounts tries to move money.
    let auditor_only = app.token("nosy-nick", &[Role::Auditor]);
    let attempt = app
        .execute(
            Some(&auditor_only),
            &[("x-correlation-id", "try-transfer-1")],
            crate::helpers::DEPOSIT,
            json!({ "input": { "accountId": account, "amount": "5.00", "idempotencyKey": key() } }),
        )
        .await;
    assert_eq!(attempt.code(), Some("FORBIDDEN"));

    // A role asking for a report it may not see: a teller asks for the access log.
    let teller_tess = app.token("teller-tess", &[Role::Teller]);
    let refused = app.access_log(&teller_tess, json!({})).await;
    assert_eq!(refused.code(), Some("FORBIDDEN"));
    let csv = app
        .client
        .get(app.url("/reports/access.csv?actor=auditor-aud"))
        .bearer_auth(&teller_tess)
        .send()
        .await
        .expect("the platform answers");
    assert_eq!(csv.status(), StatusCode::FORBIDDEN);

    // 401: a token signed with another secret, and no token at all.
    let forged = app
        .forge_token(
            &json!({ "sub": "mallory", "roles": ["supervisor"],
                     "exp": crate::helpers::unix_now() + 60 }),
            b"not-the-secret-not-the-secret-00",
        )
        .await;
    let unauthenticated = app
        .post_graphql(
            Some(&forged),
            &[("x-correlation-id", "forged-1")],
            &json!({ "query": "{ accounts { nodes { holder } } }" }),
        )
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    let no_token = app
        .client
        .get(app.url("/reports/balances.csv"))
        .send()
        .await
        .expect("the platform answers");
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);

    let refusals = rows(&app, json!({ "outcome": "REFUSED" })).await;
    for row in &refusals {
        assert_eq!(row["outcome"], "REFUSED");
        assert!(
            row["refusalReason"].as_str().is_some_and(|r| !r.is_empty()),
            "every refusal says why: {row}"
        );
        assert_eq!(row["clientAddr"], "127.0.0.1", "and from where: {row}");
        assert!(row["accessedAt"].is_string(), "and when: {row}");
    }

    let deposit = the_one(
        &rows(&app, json!({ "outcome": "REFUSED", "actor": "nosy-nick" })).await,
        "the refused deposit",
    )
    .clone();
    assert_eq!(deposit["query"], "deposit");
    assert_eq!(deposit["roles"], json!(["auditor"]));
    assert_eq!(deposit["refusalCode"], "FORBIDDEN");
    assert_eq!(deposit["correlationId"], "try-transfer-1");
    assert_eq!(
        deposit["arguments"]["input"]["accountId"],
        account.to_string(),
        "the attempt's arguments are kept: {deposit}"
    );
    assert!(
        deposit["refusalReason"]
            .as_str()
            .is_some_and(|r| r.contains("teller")),
        "the reason names the role needed: {deposit}"
    );

    let tess = rows(
        &app,
        json!({ "outcome": "REFUSED", "actor": "teller-tess" }),
    )
    .await;
    let queries: Vec<&str> = tess.iter().filter_map(|r| r["query"].as_str()).collect();
    assert_eq!(
        queries,
        vec!["access.csv", "accessLog"],
        "newest first: {tess:#?}"
    );
    assert!(tess.iter().all(|r| r["refusalCode"] == "FORBIDDEN"));

    let anonymous = rows(
        &app,
        json!({ "outcome": "REFUSED", "actor": "(unauthenticated)" }),
    )
    .await;
    let routes: Vec<&str> = anonymous
        .iter()
        .filter_map(|r| r["query"].as_str())
        .collect();
    assert_eq!(
        routes,
        vec!["GET /reports/balances.csv", "POST /graphql"],
        "newest first: {anonymous:#?}"
    );
    for row in &anonymous {
        assert_eq!(row["refusalCode"], "UNAUTHENTICATED");
        assert_eq!(
            row["roles"],
            json!([]),
            "nothing the token claims is believed"
        );
    }
    assert_eq!(anonymous[1]["correlationId"], "forged-1");

    // Granted reads are not mixed into the refusals, and the other way round.
    let granted = rows(&app, json!({ "outcome": "GRANTED" })).await;
    assert!(granted.iter().all(|r| r["outcome"] == "GRANTED"
        && r["refusalCode"].is_null()
        && r["refusalReason"].is_null()));
    assert!(
        granted.iter().all(|r| r["actor"] != "nosy-nick"),
        "a refused attempt is not a granted read"
    );
}

#[tokio::test]
async fn the_write_side_account_read_and_the_account_search_are_recorded() {
    let app = spawn_app().await;
    let account = app.open_usd("José Álvarez").await.id;
    let position = app.deposited(account, "1.00").await.position;
    let teller_tess = app.token("teller-tess", &[Role::Teller]);

    let read = app.account(&teller_tess, account).await;
    assert_eq!(read.data("account")["holder"], "José Álvarez");
    let search = app
        .execute(
            Some(&teller_tess),
            &[],
            "query($filter: AccountFilter, $atLeast: String) {
               accounts(filter: $filter, atLeast: $atLeast) { nodes { id } } }",
            json!({ "filter": { "holder": "lvarez" }, "atLeast": position }),
        )
        .await;
    assert_eq!(
        search.data("accounts")["nodes"][0]["id"],
        account.to_string()
    );

    let of_account = rows(
        &app,
        json!({ "actor": "teller-tess", "accountId": account }),
    )
    .await;
    let read_row = the_one(&of_account, "the account read");
    assert_eq!(read_row["query"], "account");
    assert_eq!(read_row["outcome"], "GRANTED");
    assert_eq!(read_row["roles"], json!(["teller"]));

    let searches = rows(&app, json!({ "actor": "teller-tess", "query": "accounts" })).await;
    let search_row = the_one(&searches, "the account search");
    assert_eq!(search_row["arguments"]["filter"]["holder"], "lvarez");

    // The access log is written before the data is read: with the log refusing rows, the
    // write side's account read is refused too, and answers nothing.
    let mut owner = app.connection().await;
    sqlx::raw_sql(
        "create function reporting.refuse_access() returns trigger language plpgsql as
         $$ begin raise exception 'access log refused for the test'; end $$;
         create trigger refuse_access before insert on reporting.access_log
         for each row execute function reporting.refuse_access();",
    )
    .execute(&mut owner)
    .await
    .expect("install the refusing trigger");
    let unlogged = app.account(&teller_tess, account).await;
    assert!(
        unlogged.body["data"]["account"].is_null(),
        "no data without its access-log row: {:?}",
        unlogged.body
    );
    assert!(unlogged.code().is_some(), "{:?}", unlogged.body);
}

#[tokio::test]
async fn a_period_report_download_is_recorded_and_so_is_a_refused_one() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    app.deposited(a, "10.00").await;
    let period_end =
        (Utc::now() + Duration::milliseconds(1)).to_rfc3339_opts(SecondsFormat::Micros, true);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let closed = app
        .execute(
            Some(app.supervisor()),
            &[],
            "mutation($input: ClosePeriodInput!) { closePeriod(input: $input) { position } }",
            json!({ "input": { "periodEnd": period_end, "idempotencyKey": key() } }),
        )
        .await;
    closed.data("closePeriod");

    let download = |token: String| {
        let request = app
            .client
            .get(app.url(&format!(
                "/reports/period.json?periodEnd={}",
                period_end.replace(':', "%3A")
            )))
            .bearer_auth(token);
        async move { request.send().await.expect("the platform answers").status() }
    };
    assert_eq!(download(app.auditor()).await, StatusCode::OK);
    assert_eq!(
        download(app.token("teller-tess", &[Role::Teller])).await,
        StatusCode::FORBIDDEN
    );

    let downloads = rows(&app, json!({ "query": "period.json" })).await;
    assert_eq!(downloads.len(), 2, "{downloads:#?}");
    let (refused, granted) = (&downloads[0], &downloads[1]);
    assert_eq!(granted["actor"], AUDITOR_SUB);
    assert_eq!(granted["outcome"], "GRANTED");
    assert_eq!(granted["arguments"]["periodEnd"], period_end);
    assert_eq!(refused["actor"], "teller-tess");
    assert_eq!(refused["outcome"], "REFUSED");
    assert_eq!(refused["refusalCode"], "FORBIDDEN");
}
