//! Every error code a mutation can answer with, each produced by a real request: the code is
//! the documented one, the message names the field at fault, and nothing is written.

use folio::startup::Mode;
use futures::join;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::helpers::{
    Gql, MovementPayload, Poll, assert_message_names, eventually, key, spawn_app, spawn_service,
    test_settings,
};

fn deposit_input(account_id: Uuid, amount: &str) -> Value {
    json!({ "accountId": account_id, "amount": amount, "idempotencyKey": key() })
}

fn status_input(account_id: Uuid) -> Value {
    json!({ "accountId": account_id, "reason": "review", "idempotencyKey": key() })
}

fn transfer_input(from: Uuid, to: Uuid, amount: &str) -> Value {
    json!({ "fromAccountId": from, "toAccountId": to, "amount": amount, "idempotencyKey": key() })
}

#[tokio::test]
async fn invalid_text_fields_are_validation_errors_naming_the_field() {
    let app = spawn_app().await;
    let teller = app.teller();
    let account = app.open_usd("Ada").await;

    app.assert_refused(
        app.open_account(
            teller,
            json!({ "holder": "   ", "currency": "USD", "idempotencyKey": key() }),
        ),
        "VALIDATION",
        "holder",
    )
    .await;
    app.assert_refused(
        app.open_account(
            teller,
            json!({ "holder": "Ada", "currency": "ABC", "idempotencyKey": key() }),
        ),
        "VALIDATION",
        "currency",
    )
    .await;
    app.assert_refused(
        app.open_account(
            teller,
            json!({ "holder": "Ada", "currency": "USD", "overdraftLimit": "-5", "idempotencyKey": key() }),
        ),
        "INVALID_AMOUNT",
        "overdraftLimit",
    )
    .await;
    app.assert_refused(
        app.deposit(
            teller,
            json!({ "accountId": account.id, "amount": "1.00", "idempotencyKey": "  " }),
        ),
        "VALIDATION",
        "idempotencyKey",
    )
    .await;
    app.assert_refused(
        app.deposit(
            teller,
            json!({ "accountId": account.id, "amount": "1.00", "reference": "r".repeat(141), "idempotencyKey": key() }),
        ),
        "VALIDATION",
        "reference",
    )
    .await;
    app.assert_refused(
        app.freeze_account(
            app.supervisor(),
            json!({ "accountId": account.id, "reason": "", "idempotencyKey": key() }),
        ),
        "VALIDATION",
        "reason",
    )
    .await;
}

#[tokio::test]
async fn a_decimal_sent_as_a_json_number_is_refused() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    // 0.1 has no exact binary representation; money must never travel as a float.
    app.assert_refused(
        app.deposit(
            app.teller(),
            json!({ "accountId": account.id, "amount": 0.1, "idempotencyKey": key() }),
        ),
        "INVALID_AMOUNT",
        "amount",
    )
    .await;
    assert_eq!(
        app.read_account(account.id).await.map(|a| a.balance),
        Some("0.00".into())
    );
}

#[tokio::test]
async fn a_malformed_uuid_is_a_validation_error_naming_the_field() {
    let app = spawn_app().await;
    app.open_usd("Ada").await;
    app.assert_refused(
        app.deposit(
            app.teller(),
            json!({ "accountId": "not-a-uuid", "amount": "1.00", "idempotencyKey": key() }),
        ),
        "VALIDATION",
        "accountId",
    )
    .await;
}

#[tokio::test]
async fn unfreezing_an_open_account_is_a_validation_error_naming_the_account() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.assert_refused(
        app.unfreeze_account(app.supervisor(), status_input(account.id)),
        "VALIDATION",
        "accountId",
    )
    .await;
}

#[tokio::test]
async fn a_caller_without_the_role_is_forbidden() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let auditor = app.token("audrey", &[platform::Role::Auditor]);

    app.assert_refused(
        app.deposit(&auditor, deposit_input(account.id, "1.00")),
        "FORBIDDEN",
        "teller",
    )
    .await;
    app.assert_refused(
        app.freeze_account(app.teller(), status_input(account.id)),
        "FORBIDDEN",
        "supervisor",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_account_is_not_found() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.deposited(account.id, "10.00").await;
    let nobody = Uuid::new_v4();

    let refused = app
        .assert_refused(
            app.deposit(app.teller(), deposit_input(nobody, "1.00")),
            "ACCOUNT_NOT_FOUND",
            "accountId",
        )
        .await;
    assert!(refused.message().contains(&nobody.to_string()));
    app.assert_refused(
        app.transfer(app.teller(), transfer_input(account.id, nobody, "1.00")),
        "ACCOUNT_NOT_FOUND",
        "toAccountId",
    )
    .await;
    app.assert_refused(
        app.transfer(app.teller(), transfer_input(nobody, account.id, "1.00")),
        "ACCOUNT_NOT_FOUND",
        "fromAccountId",
    )
    .await;
    app.assert_refused(
        app.close_account(app.supervisor(), status_input(nobody)),
        "ACCOUNT_NOT_FOUND",
        "accountId",
    )
    .await;
}

