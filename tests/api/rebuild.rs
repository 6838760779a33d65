//! `folio rebuild` while the platform runs: the read models built again from the stream
//! answer exactly as before, the live projection carries on in the new tables, and the
//! access log is kept.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, key, spawn_app};

async fn all_balances(app: &TestApp, now: &str, at_least: &str) -> Value {
    let answer = app
        .balances_as_of(
            &app.auditor(),
            json!({ "asOf": now, "first": 500, "atLeast": at_least }),
        )
        .await;
    answer.data("balancesAsOf")["edges"].clone()
}

async fn trail(app: &TestApp, at_least: &str) -> Value {
    let answer = app
        .audit_trail(
            &app.auditor(),
            json!({ "filter": {}, "first": 500, "atLeast": at_least }),
        )
        .await;
    answer.data("auditTrail")["edges"].clone()
}

#[tokio::test]
async fn a_rebuild_while_running_answers_as_before_and_the_projection_carries_on() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Bob").await.id;
    app.deposited(a, "100.00").await;
    let mut last = String::new();
    for n in 0..20 {
        let answer = app
            .transfer(
                app.teller(),
                json!({ "fromAccountId": a, "toAccountId": b, "amount": format!("1.{n:02}"), "idempotencyKey": key() }),
            )
            .await;
        last = answer.data("transfer")["position"]
            .as_str()
            .expect("position")
            .to_string();
    }
    let asked_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let balances = all_balances(&app, &asked_at, &last).await;
    let events = trail(&app, &last).await;
    let reads: i64 = sqlx::query_scalar("select count(*) from reporting.access_log")
        .fetch_one(&app.pool)
        .await
        .expect("access log");

    let nats = async_nats::connect(&app.settings.nats.url)
        .await
        .expect("NATS");
    let report = reporting::rebuild::rebuild(&app.pool, nats, &app.settings.nats, &|_, _| {})
        .await
        .expect("rebuild");
    assert_eq!(
        report.events, 43,
        "two openings, a deposit and twenty transfers' legs"
    );

    assert_eq!(all_balances(&app, &asked_at, &last).await, balances);
    assert_eq!(trail(&app, &last).await, events);
    let kept: i64 = sqlx::query_scalar("select count(*) from reporting.access_log where id <= $1")
        .bind(reads)
        .fetch_one(&app.pool)
        .await
        .expect("access log");
    assert!(kept >= reads, "the access log survives a rebuild");

    // The live projection resumes in the new tables.
    let after = app.deposited(b, "5.00").await;
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let balance = app.balance_at(b, &now, &after.position).await.expect("b");
    let expected: rust_decimal::Decimal = (0..20)
        .map(|n| {
            format!("1.{n:02}")
                .parse::<rust_decimal::Decimal>()
                .expect("decimal")
        })
        .sum::<rust_decimal::Decimal>()
        + rust_decimal::Decimal::new(500, 2);
    assert_eq!(balance.balance, expected.to_string());
    let indexes: i64 = sqlx::query_scalar(
        "select count(*) from pg_indexes where schemaname = 'reporting' and tablename = 'audit_log'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("indexes");
    assert_eq!(
        indexes, 6,
        "the rebuilt audit log has its key and five indexes"
    );
}
