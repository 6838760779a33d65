//! The group-commit writer against the real PostgreSQL: many concurrent commands grouped
//! into few transactions with money conserved and every stream intact, and two writers
//! (as two processes would have) that never decide on stale cached state.

mod support;

use std::collections::HashMap;

use accounts::commands::CommandError;
use futures::future::join_all;
use ledger::{AccountId, ErrorCode};
use rust_decimal::Decimal;
use support::{
    Outcome, TestDb, account_of, assert_stream_sound, assert_tx_ids_follow_versions, dec,
    deposit_command, open_with, run, run_transfer, transfer, withdraw_command,
};

const ACCOUNTS: usize = 10;
const COMMANDS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_commands_over_ten_accounts_conserve_money_in_few_transactions() {
    let db = TestDb::new().await;
    let service = db.service();
    let mut ids = Vec::with_capacity(ACCOUNTS);
    for _ in 0..ACCOUNTS {
        ids.push(open_with(&service, "USD", "100.00").await);
    }
    let mut rng = fastrand::Rng::with_seed(7);
    let tasks: Vec<_> = (0..COMMANDS)
        .map(|_| {
            let service = service.clone();
            let a = ids[rng.usize(..ACCOUNTS)];
            let b = ids[rng.usize(..ACCOUNTS)];
            let cents = rng.i64(1..5_000);
            let amount = Decimal::new(cents, 2).to_string();
            let kind = rng.u8(..3);
            tokio::spawn(async move {
                let result = match kind {
                    0 => run(&service, deposit_command(a, &amount)).await,
                    1 => run(&service, withdraw_command(a, &amount)).await,
                    _ => run_transfer(&service, transfer(a, b, &amount)).await,
                };
                (kind, a, b, Decimal::new(cents, 2), result)
            })
        })
        .collect();
    let mut expected: HashMap<AccountId, Decimal> =
        ids.iter().map(|id| (*id, dec("100.00"))).collect();
    let mut written = 0;
    for joined in join_all(tasks).await {
        let (kind, a, b, amount, result) = joined.expect("task");
        match result {
            Ok(outcome) => {
                written += 1;
                match (kind, &outcome) {
                    (0, Outcome::Movement(_)) => *expected.get_mut(&a).expect("a") += amount,
                    (1, Outcome::Movement(_)) => *expected.get_mut(&a).expect("a") -= amount,
                    (_, Outcome::Transfer(_)) => {
                        *expected.get_mut(&a).expect("a") -= amount;
                        *expected.get_mut(&b).expect("b") += amount;
                    }
                    other => panic!("unexpected outcome {other:?}"),
                }
            }
            Err(error) => assert!(
                matches!(
                    error.code(),
                    ErrorCode::InsufficientFunds | ErrorCode::SameAccount
                ),
                "{error:?}"
            ),
        }
    }
    assert!(written > COMMANDS / 2, "most commands succeed: {written}");
    let store = db.store();
    for id in &ids {
        let account = service.account(*id).await.expect("load").expect("exists");
        assert_eq!(account.balance, expected[id], "account {id}");
        assert!(account.balance >= Decimal::ZERO);
        let events = assert_stream_sound(&store, *id).await;
        assert_eq!(events.len() as i64, account.version);
    }
    assert_tx_ids_follow_versions(&db.pool).await;
    // Grouped: far fewer transactions than commands.
    let transactions: i64 = sqlx::query_scalar(
        "select count(distinct tx_id::text) from accounts.events where stream_version > 2",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count transactions");
    assert!(
        (transactions as usize) < written,
        "{written} commands in {transactions} transactions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_on_one_database_never_decide_on_stale_cached_state() {
    let db = TestDb::new().await;
    // Two services: two writers with two caches, as two processes have.
    let first = db.service();
    let second = db.service();
    let id = open_with(&first, "USD", "100.00").await;
    let cached = run(&first, withdraw_command(id, "10.00"))
        .await
        .expect("the first writer caches the account at 90");
    assert_eq!(account_of(&cached).balance, dec("90.00"));
    run(&second, withdraw_command(id, "80.00"))
        .await
        .expect("the second writer takes 80");
    // The first writer's cache says 90; the store says 10.
    let error = run(&first, withdraw_command(id, "50.00"))
        .await
        .expect_err("50 is more than the 10 left");
    assert!(
        matches!(error, CommandError::Domain(_)) && error.code() == ErrorCode::InsufficientFunds,
        "{error:?}"
    );
    let after = run(&first, deposit_command(id, "5.00"))
        .await
        .expect("a deposit on the caught-up state");
    assert_eq!(account_of(&after).balance, dec("15.00"));
    assert_eq!(account_of(&after).version, 5);

    // Both writers at once: exactly as many withdrawals succeed as the money allows.
    run(&second, deposit_command(id, "85.00"))
        .await
        .expect("to 100");
    let tasks: Vec<_> = (0..60)
        .map(|n| {
            let service = if n % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move { run(&service, withdraw_command(id, "10.00")).await })
        })
        .collect();
    let mut succeeded = 0;
    for joined in join_all(tasks).await {
        match joined.expect("task") {
            Ok(_) => succeeded += 1,
            Err(error) => assert!(
                matches!(
                    error.code(),
                    ErrorCode::InsufficientFunds | ErrorCode::ConcurrencyConflict
                ),
                "{error:?}"
            ),
        }
    }
    assert_eq!(succeeded, 10);
    let account = first.account(id).await.expect("load").expect("exists");
    assert_eq!(account.balance, dec("0.00"));
    assert_stream_sound(&db.store(), id).await;
}
