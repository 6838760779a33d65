//! Accounts over GraphQL: opening, deposits, withdrawals, transfers, freezing and closing,
//! read back through the strongly consistent `account(id)` query.

use chrono::{DateTime, Utc};
use futures::future::join_all;
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    Account, AccountPayload, MovementPayload, TransferPayload, key, position, spawn_app,
};

fn rfc3339(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw)
        .unwrap_or_else(|e| panic!("{raw:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

fn decimal(raw: &str) -> Decimal {
    raw.parse()
        .unwrap_or_else(|e| panic!("{raw:?} is not a decimal: {e}"))
}

#[tokio::test]
async fn a_teller_opens_accounts_and_moves_money_between_them() {
    let app = spawn_app().await;
    let started = Utc::now();
    let teller = app.teller();

    let opened_a: AccountPayload = app
        .open_account(
            teller,
            json!({ "holder": "Ada Lovelace", "currency": "USD", "idempotencyKey": key() }),
        )
        .await
        .parse("openAccount");
    let opened_b: AccountPayload = app
        .open_account(
            teller,
            json!({
                "holder": "Grace Hopper",
                "currency": "USD",
                "overdraftLimit": "250",
                "idempotencyKey": key(),
            }),
        )
        .await
        .parse("openAccount");
    let a = opened_a.account.id;
    let b = opened_b.account.id;
    assert_eq!(opened_a.account.balance, "0.00");
    assert_eq!(opened_a.account.overdraft_limit, "0.00");
    assert_eq!(opened_a.account.status, "OPEN");
    assert_eq!(opened_a.account.version, 1);
    assert_eq!(opened_b.account.overdraft_limit, "250.00");
    assert_eq!(opened_b.account.holder, "Grace Hopper");

    let deposited: MovementPayload = app
        .deposit(
            teller,
            json!({ "accountId": a, "amount": "100.50", "reference": "salary", "idempotencyKey": key() }),
        )
        .await
        .parse("deposit");
    assert_eq!(deposited.account.balance, "100.50");
    assert_eq!(deposited.account.version, 2);

    let withdrawn: MovementPayload = app
        .withdraw(
            teller,
            json!({ "accountId": a, "amount": "20.25", "idempotencyKey": key() }),
        )
        .await
        .parse("withdraw");
    assert_eq!(withdrawn.account.balance, "80.25");
    assert_eq!(withdrawn.account.version, 3);
    assert_ne!(withdrawn.event_id, deposited.event_id);

    let transferred: TransferPayload = app
        .transfer(
            teller,
            json!({
                "fromAccountId": a,
                "toAccountId": b,
                "amount": "50.00",
                "reference": "rent",
                "idempotencyKey": key(),
            }),
        )
        .await
        .parse("transfer");
    assert_eq!(transferred.from.id, a);
    assert_eq!(transferred.from.balance, "30.25");
    assert_eq!(transferred.from.version, 4);
    assert_eq!(transferred.to.id, b);
    assert_eq!(transferred.to.balance, "50.00");
    assert_eq!(transferred.to.version, 2);

    // B goes into its overdraft, within the limit.
    let overdrawn: MovementPayload = app
        .withdraw(
            teller,
            json!({ "accountId": b, "amount": "120", "idempotencyKey": key() }),
        )
        .await
        .parse("withdraw");
    assert_eq!(overdrawn.account.balance, "-70.00");

    let read_a = app.read_account(a).await.expect("account A exists");
    let read_b = app.read_account(b).await.expect("account B exists");
    assert_eq!(
        read_a,
        Account {
            id: a,
            holder: "Ada Lovelace".into(),
            currency: "USD".into(),
            balance: "30.25".into(),
            overdraft_limit: "0.00".into(),
            status: "OPEN".into(),
            version: 4,
            opened_at: opened_a.account.opened_at.clone(),
        }
    );
    assert_eq!(
        read_b,
        Account {
            id: b,
            holder: "Grace Hopper".into(),
            currency: "USD".into(),
            balance: "-70.00".into(),
            overdraft_limit: "250.00".into(),
            status: "OPEN".into(),
            version: 3,
            opened_at: opened_b.account.opened_at.clone(),
        }
    );

    // Decimals travel as JSON strings, never numbers.
    let raw = app.account(teller, a).await;
    assert_eq!(raw.data("account")["balance"], json!("30.25"));
    assert_eq!(raw.data("account")["overdraftLimit"], json!("0.00"));
    let raw = app.account(teller, b).await;
    assert_eq!(raw.data("account")["balance"], json!("-70.00"));

    // openedAt is when the account was opened, as the event store recorded it.
    for (id, opened_at) in [
        (a, &opened_a.account.opened_at),
        (b, &opened_b.account.opened_at),
    ] {
        let recorded: DateTime<Utc> = sqlx::query_scalar(
            "select recorded_at from accounts.events where stream_id = $1 and stream_version = 1",
        )
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("the opening event");
        assert_eq!(rfc3339(opened_at), recorded);
        let slack = chrono::Duration::seconds(5);
        assert!(recorded >= started - slack && recorded <= Utc::now() + slack);
    }
    assert!(rfc3339(&opened_a.account.opened_at) <= rfc3339(&opened_b.account.opened_at));

    // Positions are decimal strings that grow with every command.
    let positions: Vec<u64> = [
        &opened_a.position,
        &opened_b.position,
        &deposited.position,
        &withdrawn.position,
        &transferred.position,
        &overdrawn.position,
    ]
    .into_iter()
    .map(|p| position(p))
    .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions must strictly increase: {positions:?}"
    );
    let max_position: i64 = sqlx::query_scalar("select max(position) from accounts.events")
        .fetch_one(&app.pool)
        .await
        .expect("max position");
    assert_eq!(positions.last().copied(), u64::try_from(max_position).ok());
    assert_eq!(app.event_count().await, 7);
}

#[tokio::test]
async fn amounts_are_kept_at_the_scale_of_the_currency() {
    let app = spawn_app().await;
    let usd = app.open_usd("Ada").await;
    let jpy = app.open("Hiro", "JPY", "0").await;
    let bhd = app.open("Layla", "bhd", "1.5").await;
    assert_eq!(jpy.balance, "0");
    assert_eq!(bhd.currency, "BHD");
    assert_eq!(bhd.overdraft_limit, "1.500");

    assert_eq!(app.deposited(usd.id, "10.5").await.account.balance, "10.50");
    assert_eq!(
        app.deposited(usd.id, "0.500").await.account.balance,
        "11.00"
    );
    assert_eq!(app.deposited(jpy.id, "1000").await.account.balance, "1000");
    assert_eq!(
        app.deposited(bhd.id, "2.125").await.account.balance,
        "2.125"
    );
    assert_eq!(
        app.read_account(usd.id).await.map(|a| a.balance),
        Some("11.00".into())
    );
}

#[tokio::test]
async fn an_account_that_does_not_exist_reads_as_null() {
    let app = spawn_app().await;
    assert_eq!(app.read_account(Uuid::new_v4()).await, None);
}

#[tokio::test]
async fn an_account_can_be_opened_under_an_id_the_client_chose() {
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    let opened: AccountPayload = app
        .open_account(
            app.teller(),
            json!({ "accountId": id, "holder": "Ada", "currency": "EUR", "idempotencyKey": key() }),
        )
        .await
        .parse("openAccount");
    assert_eq!(opened.account.id, id);
    assert_eq!(
        app.read_account(id).await.map(|a| a.currency),
        Some("EUR".into())
    );

    // The id is taken now: opening it again with a new key is refused.
    app.assert_refused(
        app.open_account(
            app.teller(),
            json!({ "accountId": id, "holder": "Eve", "currency": "EUR", "idempotencyKey": key() }),
        ),
        "VALIDATION",
        "accountId",
    )
    .await;
    assert_eq!(
        app.read_account(id).await.map(|a| a.holder),
        Some("Ada".into())
    );
}

#[tokio::test]
async fn a_supervisor_freezes_unfreezes_and_closes_an_account() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.deposited(account.id, "40.00").await;
    let status = |reason: &str| json!({ "accountId": account.id, "reason": reason, "idempotencyKey": key() });

    let frozen: AccountPayload = app
        .freeze_account(app.supervisor(), status("suspicious activity"))
        .await
        .parse("freezeAccount");
    assert_eq!(frozen.account.status, "FROZEN");
    assert_eq!(frozen.account.version, 3);
    assert_eq!(frozen.account.balance, "40.00");

    let unfrozen: AccountPayload = app
        .unfreeze_account(app.supervisor(), status("cleared"))
        .await
        .parse("unfreezeAccount");
    assert_eq!(unfrozen.account.status, "OPEN");
    assert_eq!(unfrozen.account.version, 4);

    let emptied: MovementPayload = app
        .withdraw(
            app.teller(),
            json!({ "accountId": account.id, "amount": "40", "idempotencyKey": key() }),
        )
        .await
        .parse("withdraw");
    assert_eq!(emptied.account.balance, "0.00");

    let closed: AccountPayload = app
        .close_account(app.supervisor(), status("customer request"))
        .await
        .parse("closeAccount");
    assert_eq!(closed.account.status, "CLOSED");
    assert_eq!(closed.account.version, 6);
    assert!(position(&frozen.position) < position(&unfrozen.position));
    assert!(position(&emptied.position) < position(&closed.position));

    // A closed account stays readable, for the record.
    let read = app.read_account(account.id).await.expect("still readable");
    assert_eq!(read.status, "CLOSED");
    assert_eq!(read.version, 6);
    assert_eq!(read.balance, "0.00");

    // The supervisor's reasons are recorded in the events.
    let reasons: Vec<String> = sqlx::query_scalar(
        "select payload->>'reason' from accounts.events
         where stream_id = $1 and event_type in ('AccountFrozen', 'AccountUnfrozen', 'AccountClosed')
         order by stream_version",
    )
    .bind(account.id)
    .fetch_all(&app.pool)
    .await
    .expect("status events");
    assert_eq!(
        reasons,
        ["suspicious activity", "cleared", "customer request"]
    );
}

