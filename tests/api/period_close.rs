//! Period close end to end (../shared/API.md "Period close"): after a close nothing may be
//! valued inside the period, the close is idempotent under its key and refused otherwise,
//! and its signed report checks offline and is reproduced byte for byte from the events.

use chrono::{Duration, SecondsFormat, Utc};
use ledger::{integrity::key_id, period::SignedPeriodReport};
use serde_json::{Value, json};

use crate::{
    adjustments,
    helpers::{Gql, TEST_SIGNING_SEED, TestApp, key, spawn_app},
};

const CLOSE: &str = "mutation($input: ClosePeriodInput!) {
  closePeriod(input: $input) {
    periodClose { periodEnd closedBy accounts eventCount digest signature keyId position
                  totals { currency total accounts } }
    position } }";
const CLOSES: &str = "query { periodCloses { edges { node { periodEnd closedBy } } } }";

fn instant(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn close(app: &TestApp, token: &str, period_end: &str, idempotency_key: &str) -> Gql {
    app.execute(
        Some(token),
        &[],
        CLOSE,
        json!({ "input": { "periodEnd": period_end, "idempotencyKey": idempotency_key } }),
    )
    .await
}

async fn period_json(app: &TestApp, token: &str, period_end: &str) -> (u16, String) {
    let response = app
        .client
        .get(app.url(&format!(
            "/reports/period.json?periodEnd={}",
            period_end.replace('+', "%2B").replace(':', "%3A")
        )))
        .bearer_auth(token)
        .send()
        .await
        .expect("the platform answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

async fn valued(app: &TestApp, query: &str, input: Value) -> Gql {
    app.execute(Some(app.teller()), &[], query, json!({ "input": input }))
        .await
}

#[tokio::test]
async fn after_a_close_nothing_is_valued_inside_the_period() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Grace").await.id;
    let twenty_days_ago = instant(Utc::now() - Duration::days(20));
    let deposit = valued(
        &app,
        crate::helpers::DEPOSIT,
        json!({ "accountId": a, "amount": "100.00", "valueDate": twenty_days_ago, "idempotencyKey": key() }),
    )
    .await;
    deposit.data("deposit");
    let period_end = instant(Utc::now() - Duration::days(10));
    close(&app, app.supervisor(), &period_end, &key())
        .await
        .data("closePeriod");

    let inside = instant(Utc::now() - Duration::days(15));
    for (query, field, input) in [
        (
            crate::helpers::DEPOSIT,
            "deposit",
            json!({ "accountId": a, "amount": "1.00", "valueDate": inside, "idempotencyKey": key() }),
        ),
        (
            crate::helpers::WITHDRAW,
            "withdraw",
            json!({ "accountId": a, "amount": "1.00", "valueDate": inside, "idempotencyKey": key() }),
        ),
        (
            crate::helpers::TRANSFER,
            "transfer",
            json!({ "fromAccountId": a, "toAccountId": b, "amount": "1.00", "valueDate": inside, "idempotencyKey": key() }),
        ),
    ] {
        let refused = valued(&app, query, input).await;
        assert_eq!(
            refused.code(),
            Some("PERIOD_CLOSED"),
            "{field}: {:?}",
            refused.body
        );
    }
    let hold = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($input: PlaceHoldInput!) { placeHold(input: $input) { hold { id } } }",
            json!({ "input": { "accountId": a, "amount": "5.00", "idempotencyKey": key() } }),
        )
        .await;
    let hold_id = hold.data("placeHold")["hold"]["id"].clone();
    let capture = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($input: CaptureHoldInput!) { captureHold(input: $input) { hold { status } } }",
            json!({ "input": { "holdId": hold_id, "valueDate": inside, "idempotencyKey": key() } }),
        )
        .await;
    assert_eq!(capture.code(), Some("PERIOD_CLOSED"), "{:?}", capture.body);
    let adjustment = app
        .execute(
            Some(app.supervisor()),
            &[],
            "mutation($input: RequestAdjustmentInput!) { requestAdjustment(input: $input) { position } }",
            json!({ "input": { "accountId": a, "amount": "1.00", "reason": "late fee", "valueDate": inside, "idempotencyKey": key() } }),
        )
        .await;
    assert_eq!(
        adjustment.code(),
        Some("PERIOD_CLOSED"),
        "{:?}",
        adjustment.body
    );

    // After the period's end is still open.
    let after = instant(Utc::now() - Duration::days(5));
    valued(
        &app,
        crate::helpers::DEPOSIT,
        json!({ "accountId": a, "amount": "1.00", "valueDate": after, "idempotencyKey": key() }),
    )
    .await
    .data("deposit");
}

