//! `folio demo` on a fresh database: fifty accounts in three currencies, three months of
//! history booked at past instants by several people, the refusals a bank meets, a frozen
//! and a closed account; money is conserved, `folio verify` passes, the read models show
//! month ends and statements once the platform runs; and a second demo writes nothing.

use std::{collections::BTreeSet, process::Command};

use accounts::{
    integrity::{self, VerifyOptions},
    store::EventStore,
};
use chrono::{DateTime, Datelike, Duration, Utc};
use folio::{
    configuration::Settings,
    demo::{self, DEMO_SEED_DEFAULT, DemoReport},
    startup::Mode,
};
use ledger::AccountId;
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{spawn_service, test_settings};

async fn seeded() -> (Settings, DemoReport, PgPool) {
    let settings = test_settings(|_| {}).await;
    let report = demo::run(&settings, DEMO_SEED_DEFAULT)
        .await
        .unwrap_or_else(|e| panic!("the demo runs on a fresh database: {e:#}"));
    let pool = PgPool::connect(settings.database.url.expose_secret())
        .await
        .expect("connect to the demo's database");
    (settings, report, pool)
}

#[tokio::test]
async fn demo_seeds_three_months_of_verified_history_that_conserves_money() {
    let (settings, report, pool) = seeded().await;

    assert_eq!(report.accounts.len(), 50);
    let currencies: Vec<(&str, usize)> = report.by_currency().into_iter().collect();
    assert_eq!(
        currencies.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        ["EUR", "GBP", "USD"]
    );
    assert!(currencies.iter().all(|(_, n)| *n >= 10), "{currencies:?}");
    assert!(report.accounts.iter().any(|a| a.holder == "José Álvarez"));
    assert!(report.accounts.iter().any(|a| a.holder == "Zoë Brontë"));
    assert!(!report.with_status("FROZEN").is_empty());
    assert!(!report.with_status("CLOSED").is_empty());

    // Refusals write nothing: the report is their record, and each got the code meant.
    let codes: BTreeSet<&str> = report.refusals.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(
        codes,
        BTreeSet::from(["ACCOUNT_CLOSED", "ACCOUNT_FROZEN", "INSUFFICIENT_FUNDS"])
    );

    let (first, last): (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("select min(recorded_at), max(recorded_at) from accounts.events")
            .fetch_one(&pool)
            .await
            .expect("booking range");
    assert!(
        first <= Utc::now() - Duration::days(89),
        "first booking {first}"
    );
    assert!(last <= Utc::now(), "last booking {last}");
    let months: i64 = sqlx::query_scalar(
        "select count(distinct date_trunc('month', recorded_at)) from accounts.events",
    )
    .fetch_one(&pool)
    .await
    .expect("months");
    assert!(months >= 3, "{months} months of bookings");
    let actors: Vec<String> =
        sqlx::query_scalar("select distinct metadata->>'actor' from accounts.events order by 1")
            .fetch_all(&pool)
            .await
            .expect("actors");
    assert_eq!(actors, ["alice", "bob", "payroll", "sam"]);

    assert_money_is_conserved(&pool, &report).await;

    let verified = integrity::verify(
        &pool,
        &VerifyOptions {
            public_key: settings.integrity.public_key(),
            account: None,
            external: None,
            events_max: None,
            progress: None,
            backdate_max: settings.accounts.backdate_max(),
        },
    )
    .await
    .expect("verify runs");
    assert!(verified.is_clean(), "{:?}", verified.problems);
    assert_eq!(verified.events as i64, report.events);
}

/// Per currency, the accounts' balances add up to what was deposited less what was
/// withdrawn (hold captures to nobody in the bank are withdrawals); transfers, captures
/// to another account and reversed transfers only move money around.
async fn assert_money_is_conserved(pool: &PgPool, report: &DemoReport) {
    let flows: Vec<(String, Decimal)> = sqlx::query_as(
        "select payload->>'currency', sum(case
             when event_type = 'MoneyDeposited' then (payload->>'amount')::numeric
             else -(payload->>'amount')::numeric end)
         from accounts.events
         where event_type in ('MoneyDeposited', 'MoneyWithdrawn')
            or (event_type = 'HoldCaptured' and payload->>'toAccountId' is null)
         group by 1 order by 1",
    )
    .fetch_all(pool)
    .await
    .expect("deposits less withdrawals");
    let store = EventStore::new(pool.clone());
    let ids: Vec<AccountId> = report
        .accounts
        .iter()
        .map(|a| AccountId::from_uuid(a.id))
        .collect();
    let loaded = store.load_many(&ids).await.expect("load every account");
    for (currency, net) in flows {
        let balances: Decimal = loaded
            .values()
            .filter_map(|l| l.account.as_ref())
            .filter(|a| a.currency.to_string() == currency)
            .map(|a| a.balance)
            .sum();
        assert_eq!(balances, net, "{currency}");
        assert!(net > Decimal::ZERO, "{currency}");
    }
}

#[tokio::test]
async fn the_read_models_show_last_months_end_and_a_statement_once_the_platform_runs() {
    let (settings, report, pool) = seeded().await;
    let app = spawn_service(&settings, Mode::All).await;
    let position: i64 = sqlx::query_scalar("select max(position) from accounts.events")
        .fetch_one(&pool)
        .await
        .expect("newest position");
    let today = Utc::now().date_naive();
    let month_start = today.with_day(1).expect("a first of the month");
    let month_end = month_start
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        - Duration::seconds(1);

    let balances = app
        .balances_as_of(
            &app.auditor(),
            json!({ "asOf": month_end, "first": 100, "atLeast": position.to_string() }),
        )
        .await;
    let totals = balances.data("balancesAsOf")["totals"].clone();
    let counted: i64 = totals
        .as_array()
        .expect("totals")
        .iter()
        .map(|t| t["accounts"].as_i64().unwrap_or(0))
        .sum();
    assert!(counted >= 45, "accounts at last month's end: {totals}");

    let zoe = report
        .accounts
        .iter()
        .find(|a| a.holder == "Zoë Brontë")
        .expect("Zoë banks here");
    let month_before_start = (month_start - Duration::days(1))
        .with_day(1)
        .expect("a first of the month")
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let statement = app
        .statement(
            &app.auditor(),
            json!({ "accountId": zoe.id, "from": month_before_start, "to": month_end,
                    "first": 100, "atLeast": position.to_string() }),
        )
        .await;
    let entries = statement.data("statement")["entryCount"]
        .as_i64()
        .expect("entryCount");
    assert!(entries >= 3, "{}", statement.body);
}

#[tokio::test]
async fn a_second_demo_on_the_same_database_refuses_and_writes_nothing() {
    let (settings, report, pool) = seeded().await;
    let keys_before = idempotency_keys(&pool).await;

    let url = settings.database.url.expose_secret().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_folio"))
        .arg("demo")
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run folio demo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the event store already holds {} events",
            report.events
        )),
        "{stderr}"
    );
    let events: i64 = sqlx::query_scalar("select count(*) from accounts.events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(events, report.events);
    assert_eq!(idempotency_keys(&pool).await, keys_before);
}

async fn idempotency_keys(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from accounts.idempotency_keys")
        .fetch_one(pool)
        .await
        .expect("count idempotency keys")
}
