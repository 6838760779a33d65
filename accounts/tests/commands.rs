//! Command handlers against the real PostgreSQL event store: concurrent withdrawals and
//! transfers, idempotent retries, and the account rules as the service enforces them.

mod support;

use std::collections::{BTreeSet, HashSet};

use accounts::{
    commands::{AccountsService, CommandError, MovementOutcome},
    domain::{AccountStatus, DomainError},
};
use futures::future::join_all;
use ledger::{AccountId, ErrorCode, TransferId};
use rust_decimal::Decimal;
use sqlx::Executor;
use support::{
    Outcome, TestDb, account_of, assert_stream_sound, assert_tx_ids_follow_versions, balance_after,
    close_command, context, dec, deposit_command, event_count, execute, freeze_command,
    idempotency_key_count, new_key, open_command, open_with, run, run_transfer, stream_event_count,
    transfer, unfreeze_command, until_backends_wait_for_locks, withdraw_command,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_withdrawals_of_ten_from_a_hundred_leave_exactly_ten_and_zero() {
    let db = TestDb::new().await;
    let service = db.service();
    let id = open_with(&service, "USD", "100.00").await;

    let tasks = (0..50).map(|_| {
        let service = service.clone();
        tokio::spawn(async move { run(&service, withdraw_command(id, "10.00")).await })
    });
    let results = join_all(tasks).await;

    let mut balances_left = BTreeSet::new();
    let mut refusals = 0;
    for result in results {
        match result.expect("withdrawal task") {
            Ok(Outcome::Movement(MovementOutcome { account, .. })) => {
                balances_left.insert(account.balance);
            }
            Ok(other) => panic!("a withdrawal answered {other:?}"),
            Err(error) => {
                assert!(
                    matches!(
                        error.code(),
                        ErrorCode::InsufficientFunds | ErrorCode::ConcurrencyConflict
                    ),
                    "unexpected refusal {:?}: {error}",
                    error.code()
                );
                refusals += 1;
            }
        }
    }
    // Ten successes, each decided against a different balance: 90, 80, ..., 0.
    let expected: BTreeSet<Decimal> = (0..10).map(|n| Decimal::new(n * 1000, 2)).collect();
    assert_eq!(balances_left, expected, "one success per ten");
    assert_eq!(refusals, 40);

    let loaded = db.store().load(id).await.expect("load");
    let account = loaded.account.expect("the account exists");
    assert_eq!(account.balance.to_string(), "0.00");
    let events = assert_stream_sound(&db.store(), id).await;
    assert_eq!(events.len(), 12, "open, deposit and ten withdrawals");
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types[..2], ["AccountOpened", "MoneyDeposited"]);
    assert!(
        types[2..].iter().all(|t| *t == "MoneyWithdrawn"),
        "{types:?}"
    );
    let last = events.last().expect("events");
    assert_eq!(
        balance_after(last).map(|b| b.to_string()),
        Some("0.00".to_string())
    );
    assert_tx_ids_follow_versions(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_withdrawals_with_a_single_attempt_never_overdraw() {
    let db = TestDb::new().await;
    let service = AccountsService::with_retries(db.store(), 1);
    let id = open_with(&service, "USD", "100.00").await;

    let tasks = (0..30).map(|_| {
        let service = service.clone();
        tokio::spawn(async move { run(&service, withdraw_command(id, "10.00")).await })
    });
    let mut succeeded = 0i64;
    for result in join_all(tasks).await {
        match result.expect("withdrawal task") {
            Ok(_) => succeeded += 1,
            Err(CommandError::ConcurrencyConflict { attempts }) => assert_eq!(attempts, 1),
            Err(error) => assert_eq!(error.code(), ErrorCode::InsufficientFunds, "{error}"),
        }
    }
    assert!((1..=10).contains(&succeeded), "{succeeded} withdrawals");
    let account = service.account(id).await.expect("load").expect("exists");
    assert_eq!(
        account.balance,
        dec("100.00") - Decimal::new(succeeded * 10, 0)
    );
    assert_eq!(stream_event_count(&db.pool, id).await, 2 + succeeded);
    assert_stream_sound(&db.store(), id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_racing_transfers_both_ways_conserve_money_and_keep_both_chains_intact() {
    let db = TestDb::new().await;
    let service = db.service();
    let a = open_with(&service, "EUR", "1000.00").await;
    let b = open_with(&service, "EUR", "1000.00").await;

    // Amounts 1..=40; even ones go A -> B, odd ones B -> A: at most 420 leaves either side,
    // so every transfer fits whatever order they land in.
    let tasks = (1..=40i64).map(|n| {
        let service = service.clone();
        let (from, to) = if n % 2 == 0 { (a, b) } else { (b, a) };
        let order = transfer(from, to, &n.to_string());
        tokio::spawn(async move {
            let result = run_transfer(&service, order.clone()).await;
            (order, result)
        })
    });
    let mut expected_a = dec("1000.00");
    let mut landed = HashSet::new();
    for joined in join_all(tasks).await {
        let (order, result) = joined.expect("transfer task");
        match result {
            Ok(Outcome::Transfer(accounts::commands::TransferOutcome {
                transfer_id,
                from,
                to,
                ..
            })) => {
                assert_eq!(transfer_id, order.transfer_id);
                assert_eq!((from.id, to.id), (order.from, order.to));
                let value = order.amount.value();
                expected_a += if order.from == a { -value } else { value };
                landed.insert(transfer_id);
            }
            Ok(other) => panic!("a transfer answered {other:?}"),
            // Neither a deadlock nor any other database error may surface.
            Err(error) => assert_eq!(error.code(), ErrorCode::ConcurrencyConflict, "{error}"),
        }
    }
    assert!(!landed.is_empty(), "some transfers landed");

    let account_a = service.account(a).await.expect("load a").expect("a");
    let account_b = service.account(b).await.expect("load b").expect("b");
    assert_eq!(account_a.balance + account_b.balance, dec("2000.00"));
    assert_eq!(account_a.balance, expected_a);

    // Both legs or neither: every landed transfer has exactly one debit and one credit.
    let events_a = assert_stream_sound(&db.store(), a).await;
    let events_b = assert_stream_sound(&db.store(), b).await;
    assert_eq!(events_a.len() + events_b.len(), 4 + 2 * landed.len());
    let mut legs: Vec<(TransferId, &str)> = Vec::new();
    for event in events_a.iter().chain(&events_b) {
        match event.decode().expect("decodes") {
            ledger::AccountEvent::TransferDebited(t) => legs.push((t.transfer_id, "debit")),
            ledger::AccountEvent::TransferCredited(t) => legs.push((t.transfer_id, "credit")),
            _ => {}
        }
    }
    for id in &landed {
        let mut kinds: Vec<&str> = legs
            .iter()
            .filter(|(t, _)| t == id)
            .map(|(_, k)| *k)
            .collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["credit", "debit"], "legs of transfer {id}");
    }
    assert_eq!(legs.len(), 2 * landed.len(), "no leg without its transfer");
    assert_tx_ids_follow_versions(&db.pool).await;
}

#[tokio::test]
async fn a_retry_with_the_same_key_and_input_answers_the_first_outcome_and_writes_nothing() {
    let db = TestDb::new().await;
    let service = db.service();
    let id = open_with(&service, "USD", "50.00").await;
    let key = new_key();
    let command = deposit_command(id, "25.00");
    let ctx = context("deposit", &key, &command);

    let first = execute(&service, &ctx, command.clone())
        .await
        .expect("deposit");
    assert_eq!(account_of(&first).balance, dec("75.00"));
    let events_after_first = event_count(&db.pool).await;
    let keys_after_first = idempotency_key_count(&db.pool).await;

    let retried = execute(&service, &ctx, command.clone())
        .await
        .expect("retry");
    assert_eq!(retried, first);
    assert_eq!(event_count(&db.pool).await, events_after_first);

    // Even after the account moved on, the retry answers as the first time did.
    run(&service, deposit_command(id, "1.00"))
        .await
        .expect("another deposit");
    let events_before_late_retry = event_count(&db.pool).await;
    let late = execute(&service, &ctx, command).await.expect("late retry");
    assert_eq!(late, first);
    assert_eq!(event_count(&db.pool).await, events_before_late_retry);
    assert_eq!(idempotency_key_count(&db.pool).await, keys_after_first + 1);

    let stored = db
        .store()
        .stored_response("teller-ada", &key)
        .await
        .expect("read key")
        .expect("key recorded");
    assert_eq!(stored.command_type, "deposit");
    assert_eq!(stored.request_hash, ctx.request_hash);
    let stored_outcome: MovementOutcome = serde_json::from_value(stored.response).expect("outcome");
    assert_eq!(Outcome::Movement(stored_outcome), first);
}

#[tokio::test]
async fn a_transfer_retried_with_its_key_moves_the_money_once() {
    let db = TestDb::new().await;
    let service = db.service();
    let a = open_with(&service, "USD", "100.00").await;
    let b = open_with(&service, "USD", "0").await;
    let order = transfer(a, b, "30.00");
    let ctx = context("transfer", &new_key(), &order);

    let first = service
        .execute(&ctx, order.clone())
        .await
        .expect("transfer");
    let events = event_count(&db.pool).await;
    let again = service.execute(&ctx, order).await.expect("retry");
    assert_eq!(again, first);
    assert_eq!(event_count(&db.pool).await, events);
    let account_a = service.account(a).await.expect("load").expect("a");
    let account_b = service.account(b).await.expect("load").expect("b");
    assert_eq!(
        (account_a.balance, account_b.balance),
        (dec("70.00"), dec("30.00"))
    );
}

#[tokio::test]
async fn the_same_key_with_a_different_input_is_refused_and_writes_nothing() {
    let db = TestDb::new().await;
    let service = db.service();
    let id = open_with(&service, "USD", "50.00").await;
    let other = open_with(&service, "USD", "0").await;
    let key = new_key();
    let command = deposit_command(id, "25.00");
    execute(&service, &context("deposit", &key, &command), command)
        .await
        .expect("deposit");
    let events = event_count(&db.pool).await;
    let keys = idempotency_key_count(&db.pool).await;

    let other_amount = deposit_command(id, "26.00");
    let error = execute(
        &service,
        &context("deposit", &key, &other_amount),
        other_amount,
    )
    .await
    .expect_err("a different amount under a used key");
    assert!(
        matches!(&error, CommandError::IdempotencyKeyReused { key: k } if *k == key),
        "{error:?}"
    );
    assert_eq!(error.code(), ErrorCode::IdempotencyKeyReused);

    let other_command = withdraw_command(id, "25.00");
    let error = execute(
        &service,
        &context("withdraw", &key, &other_command),
        other_command,
    )
    .await
    .expect_err("another command under a used key");
    assert!(
        matches!(error, CommandError::IdempotencyKeyReused { .. }),
        "{error:?}"
    );

    let other_transfer = transfer(id, other, "1.00");
    let error = service
        .execute(&context("transfer", &key, &other_transfer), other_transfer)
        .await
        .expect_err("a transfer under a used key");
    assert!(
        matches!(error, CommandError::IdempotencyKeyReused { .. }),
        "{error:?}"
    );

    assert_eq!(event_count(&db.pool).await, events);
    assert_eq!(idempotency_key_count(&db.pool).await, keys);
    let account = service.account(id).await.expect("load").expect("exists");
    assert_eq!(account.balance, dec("75.00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_requests_with_one_key_write_one_set_of_events_and_answer_alike() {
    let db = TestDb::new().await;
    let service = db.service();
    let id = open_with(&service, "USD", "100.00").await;
    let events_before = event_count(&db.pool).await;
    let command = deposit_command(id, "10.00");
    let ctx = context("deposit", &new_key(), &command);

    let tasks = (0..10).map(|_| {
        let (service, ctx, command) = (service.clone(), ctx.clone(), command.clone());
        tokio::spawn(async move { execute(&service, &ctx, command).await })
    });
    let outcomes: Vec<Outcome> = join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("task").expect("every request succeeds"))
        .collect();

    assert_eq!(outcomes.len(), 10);
    assert!(
        outcomes.iter().all(|o| *o == outcomes[0]),
        "outcomes differ: {outcomes:#?}"
    );
    assert_eq!(account_of(&outcomes[0]).balance, dec("110.00"));
    assert_eq!(event_count(&db.pool).await, events_before + 1);
    let account = service.account(id).await.expect("load").expect("exists");
    assert_eq!(account.balance, dec("110.00"));
    assert_stream_sound(&db.store(), id).await;
}

/// Requests that share a key must all get the first answer, even when the first one spent
/// the money the others would have needed. The requests are held at their insert by a
/// table lock so that they all decide against the same state, then released together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_sharing_a_key_all_get_the_first_answer_even_when_it_spent_the_funds() {
    let db = TestDb::new().await;
    let service = db.service();
    let id = open_with(&service, "USD", "100.00").await;
    let command = withdraw_command(id, "60.00");
    let ctx = context("withdraw", &new_key(), &command);

    let mut gate = db.connection().await;
    gate.execute("begin").await.expect("begin");
    gate.execute("lock table accounts.events in share mode")
        .await
        .expect("hold appends");
    // One service per request, as if each came to a different process: within one process
    // commands on an account take turns and would never meet at the database.
    let requests = 5;
    let tasks: Vec<_> = (0..requests)
        .map(|_| {
            let (service, ctx, command) = (db.service(), ctx.clone(), command.clone());
            tokio::spawn(async move { execute(&service, &ctx, command).await })
        })
        .collect();
    until_backends_wait_for_locks(&db.pool, requests).await;
    gate.execute("commit").await.expect("release appends");

    let results: Vec<Result<Outcome, CommandError>> = join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("task"))
        .collect();
    let account = service.account(id).await.expect("load").expect("exists");
    assert_eq!(account.balance, dec("40.00"), "withdrawn once");
    assert_eq!(stream_event_count(&db.pool, id).await, 3);
    let first = results
        .iter()
        .find_map(|r| r.as_ref().ok())
        .expect("one request withdrew")
        .clone();
    for result in &results {
        match result {
            Ok(outcome) => assert_eq!(*outcome, first),
            Err(error) => {
                panic!("a retry under the same key answered {error:?} instead of {first:?}")
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_one_account_id_ten_times_at_once_opens_it_once() {
    let db = TestDb::new().await;
    let service = db.service();
    let id = AccountId::generate();

    let tasks = (0..10).map(|_| {
        let service = service.clone();
        tokio::spawn(async move { run(&service, open_command(id, "USD", "0")).await })
    });
    let mut opened = 0;
    for joined in join_all(tasks).await {
        match joined.expect("open task") {
            Ok(outcome) => {
                assert_eq!(account_of(&outcome).version, 1);
                opened += 1;
            }
            Err(error) => assert!(
                matches!(error, CommandError::Domain(DomainError::AccountAlreadyExists(existing)) if existing == id),
                "{error:?}"
            ),
        }
    }
    assert_eq!(opened, 1);
    let events = assert_stream_sound(&db.store(), id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "AccountOpened");
}

#[tokio::test]
async fn a_closed_account_stays_closed_and_takes_nothing() {
    let db = TestDb::new().await;
    let service = db.service();
    let id = open_with(&service, "USD", "20.00").await;
    let other = open_with(&service, "USD", "100.00").await;

    let refused = run(&service, close_command(id))
        .await
        .expect_err("close with money in it");
    assert_eq!(refused.code(), ErrorCode::NonzeroBalance);
    run(&service, withdraw_command(id, "20.00"))
        .await
        .expect("empty it");
    let closed = run(&service, close_command(id)).await.expect("close");
    assert_eq!(account_of(&closed).status, AccountStatus::Closed);
    let events = event_count(&db.pool).await;

    let attempts = [
        run(&service, deposit_command(id, "1.00")).await,
        run(&service, withdraw_command(id, "1.00")).await,
        run(&service, freeze_command(id)).await,
        run(&service, unfreeze_command(id)).await,
        run(&service, close_command(id)).await,
        run_transfer(&service, transfer(other, id, "1.00")).await,
        run_transfer(&service, transfer(id, other, "1.00")).await,
    ];
    for attempt in attempts {
        let error = attempt.expect_err("a closed account takes nothing");
        assert_eq!(error.code(), ErrorCode::AccountClosed, "{error}");
    }
    assert_eq!(event_count(&db.pool).await, events);
    let account = service.account(id).await.expect("load").expect("exists");
    assert_eq!(account.status, AccountStatus::Closed);
    assert_eq!(account.balance, dec("0.00"));
}

#[tokio::test]
async fn a_frozen_account_takes_no_money_until_unfrozen() {
    let db = TestDb::new().await;
    let service = db.service();
    let id = open_with(&service, "USD", "20.00").await;
    let other = open_with(&service, "USD", "20.00").await;
    run(&service, freeze_command(id)).await.expect("freeze");
    let events = event_count(&db.pool).await;

    let attempts = [
        run(&service, deposit_command(id, "1.00")).await,
        run(&service, withdraw_command(id, "1.00")).await,
        run(&service, freeze_command(id)).await,
        run_transfer(&service, transfer(other, id, "1.00")).await,
        run_transfer(&service, transfer(id, other, "1.00")).await,
    ];
    for attempt in attempts {
        let error = attempt.expect_err("a frozen account takes nothing");
        assert_eq!(error.code(), ErrorCode::AccountFrozen, "{error}");
    }
    assert_eq!(event_count(&db.pool).await, events);

    run(&service, unfreeze_command(id)).await.expect("unfreeze");
    let outcome = run(&service, withdraw_command(id, "5.00"))
        .await
        .expect("withdraw after unfreezing");
    assert_eq!(account_of(&outcome).balance, dec("15.00"));
    assert_eq!(account_of(&outcome).status, AccountStatus::Open);
}

#[tokio::test]
async fn withdrawals_may_use_the_overdraft_but_never_go_beyond_it() {
    let db = TestDb::new().await;
    let service = db.service();
    let id = AccountId::generate();
    run(&service, open_command(id, "USD", "50.00"))
        .await
        .expect("open with an overdraft");
    run(&service, deposit_command(id, "10.00"))
        .await
        .expect("deposit");

    let outcome = run(&service, withdraw_command(id, "60.00"))
        .await
        .expect("down to the limit");
    assert_eq!(account_of(&outcome).balance, dec("-50.00"));
    let events = event_count(&db.pool).await;
    let error = run(&service, withdraw_command(id, "0.01"))
        .await
        .expect_err("beyond the limit");
    assert!(
        matches!(
            &error,
            CommandError::Domain(DomainError::InsufficientFunds { requested, available, .. })
                if *requested == dec("0.01") && available.is_zero()
        ),
        "{error:?}"
    );
    assert_eq!(event_count(&db.pool).await, events);
}

#[tokio::test]
async fn refused_transfers_write_nothing() {
    let db = TestDb::new().await;
    let service = db.service();
    let usd = open_with(&service, "USD", "100.00").await;
    let usd_too = open_with(&service, "USD", "0").await;
    let eur = open_with(&service, "EUR", "0").await;
    let events = event_count(&db.pool).await;
    let keys = idempotency_key_count(&db.pool).await;

    let cases = [
        (transfer(usd, eur, "1.00"), ErrorCode::CurrencyMismatch),
        (
            transfer(usd, AccountId::generate(), "1.00"),
            ErrorCode::AccountNotFound,
        ),
        (
            transfer(AccountId::generate(), usd, "1.00"),
            ErrorCode::AccountNotFound,
        ),
        (transfer(usd, usd, "1.00"), ErrorCode::SameAccount),
        (
            transfer(usd, usd_too, "100.01"),
            ErrorCode::InsufficientFunds,
        ),
        (transfer(usd, usd_too, "0.001"), ErrorCode::InvalidAmount),
    ];
    for (order, code) in cases {
        let error = run_transfer(&service, order)
            .await
            .expect_err("refused transfer");
        assert_eq!(error.code(), code, "{error}");
    }
    assert_eq!(event_count(&db.pool).await, events);
    assert_eq!(idempotency_key_count(&db.pool).await, keys);
}

#[tokio::test]
async fn commands_on_a_missing_account_are_refused() {
    let db = TestDb::new().await;
    let service = db.service();
    let missing = AccountId::generate();
    for command in [
        deposit_command(missing, "1.00"),
        withdraw_command(missing, "1.00"),
        freeze_command(missing),
        close_command(missing),
    ] {
        let error = run(&service, command).await.expect_err("no such account");
        assert!(
            matches!(error, CommandError::Domain(DomainError::AccountNotFound(id)) if id == missing),
            "{error:?}"
        );
    }
    assert_eq!(event_count(&db.pool).await, 0);
    assert_eq!(service.account(missing).await.expect("load"), None);
}

#[tokio::test]
async fn every_event_records_who_caused_it_and_both_legs_share_one_command() {
    let db = TestDb::new().await;
    let service = db.service();
    let a = open_with(&service, "USD", "10.00").await;
    let b = open_with(&service, "USD", "0").await;
    let order = transfer(a, b, "4.00");
    let ctx = context("transfer", &new_key(), &order);
    service.execute(&ctx, order).await.expect("transfer");

    let events_a = assert_stream_sound(&db.store(), a).await;
    let events_b = assert_stream_sound(&db.store(), b).await;
    for event in events_a.iter().chain(&events_b) {
        let metadata = event.metadata().expect("metadata parses");
        assert_eq!(metadata.actor, "teller-ada");
        assert_eq!(metadata.roles, ["teller"]);
        assert!(metadata.idempotency_key.is_some());
        assert_eq!(metadata.client_addr.as_deref(), Some("192.0.2.10"));
    }
    let debit = events_a.last().expect("debit").metadata().expect("meta");
    let credit = events_b.last().expect("credit").metadata().expect("meta");
    assert_eq!(debit, credit, "both legs carry one command's metadata");
    assert_eq!(debit.command_type, "transfer");
    assert_eq!(debit.correlation_id, ctx.correlation_id);
    assert_eq!(
        debit.idempotency_key.as_deref(),
        Some(ctx.idempotency_key.as_str())
    );
    assert_eq!(
        debit.causation_id,
        Some(debit.command_id.to_string()),
        "a command caused its events"
    );
}

#[tokio::test]
async fn amounts_are_kept_at_the_currency_scale() {
    let db = TestDb::new().await;
    let service = db.service();
    let yen = open_with(&service, "JPY", "1000").await;
    let dinar = open_with(&service, "BHD", "1.5").await;

    let error = run(&service, deposit_command(yen, "0.5"))
        .await
        .expect_err("half a yen");
    assert_eq!(error.code(), ErrorCode::InvalidAmount);
    let outcome = run(&service, deposit_command(dinar, "0.25"))
        .await
        .expect("dinar deposit");
    assert_eq!(account_of(&outcome).balance.to_string(), "1.750");
    let events = assert_stream_sound(&db.store(), dinar).await;
    assert_eq!(events[2].payload["amount"], "0.250");
    assert_eq!(events[2].payload["balanceAfter"], "1.750");
    let loaded = service.account(yen).await.expect("load").expect("yen");
    assert_eq!(loaded.balance.to_string(), "1000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_account_serves_every_command_of_one_process_in_turn() {
    let db = TestDb::new().await;
    // A single attempt: any collision at the database would answer CONCURRENCY_CONFLICT.
    let service = AccountsService::with_retries(db.store(), 1);
    let id = open_with(&service, "USD", "0.00").await;
    let tasks = (0..40).map(|_| {
        let service = service.clone();
        tokio::spawn(async move { run(&service, deposit_command(id, "1.00")).await })
    });
    for result in join_all(tasks).await {
        result
            .expect("deposit task")
            .expect("every deposit is served");
    }
    let account = service.account(id).await.expect("load").expect("exists");
    assert_eq!(account.balance, dec("40.00"));
    assert_stream_sound(&db.store(), id).await;
}