#[tokio::test]
async fn a_period_closes_once_again_with_its_key_and_never_twice_otherwise() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    app.deposited(a, "10.00").await;
    let period_end = instant(Utc::now() - Duration::seconds(1));
    let first_key = key();
    let first = close(&app, app.supervisor(), &period_end, &first_key).await;
    let first = first.data("closePeriod").clone();
    let again = close(&app, app.supervisor(), &period_end, &first_key).await;
    assert_eq!(
        again.data("closePeriod"),
        &first,
        "the same key answers the first close"
    );

    let other_key = close(&app, app.supervisor(), &period_end, &key()).await;
    assert_eq!(
        other_key.code(),
        Some("PERIOD_CLOSED"),
        "{:?}",
        other_key.body
    );
    let earlier = instant(Utc::now() - Duration::days(1));
    let earlier = close(&app, app.supervisor(), &earlier, &key()).await;
    assert_eq!(earlier.code(), Some("PERIOD_CLOSED"), "{:?}", earlier.body);
    let teller = close(&app, app.teller(), &period_end, &key()).await;
    assert_eq!(teller.code(), Some("FORBIDDEN"));

    let listed = app
        .execute(Some(&app.auditor()), &[], CLOSES, json!({}))
        .await;
    let edges = listed.data("periodCloses")["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(edges.len(), 1, "{edges:?}");
}

#[tokio::test]
async fn the_signed_report_checks_offline_breaks_when_edited_and_is_reproduced_from_the_events() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open("Grace", "EUR", "0").await.id;
    let maker = app.token("supervisor-maker", &[platform::Role::Supervisor]);
    app.deposited(a, "100.00").await;
    app.deposited(b, "7.50").await;
    let requested = adjustments::request(&app, &maker, a, "-4.20").await;
    let id = requested.data("requestAdjustment")["adjustment"]["id"].clone();
    adjustments::approve(&app, app.supervisor(), &id)
        .await
        .data("approveAdjustment");
    let period_end = instant(Utc::now() - Duration::milliseconds(1));
    let closed = close(&app, app.supervisor(), &period_end, &key()).await;
    let closed = closed.data("closePeriod")["periodClose"].clone();
    assert_eq!(closed["accounts"], json!(2));
    assert_eq!(
        closed["totals"],
        json!([{ "currency": "EUR", "total": "7.50", "accounts": 1 },
               { "currency": "USD", "total": "95.80", "accounts": 1 }])
    );
    app.deposited(a, "1.00").await; // after the close: not in the report

    let (status, file) = period_json(&app, &app.auditor(), &period_end).await;
    assert_eq!(status, 200, "{file}");
    let public_key = ed25519_dalek::SigningKey::from_bytes(&TEST_SIGNING_SEED).verifying_key();
    let signed = SignedPeriodReport::parse(&file).expect("a period report");
    assert_eq!(signed.verify_signature(&public_key), Ok(()));
    assert_eq!(signed.key_id, key_id(&public_key));
    assert_eq!(signed.to_file(), file, "the file is canonical");

    let edited = file.replacen("\"balance\":\"95.80\"", "\"balance\":\"96.80\"", 1);
    assert_ne!(edited, file, "the report lists the adjusted balance");
    let edited = SignedPeriodReport::parse(&edited).expect("still a period report");
    assert!(edited.verify_signature(&public_key).is_err());

    let (same, recomputed) = accounts::periods::reproduces(&app.pool, &signed)
        .await
        .expect("recompute");
    assert!(
        same,
        "recomputed:\n{}\nsigned:\n{}",
        recomputed.canonical(),
        signed.report.canonical()
    );
    assert_eq!(recomputed.canonical(), signed.report.canonical());

    let (status, _) = period_json(&app, app.teller(), &period_end).await;
    assert_eq!(status, 403, "tellers do not read period reports");

    // A stored report edited in the database (by someone able to lift its trigger) is
    // caught by `folio verify`, at the last event the close covers.
    let verify = || async {
        let options = accounts::integrity::VerifyOptions {
            public_key,
            account: None,
            external: None,
            events_max: None,
            progress: None,
            backdate_max: Duration::days(62),
        };
        accounts::integrity::verify(&app.pool, &options)
            .await
            .expect("verify runs")
    };
    assert!(verify().await.problems.is_empty(), "intact before the edit");
    let mut owner = app.connection().await;
    sqlx::raw_sql(
        "alter table accounts.period_closes disable trigger period_closes_are_immutable;
         update accounts.period_closes set report = replace(report::text, '\"95.80\"', '\"96.80\"')::jsonb;
         alter table accounts.period_closes enable always trigger period_closes_are_immutable;",
    )
    .execute(&mut owner)
    .await
    .expect("edit the stored report");
    let found = verify().await;
    assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
    let problem = &found.problems[0];
    assert_eq!(problem.kind.as_str(), "PERIOD_REPORT_INVALID");
    assert_eq!(problem.position, Some(signed.report.through_position));
    assert!(
        problem.detail.contains("signature does not match"),
        "{}",
        problem.detail
    );
}
