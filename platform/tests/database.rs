//! Creating the database on first start, against the real PostgreSQL: processes that start
//! together all succeed, and an unreachable server is one clear error.

use std::str::FromStr;

use platform::db::{DbError, ensure_database};
use sqlx::{Connection, Executor, PgConnection, postgres::PgConnectOptions};

fn server() -> PgConnectOptions {
    let url = platform::config::env_or("DATABASE_URL", platform::config::DEFAULT_DATABASE_URL);
    PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_starting_together_all_find_their_database() {
    let name = format!("folio_test_{}_create_race", uuid::Uuid::new_v4().simple());
    let options = server().database(&name);
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let options = options.clone();
            tokio::spawn(async move { ensure_database(&options).await })
        })
        .collect();
    for start in starts {
        start
            .await
            .expect("task")
            .expect("every process finds or creates the database");
    }
    let mut admin = PgConnection::connect_with(&server().database("postgres"))
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable ({e}); start it with scripts/services")
        });
    let exists: bool =
        sqlx::query_scalar("select exists (select from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .expect("query");
    assert!(exists);
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "drop database \"{name}\" with (force)"
        )))
        .await
        .expect("drop");
}

#[tokio::test]
async fn an_unreachable_server_is_one_clear_error() {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(1)
        .username("postgres")
        .database("folio");
    let error = ensure_database(&options)
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(error, DbError::Unreachable { .. }), "{error:?}");
    let line = error.to_string();
    assert!(
        line.contains("postgres://postgres@127.0.0.1:1/folio"),
        "{line}"
    );
    assert!(line.contains("scripts/services"), "{line}");
    assert!(!line.contains('\n'), "one line: {line}");
}