#[tokio::test]
async fn a_deposit_to_a_frozen_account_is_refused_naming_the_account() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.frozen(account.id).await;
    app.assert_refused(
        app.deposit(app.teller(), deposit_input(account.id, "1.00")),
        "ACCOUNT_FROZEN",
        "accountId",
    )
    .await;
}

#[tokio::test]
async fn transfers_touching_a_frozen_account_are_refused_naming_the_side() {
    let app = spawn_app().await;
    let open = app.open_usd("Ada").await;
    let frozen = app.open_usd("Grace").await;
    app.deposited(open.id, "10.00").await;
    app.deposited(frozen.id, "10.00").await;
    app.frozen(frozen.id).await;

    app.assert_refused(
        app.transfer(app.teller(), transfer_input(open.id, frozen.id, "1.00")),
        "ACCOUNT_FROZEN",
        "toAccountId",
    )
    .await;
    app.assert_refused(
        app.transfer(app.teller(), transfer_input(frozen.id, open.id, "1.00")),
        "ACCOUNT_FROZEN",
        "fromAccountId",
    )
    .await;
}

#[tokio::test]
async fn freezing_a_frozen_account_is_refused_naming_the_account() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.frozen(account.id).await;
    app.assert_refused(
        app.freeze_account(app.supervisor(), status_input(account.id)),
        "ACCOUNT_FROZEN",
        "accountId",
    )
    .await;
}

#[tokio::test]
async fn a_deposit_to_a_closed_account_is_refused_naming_the_account() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.closed(account.id).await;
    app.assert_refused(
        app.deposit(app.teller(), deposit_input(account.id, "1.00")),
        "ACCOUNT_CLOSED",
        "accountId",
    )
    .await;
}

#[tokio::test]
async fn transfers_touching_a_closed_account_are_refused_naming_the_side() {
    let app = spawn_app().await;
    let open = app.open_usd("Ada").await;
    let closed = app.open_usd("Grace").await;
    app.deposited(open.id, "10.00").await;
    app.closed(closed.id).await;

    app.assert_refused(
        app.transfer(app.teller(), transfer_input(open.id, closed.id, "1.00")),
        "ACCOUNT_CLOSED",
        "toAccountId",
    )
    .await;
    app.assert_refused(
        app.transfer(app.teller(), transfer_input(closed.id, open.id, "1.00")),
        "ACCOUNT_CLOSED",
        "fromAccountId",
    )
    .await;
}

#[tokio::test]
async fn debits_beyond_balance_and_overdraft_are_insufficient_funds() {
    let app = spawn_app().await;
    let a = app.open("Ada", "USD", "5").await;
    let b = app.open_usd("Grace").await;
    app.deposited(a.id, "10.00").await;

    let refused = app
        .assert_refused(
            app.withdraw(app.teller(), deposit_input(a.id, "15.01")),
            "INSUFFICIENT_FUNDS",
            "amount",
        )
        .await;
    assert!(refused.message().contains("15.01"), "{}", refused.body);
    app.assert_refused(
        app.transfer(app.teller(), transfer_input(a.id, b.id, "15.01")),
        "INSUFFICIENT_FUNDS",
        "amount",
    )
    .await;
    // Neither leg of the refused transfer was written.
    assert_eq!(app.read_account(a.id).await.map(|x| x.version), Some(2));
    assert_eq!(app.read_account(b.id).await.map(|x| x.version), Some(1));
}

#[tokio::test]
async fn a_transfer_between_currencies_is_a_currency_mismatch() {
    let app = spawn_app().await;
    let usd = app.open_usd("Ada").await;
    let eur = app.open("Grace", "EUR", "0").await;
    app.deposited(usd.id, "10.00").await;
    let refused = app
        .assert_refused(
            app.transfer(app.teller(), transfer_input(usd.id, eur.id, "1.00")),
            "CURRENCY_MISMATCH",
            "toAccountId",
        )
        .await;
    assert!(refused.message().contains("EUR"), "{}", refused.body);
}

