//! Reversals over GraphQL against the running platform, and holds and reversals across a
//! restart and a republication (../shared/API.md, "Reversals").

use chrono::{SecondsFormat, Utc};
use folio::startup::Mode;
use platform::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Gql, TestApp, eventually, key, spawn_app, spawn_service, test_settings};

const REVERSE: &str = "mutation($input: ReverseInput!) {
  reverse(input: $input) { reversalId accounts { id balance availableBalance } position }
}";

const LINKED_STATEMENT: &str = "query($accountId: UUID!, $from: DateTime!, $to: DateTime!, $atLeast: String) {
  statement(accountId: $accountId, from: $from, to: $to, atLeast: $atLeast) {
    openingBalance closingBalance
    entries { edges { node { eventId kind amount balanceAfter valueDate reversesEventId reversedByEventId } } }
  }
}";

impl TestApp {
    async fn reverse(&self, token: &str, input: Value) -> Gql {
        self.execute(Some(token), &[], REVERSE, json!({ "input": input }))
            .await
    }

    async fn linked_statement(&self, account_id: Uuid, at_least: &str) -> Value {
        let from = (Utc::now() - chrono::Duration::days(1)).to_rfc3339();
        let to = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        self.execute(
            Some(self.teller()),
            &[],
            LINKED_STATEMENT,
            json!({ "accountId": account_id, "from": from, "to": to, "atLeast": at_least }),
        )
        .await
        .data("statement")
        .clone()
    }
}

