//! `folio up` running as the runtime role `folio_app` with `FOLIO_MIGRATE=false`, after the
//! migrations ran as the schema owner: commands, publication and reporting all work, and
//! neither the events nor the access log can be changed or removed through its grants.

use std::str::FromStr;

use folio::startup::Mode;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;

use crate::helpers::{spawn_service, test_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_runs_as_the_runtime_role() {
    let mut settings = test_settings(|_| {}).await;
    let owner = platform::db::connect(&settings.database)
        .await
        .expect("owner connects");
    folio::startup::migrate(&owner)
        .await
        .expect("the owner migrates");

    let url = settings.database.url.expose_secret().to_string();
    let options = PgConnectOptions::from_str(&url).expect("test url");
    settings.database.url = SecretString::from(format!(
        "postgres://folio_app@{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().expect("a database")
    ));
    settings.migrate = false;
    let app = spawn_service(&settings, Mode::All).await;

    let account = app.open_usd("Runtime Role").await;
    let deposit = app.deposited(account.id, "12.50").await;
    assert_eq!(deposit.account.balance, "12.50");
    let later = chrono::Utc::now().to_rfc3339();
    let balance = app
        .balance_at(account.id, &later, &deposit.position)
        .await
        .expect("projected as folio_app");
    assert_eq!(balance.balance, "12.50");

    let user: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(&app.pool)
        .await
        .expect("whoami");
    assert_eq!(user, "folio_app");
    let refused = sqlx::query("delete from accounts.events")
        .execute(&app.pool)
        .await
        .expect_err("folio_app may not delete history");
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("42501")
    );

    // The access log is evidence like the events: the runtime role wrote the read above
    // and may read it back, but can neither change nor remove a row.
    let recorded: i64 =
        sqlx::query_scalar("select count(*) from reporting.access_log where query = 'balanceAsOf'")
            .fetch_one(&app.pool)
            .await
            .expect("folio_app reads the access log");
    assert_eq!(recorded, 1);
    for statement in [
        "update reporting.access_log set actor = 'nobody'",
        "delete from reporting.access_log",
        "truncate reporting.access_log",
    ] {
        let refused = sqlx::query(statement)
            .execute(&app.pool)
            .await
            .expect_err("folio_app may only add to the access log");
        assert_eq!(
            refused
                .as_database_error()
                .and_then(|e| e.code())
                .as_deref(),
            Some("42501"),
            "{statement}"
        );
    }
}