#[tokio::test]
async fn amounts_that_are_not_positive_too_precise_or_too_large_are_invalid() {
    let app = spawn_app().await;
    let usd = app.open_usd("Ada").await;
    let jpy = app.open("Hiro", "JPY", "0").await;
    app.deposited(jpy.id, "100").await;

    for (account, amount) in [
        (usd.id, "0"),
        (usd.id, "-1.00"),
        (usd.id, "10.005"),
        (jpy.id, "10.5"),
        (usd.id, "1000000000000.01"),
    ] {
        app.assert_refused(
            app.deposit(app.teller(), deposit_input(account, amount)),
            "INVALID_AMOUNT",
            "amount",
        )
        .await;
    }
    app.assert_refused(
        app.withdraw(app.teller(), deposit_input(jpy.id, "0.5")),
        "INVALID_AMOUNT",
        "amount",
    )
    .await;
    // The maximum itself is accepted.
    let max: MovementPayload = app
        .deposit(app.teller(), deposit_input(usd.id, "1000000000000"))
        .await
        .parse("deposit");
    assert_eq!(max.account.balance, "1000000000000.00");
}

#[tokio::test]
async fn a_transfer_to_the_same_account_is_refused() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.deposited(account.id, "10.00").await;
    app.assert_refused(
        app.transfer(app.teller(), transfer_input(account.id, account.id, "1.00")),
        "SAME_ACCOUNT",
        "toAccountId",
    )
    .await;
}

#[tokio::test]
async fn closing_an_account_with_money_on_it_is_refused_naming_the_account() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.deposited(account.id, "0.01").await;
    app.assert_refused(
        app.close_account(app.supervisor(), status_input(account.id)),
        "NONZERO_BALANCE",
        "accountId",
    )
    .await;
    assert_eq!(
        app.read_account(account.id).await.map(|a| a.status),
        Some("OPEN".into())
    );
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_refused() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let reused = key();
    let first = app
        .deposit(
            app.teller(),
            json!({ "accountId": account.id, "amount": "10.00", "idempotencyKey": reused }),
        )
        .await;
    let _: MovementPayload = first.parse("deposit");

    // Another amount under the same key.
    app.assert_refused(
        app.deposit(
            app.teller(),
            json!({ "accountId": account.id, "amount": "11.00", "idempotencyKey": reused }),
        ),
        "IDEMPOTENCY_KEY_REUSED",
        "idempotencyKey",
    )
    .await;
    // Another mutation under the same key.
    app.assert_refused(
        app.withdraw(
            app.teller(),
            json!({ "accountId": account.id, "amount": "10.00", "idempotencyKey": reused }),
        ),
        "IDEMPOTENCY_KEY_REUSED",
        "idempotencyKey",
    )
    .await;
    assert_eq!(
        app.read_account(account.id).await.map(|a| a.balance),
        Some("10.00".into())
    );
}

/// Appends of the app's database waiting for a lock on `accounts.events`.
async fn appends_waiting(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_locks l join pg_stat_activity a on a.pid = l.pid
         where l.locktype = 'relation' and not l.granted
           and l.database = (select oid from pg_database where datname = current_database())
           and l.relation = 'accounts.events'::regclass
           and a.query ilike 'insert into accounts.events%'",
    )
    .fetch_one(pool)
    .await
    .expect("read pg_locks")
}