#[tokio::test]
async fn a_withdrawal_may_use_the_overdraft_exactly_to_its_limit() {
    let app = spawn_app().await;
    let account = app.open("Ada", "USD", "100").await;
    app.deposited(account.id, "25.00").await;
    let withdraw = |amount: &str| {
        app.withdraw(
            app.teller(),
            json!({ "accountId": account.id, "amount": amount, "idempotencyKey": key() }),
        )
    };

    let at_limit: MovementPayload = withdraw("125.00").await.parse("withdraw");
    assert_eq!(at_limit.account.balance, "-100.00");
    app.assert_refused(withdraw("0.01"), "INSUFFICIENT_FUNDS", "amount")
        .await;
    assert_eq!(
        app.read_account(account.id).await.map(|a| a.balance),
        Some("-100.00".into())
    );
}

#[tokio::test]
async fn concurrent_withdrawals_never_overdraw_an_account() {
    const ATTEMPTS: usize = 8;
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    app.deposited(account.id, "100.00").await;
    let before = app.event_count().await;

    let answers = join_all((0..ATTEMPTS).map(|_| {
        app.withdraw(
            app.teller(),
            json!({ "accountId": account.id, "amount": "30.00", "idempotencyKey": key() }),
        )
    }))
    .await;

    let paid = answers.iter().filter(|a| a.code().is_none()).count();
    let refused: Vec<_> = answers.iter().filter_map(|a| a.code()).collect();
    assert_eq!(
        paid, 3,
        "100.00 pays three withdrawals of 30.00: {answers:?}"
    );
    assert_eq!(refused, vec!["INSUFFICIENT_FUNDS"; ATTEMPTS - 3]);
    let read = app.read_account(account.id).await.expect("account");
    assert_eq!(read.balance, "10.00");
    assert_eq!(read.version, 5);
    assert_eq!(app.event_count().await, before + 3);
}