fn lines(statement: &Value) -> Vec<Value> {
    statement["entries"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

#[tokio::test]
async fn a_reversed_transfer_leaves_both_accounts_where_they_started_and_verifies_clean() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Bob").await.id;
    app.deposited(a, "100.00").await;
    let transfer = app
        .transfer(
            app.teller(),
            json!({ "fromAccountId": a, "toAccountId": b, "amount": "30.00", "idempotencyKey": key() }),
        )
        .await;
    let transfer_id = transfer.data("transfer")["transferId"].clone();

    let supervisor = app.supervisor().to_string();
    let reversed = app
        .reverse(
            &supervisor,
            json!({ "transferId": transfer_id, "reason": "sent to the wrong account", "idempotencyKey": key() }),
        )
        .await;
    let reversed = reversed.data("reverse").clone();
    let balances: Vec<(&str, &str)> = reversed["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| {
            (
                a["id"].as_str().expect("id"),
                a["balance"].as_str().expect("balance"),
            )
        })
        .collect();
    assert_eq!(
        balances,
        vec![
            (a.to_string().as_str(), "100.00"),
            (b.to_string().as_str(), "0.00")
        ]
    );
    let position = reversed["position"].as_str().expect("position").to_string();

    let verified = app
        .verify_integrity(&app.auditor(), json!({}))
        .await
        .data("verifyIntegrity")
        .clone();
    assert_eq!(verified["ok"], true, "{verified}");

    // The statement shows the link both ways; the audit trail shows it in the event.
    let statement = app.linked_statement(a, &position).await;
    let lines = lines(&statement);
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, vec!["DEPOSIT", "TRANSFER_OUT", "REVERSAL"]);
    assert_eq!(lines[1]["reversedByEventId"], lines[2]["eventId"]);
    assert_eq!(lines[2]["reversesEventId"], lines[1]["eventId"]);
    assert_eq!(lines[2]["amount"], "30.00");
    assert_eq!(lines[2]["balanceAfter"], "100.00");
    let trail = app
        .whole_audit_trail(
            &app.auditor(),
            json!({ "accountId": b, "eventTypes": ["MovementReversed"] }),
            10,
            &position,
        )
        .await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].payload["reversedKind"], "TRANSFER_IN");
    assert_eq!(trail[0].payload["transferId"], transfer_id);
    assert_eq!(trail[0].payload["reason"], "sent to the wrong account");

    let again = app
        .assert_refused(
            app.reverse(
                &supervisor,
                json!({ "transferId": transfer_id, "reason": "again", "idempotencyKey": key() }),
            ),
            "ALREADY_REVERSED",
            "input.transferId",
        )
        .await;
    assert!(
        again.message().contains("already been reversed"),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn reversals_are_refused_by_rule_with_the_field_named() {
    let app = spawn_app().await;
    let supervisor = app.supervisor().to_string();
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Bob").await.id;
    let deposit = app.deposited(a, "40.00").await;
    app.withdraw(
        app.teller(),
        json!({ "accountId": a, "amount": "30.00", "idempotencyKey": key() }),
    )
    .await
    .data("withdraw");
    app.assert_refused(
        app.reverse(
            &supervisor,
            json!({ "eventId": deposit.event_id, "reason": "booked twice", "idempotencyKey": key() }),
        ),
        "INSUFFICIENT_FUNDS",
        "input.eventId",
    )
    .await;

    let transfer = app
        .transfer(
            app.teller(),
            json!({ "fromAccountId": a, "toAccountId": b, "amount": "5.00", "idempotencyKey": key() }),
        )
        .await;
    let position = transfer.data("transfer")["position"]
        .as_str()
        .expect("position")
        .to_string();
    let statement = app.linked_statement(a, &position).await;
    let leg = lines(&statement)
        .into_iter()
        .find(|l| l["kind"] == "TRANSFER_OUT")
        .expect("the debit leg");
    let refused = app
        .assert_refused(
            app.reverse(
                &supervisor,
                json!({ "eventId": leg["eventId"], "reason": "x", "idempotencyKey": key() }),
            ),
            "NOT_REVERSIBLE",
            "input.eventId",
        )
        .await;
    assert!(refused.message().contains("transferId"), "{}", refused.body);
    let opened: Uuid = sqlx::query_scalar(
        "select event_id from accounts.events where stream_id = $1 and stream_version = 1",
    )
    .bind(a)
    .fetch_one(&app.pool)
    .await
    .expect("the opening");
    app.assert_refused(
        app.reverse(
            &supervisor,
            json!({ "eventId": opened, "reason": "x", "idempotencyKey": key() }),
        ),
        "NOT_REVERSIBLE",
        "input.eventId",
    )
    .await;
    app.assert_refused(
        app.reverse(
            &supervisor,
            json!({ "eventId": Uuid::new_v4(), "reason": "x", "idempotencyKey": key() }),
        ),
        "MOVEMENT_NOT_FOUND",
        "input.eventId",
    )
    .await;
    app.assert_refused(
        app.reverse(
            &supervisor,
            json!({ "eventId": deposit.event_id, "transferId": Uuid::new_v4(), "reason": "x",
                    "idempotencyKey": key() }),
        ),
        "VALIDATION",
        "input.transferId",
    )
    .await;
    let teller = app.token("teller-ted", &[Role::Teller]);
    let forbidden = app
        .reverse(
            &teller,
            json!({ "eventId": deposit.event_id, "reason": "x", "idempotencyKey": key() }),
        )
        .await;
    assert_eq!(forbidden.code(), Some("FORBIDDEN"), "{}", forbidden.body);
}

#[tokio::test]
async fn holds_and_reversals_survive_a_restart_and_a_republication() {
    let settings = test_settings(|_| {}).await;
    let app = spawn_service(&settings, Mode::All).await;
    let a = app.open_usd("Ada").await.id;
    let deposit = app.deposited(a, "100.00").await;
    let hold: Value = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($input: PlaceHoldInput!) { placeHold(input: $input) { hold { id } } }",
            json!({ "input": { "accountId": a, "amount": "25.00", "idempotencyKey": key() } }),
        )
        .await
        .data("placeHold")["hold"]["id"]
        .clone();
    let reversal_key = key();
    let reversal = app
        .reverse(
            app.supervisor(),
            json!({ "eventId": deposit.event_id, "reason": "booked twice", "idempotencyKey": reversal_key }),
        )
        .await;
    assert_eq!(
        reversal.code(),
        Some("INSUFFICIENT_FUNDS"),
        "25 of 100 is held"
    );
    let freed = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($input: ReleaseHoldInput!) { releaseHold(input: $input) { hold { status } } }",
            json!({ "input": { "holdId": hold, "idempotencyKey": key() } }),
        )
        .await;
    assert_eq!(freed.data("releaseHold")["hold"]["status"], "RELEASED");
    let second_hold: Value = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($input: PlaceHoldInput!) { placeHold(input: $input) { hold { id } position } }",
            json!({ "input": { "accountId": a, "amount": "0.01", "idempotencyKey": key() } }),
        )
        .await
        .data("placeHold")
        .clone();
    drop(app);

    // A new process on the same database and stream: the hold and the available balance
    // are where they were, and a reversal is still decided against them.
    let app = spawn_service(&settings, Mode::All).await;
    let account = app
        .execute(
            Some(app.teller()),
            &[],
            "query($id: UUID!) { account(id: $id) { balance availableBalance holds { id status } } }",
            json!({ "id": a }),
        )
        .await
        .data("account")
        .clone();
    assert_eq!(account["availableBalance"], "99.99");
    assert_eq!(account["holds"][0]["id"], second_hold["hold"]["id"]);
    assert_eq!(account["holds"][0]["status"], "ACTIVE");
    let refused = app
        .reverse(
            app.supervisor(),
            json!({ "eventId": deposit.event_id, "reason": "booked twice", "idempotencyKey": key() }),
        )
        .await;
    assert_eq!(refused.code(), Some("INSUFFICIENT_FUNDS"));
    let released = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($input: ReleaseHoldInput!) { releaseHold(input: $input) { hold { status } } }",
            json!({ "input": { "holdId": second_hold["hold"]["id"], "idempotencyKey": key() } }),
        )
        .await;
    assert_eq!(released.data("releaseHold")["hold"]["status"], "RELEASED");
    let reversed = app
        .reverse(
            app.supervisor(),
            json!({ "eventId": deposit.event_id, "reason": "booked twice", "idempotencyKey": key() }),
        )
        .await;
    let position = reversed.data("reverse")["position"]
        .as_str()
        .expect("position")
        .to_string();
    let before = app.linked_statement(a, &position).await;

    // Republished from the start: the projection skips what it has and answers the same.
    let published: i64 = sqlx::query_scalar("select count(*) from accounts.events")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    accounts::relay::rewind(&app.pool, &settings.nats.stream)
        .await
        .expect("rewind");
    eventually("the relay has published everything again", || async {
        let (position, done): (Option<i64>, i64) = sqlx::query_as(
            "select position, published_events from accounts.relay_checkpoints where stream = $1",
        )
        .bind(&settings.nats.stream)
        .fetch_one(&app.pool)
        .await
        .expect("checkpoint");
        (position.is_some_and(|p| p > 0) && done >= 2 * published).then_some(())
    })
    .await;
    let after = app.deposited(a, "1.00").await;
    let statement = app.linked_statement(a, &after.position).await;
    let mut expected = lines(&before);
    let mut now = lines(&statement);
    let last = now.pop().expect("the new deposit");
    assert_eq!(last["kind"], "DEPOSIT");
    assert_eq!(now, std::mem::take(&mut expected));
    let alerts: i64 = sqlx::query_scalar("select count(*) from reporting.integrity_alerts")
        .fetch_one(&app.pool)
        .await
        .expect("alerts");
    assert_eq!(alerts, 0);
    let held: rust_decimal::Decimal =
        sqlx::query_scalar("select held from reporting.account_balances where account_id = $1")
            .bind(a)
            .fetch_one(&app.pool)
            .await
            .expect("held");
    assert!(held.is_zero(), "{held}");
}