#[tokio::test]
async fn a_command_whose_account_keeps_changing_answers_concurrency_conflict() {
    // Two accounts processes on one database: within a process, commands on one account take
    // turns; across processes they race, and the loser retries (here: once) then gives up.
    let settings = test_settings(|s| s.accounts.append_retries_max = 1).await;
    let app = spawn_service(&settings, Mode::All).await;
    let other = spawn_service(&settings, Mode::Accounts).await;
    let account = app.open_usd("Ada").await;
    let before = app.written().await;

    // Hold back every insert into the event store (reads still pass) until both deposits wait.
    let mut locker = app.connection().await;
    let mut lock = locker.begin().await.expect("begin the lock transaction");
    sqlx::query("lock table accounts.events in exclusive mode")
        .execute(&mut *lock)
        .await
        .expect("lock the event store");

    let small_input = deposit_input(account.id, "10.00");
    let large_input = deposit_input(account.id, "25.00");
    let small = app.deposit(app.teller(), small_input.clone());
    let large = other.deposit(other.teller(), large_input.clone());
    let release = async {
        eventually("both deposits wait on the event store lock", || async {
            (appends_waiting(&app.pool).await == 2).then_some(())
        })
        .await;
        lock.commit().await.expect("release the lock");
    };
    let (small, large, ()) = join!(small, large, release);

    let (won, lost, won_amount, lost_input) = match (small.code(), large.code()) {
        (None, Some(_)) => (&small, &large, "10.00", large_input),
        (Some(_), None) => (&large, &small, "25.00", small_input),
        _ => panic!(
            "exactly one deposit should win: {} / {}",
            small.body, large.body
        ),
    };
    let won: MovementPayload = won.parse("deposit");
    assert_eq!(won.account.balance, won_amount);
    assert_eq!(lost.code(), Some("CONCURRENCY_CONFLICT"), "{}", lost.body);
    assert_message_names(lost, "retry");
    assert!(lost.body["data"].is_null(), "{}", lost.body);

    // Only the winner was written.
    let after = app.written().await;
    assert_eq!(after.events, before.events + 1);
    assert_eq!(after.idempotency_keys, before.idempotency_keys + 1);
    let read = app.read_account(account.id).await.expect("account");
    assert_eq!(read.balance, won_amount);
    assert_eq!(read.version, 2);

    // As the message says, the same request retried under the same key now goes through.
    let retried: MovementPayload = app.deposit(app.teller(), lost_input).await.parse("deposit");
    assert_eq!(retried.account.balance, "35.00");
    assert_eq!(retried.account.version, 3);
}

/// Answers of `request` tried up to `attempts` times while it is not UNAVAILABLE.
async fn until_unavailable<F, Fut>(attempts: usize, mut request: F) -> Vec<Gql>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Gql>,
{
    let mut answers = Vec::new();
    for _ in 0..attempts {
        let answer = request().await;
        let done = answer.code() == Some("UNAVAILABLE");
        answers.push(answer);
        if done {
            break;
        }
    }
    answers
}

#[tokio::test]
async fn a_mutation_while_the_database_is_gone_answers_unavailable_without_details() {
    const ATTEMPTS: usize = 3;
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.deposited(account.id, "10.00").await;
    let before = app.written().await;
    app.pool.close().await;

    let name = &app.database_name;
    let gone = format!("{name}_gone");
    let mut admin = PgConnection::connect_with(&app.admin_options())
        .await
        .expect("connect to the postgres database");
    let poll = Poll::start();
    loop {
        sqlx::query(
            "select pg_terminate_backend(pid) from pg_stat_activity
             where datname = $1 and pid <> pg_backend_pid()",
        )
        .bind(name)
        .execute(&mut admin)
        .await
        .expect("terminate the app's connections");
        // Refused while a terminated backend has not exited yet.
        let renamed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "alter database \"{name}\" rename to \"{gone}\""
        )))
        .execute(&mut admin)
        .await;
        if renamed.is_ok() {
            break;
        }
        poll.wait("the app database is renamed away").await;
    }

    let answers = until_unavailable(ATTEMPTS, || {
        app.deposit(app.teller(), deposit_input(account.id, "1.00"))
    })
    .await;
    let last = answers.last().expect("at least one attempt");
    assert_eq!(
        last.code(),
        Some("UNAVAILABLE"),
        "after {} attempts: {:?}",
        answers.len(),
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    for answer in &answers {
        assert_ne!(answer.code(), Some("INTERNAL"), "{}", answer.body);
    }
    let message = last.message().to_lowercase();
    assert!(message.contains("unavailable"), "{message}");
    for detail in [
        name.as_str(),
        "postgres",
        "sqlx",
        "3d000",
        "does not exist",
        "127.0.0.1",
        "5432",
    ] {
        assert!(
            !message.contains(detail),
            "the message leaks {detail:?}: {message}"
        );
    }

    // When the database is back, so is the service; the refused deposits wrote nothing.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "alter database \"{gone}\" rename to \"{name}\""
    )))
    .execute(&mut admin)
    .await
    .expect("bring the database back");
    let recovered: MovementPayload = eventually("deposits succeed again", || async {
        let answer = app
            .deposit(app.teller(), deposit_input(account.id, "2.00"))
            .await;
        (answer.code() != Some("UNAVAILABLE")).then_some(answer)
    })
    .await
    .parse("deposit");
    assert_eq!(recovered.account.balance, "12.00");
    let mut check = app.connection().await;
    let events: i64 = sqlx::query_scalar("select count(*) from accounts.events")
        .fetch_one(&mut check)
        .await
        .expect("count events");
    assert_eq!(events, before.events + 1);
}