#[tokio::test]
async fn concurrent_transfers_neither_create_nor_destroy_money() {
    const ROUNDS: usize = 6;
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Grace").await.id;
    let c = app.open_usd("Edsger").await.id;
    for id in [a, b, c] {
        app.deposited(id, "100.00").await;
    }

    // Money goes round in both directions at once; every transfer can be paid.
    let legs = [
        (a, b, "7.00"),
        (b, c, "11.00"),
        (c, a, "13.00"),
        (b, a, "5.00"),
    ];
    let answers = join_all((0..ROUNDS).flat_map(|_| legs).map(|(from, to, amount)| {
        app.transfer(
            app.teller(),
            json!({ "fromAccountId": from, "toAccountId": to, "amount": amount, "idempotencyKey": key() }),
        )
    }))
    .await;
    for answer in &answers {
        let _: TransferPayload = answer.parse("transfer");
    }

    let mut total = Decimal::ZERO;
    let mut versions = 0;
    for id in [a, b, c] {
        let account = app.read_account(id).await.expect("account");
        total += decimal(&account.balance);
        versions += account.version;
    }
    assert_eq!(total, decimal("300.00"));
    let rounds = i32::try_from(ROUNDS).expect("few rounds");
    // Opening and the deposit per account, then two legs per transfer.
    assert_eq!(versions, 3 * 2 + 2 * 4 * rounds);
    // A gains 13 + 5 - 7 per round.
    let balance_a = app.read_account(a).await.expect("account").balance;
    assert_eq!(decimal(&balance_a), Decimal::from(100 + 11 * rounds));

    // Each transfer's legs are equal and opposite.
    let unbalanced: i64 = sqlx::query_scalar(
        "select count(*) from (
             select payload->>'transferId' as transfer_id,
                    sum(case event_type when 'TransferDebited' then -(payload->>'amount')::numeric
                                        else (payload->>'amount')::numeric end) as net,
                    count(*) as legs
             from accounts.events
             where event_type in ('TransferDebited', 'TransferCredited')
             group by 1
         ) t where net <> 0 or legs <> 2",
    )
    .fetch_one(&app.pool)
    .await
    .expect("transfer legs");
    assert_eq!(unbalanced, 0);
}
