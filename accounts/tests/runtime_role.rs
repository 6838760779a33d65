//! The runtime role `folio_app`: the platform's commands and relay work as it, and it can
//! neither change nor remove history, whatever triggers are enabled.

use std::str::FromStr;

use accounts::{
    commands::{AccountsService, CommandContext},
    domain::{Deposit, Holder, OpenAccount},
    store::EventStore,
};
use ledger::{AccountId, Currency, Hash, PositiveAmount};
use platform::testing;
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use sqlx::{PgPool, postgres::PgConnectOptions};

/// A pool on a freshly migrated database, connected as `folio_app`.
async fn as_runtime_role() -> (PgPool, PgPool) {
    let (owner, settings) =
        testing::fresh_pool(vec![(accounts::migrator(), accounts::SCHEMA)]).await;
    let options = PgConnectOptions::from_str(settings.url.expose_secret())
        .expect("test url")
        .username("folio_app");
    let runtime = PgPool::connect_with(options)
        .await
        .expect("folio_app can log in");
    (owner, runtime)
}

fn context(key: &str, _command_type: &'static str) -> CommandContext {
    CommandContext {
        actor: "teller-ada".into(),
        roles: vec!["teller".into()],
        correlation_id: "runtime-role".into(),
        client_addr: None,
        idempotency_key: key.into(),
        request_hash: Hash::from_bytes([3; 32]),
    }
}

#[tokio::test]
async fn commands_run_as_the_runtime_role() {
    let (_owner, runtime) = as_runtime_role().await;
    let service = AccountsService::new(EventStore::new(runtime.clone()));
    let id = AccountId::generate();
    let open = OpenAccount {
        account_id: id,
        holder: Holder::parse("Ada").expect("holder"),
        currency: Currency::parse("USD").expect("usd"),
        overdraft_limit: Decimal::ZERO,
    };
    service
        .execute(&context("open", "openAccount"), open)
        .await
        .expect("open as folio_app");
    for n in 0..120 {
        let deposit = Deposit {
            account_id: id,
            amount: PositiveAmount::parse(Decimal::ONE).expect("amount"),
            reference: None,
            value_date: None,
        };
        service
            .execute(&context(&format!("deposit-{n}"), "deposit"), deposit)
            .await
            .expect("deposit as folio_app (crossing a snapshot)");
    }
    let account = service.account(id).await.expect("load").expect("exists");
    assert_eq!(account.balance, Decimal::new(12000, 2));
    assert_eq!(account.version, 121);
}

#[tokio::test]
async fn the_runtime_role_cannot_change_or_remove_history() {
    let (owner, runtime) = as_runtime_role().await;
    let service = AccountsService::new(EventStore::new(owner.clone()));
    let open = OpenAccount {
        account_id: AccountId::generate(),
        holder: Holder::parse("Ada").expect("holder"),
        currency: Currency::parse("USD").expect("usd"),
        overdraft_limit: Decimal::ZERO,
    };
    service
        .execute(&context("open", "openAccount"), open)
        .await
        .expect("open");

    // Even with the triggers off, the role has no privilege to touch history.
    sqlx::query("alter table accounts.events disable trigger events_are_immutable")
        .execute(&owner)
        .await
        .expect("the owner disables the trigger");
    for statement in [
        "update accounts.events set payload = '{}'",
        "delete from accounts.events",
        "truncate accounts.events",
        "update accounts.checkpoints set digest = digest",
        "delete from accounts.checkpoints",
    ] {
        let error = sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&runtime)
            .await
            .expect_err(statement);
        let code = error
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(code.as_deref(), Some("42501"), "{statement}: {error}");
    }
    let count: i64 = sqlx::query_scalar("select count(*) from accounts.events")
        .fetch_one(&owner)
        .await
        .expect("count");
    assert_eq!(count, 1, "history is untouched");
}
