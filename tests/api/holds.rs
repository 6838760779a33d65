//! Holds over GraphQL against the running platform: two-phase debits that reserve the
//! available balance, are captured once (in part, to another account), released, or
//! expire and are swept (../shared/API.md, "Holds").

use chrono::Utc;
use futures::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, eventually, key, spawn_app};

const HOLD_FIELDS: &str =
    "hold { id accountId amount capturedAmount toAccountId status expiresAt reference placedAt }
     account { id balance availableBalance heldAmount status } position";

fn place_hold() -> String {
    format!("mutation($input: PlaceHoldInput!) {{ placeHold(input: $input) {{ {HOLD_FIELDS} }} }}")
}

fn capture_hold() -> String {
    format!(
        "mutation($input: CaptureHoldInput!) {{ captureHold(input: $input) {{ {HOLD_FIELDS} }} }}"
    )
}

fn release_hold() -> String {
    format!(
        "mutation($input: ReleaseHoldInput!) {{ releaseHold(input: $input) {{ {HOLD_FIELDS} }} }}"
    )
}

const ACCOUNT_HOLDS: &str = "query($id: UUID!, $status: HoldStatus) {
  account(id: $id) { balance availableBalance heldAmount holds(status: $status) { id status amount capturedAmount } }
}";

impl TestApp {
    async fn hold_mutation(&self, query: &str, input: Value) -> crate::helpers::Gql {
        self.execute(Some(self.teller()), &[], query, json!({ "input": input }))
            .await
    }

    /// Places a hold of `amount`; the answer's `placeHold`.
    async fn held(&self, account_id: Uuid, amount: &str, expires_at: Option<String>) -> Value {
        self.hold_mutation(
            &place_hold(),
            json!({ "accountId": account_id, "amount": amount, "expiresAt": expires_at,
                    "reference": "card auth", "idempotencyKey": key() }),
        )
        .await
        .data("placeHold")
        .clone()
    }

    async fn holds_of(&self, account_id: Uuid, status: Option<&str>) -> Value {
        self.execute(
            Some(self.teller()),
            &[],
            ACCOUNT_HOLDS,
            json!({ "id": account_id, "status": status }),
        )
        .await
        .data("account")
        .clone()
    }
}

fn id_of(payload: &Value) -> String {
    payload["hold"]["id"]
        .as_str()
        .expect("a hold id")
        .to_string()
}

#[tokio::test]
async fn a_card_processor_places_captures_in_part_to_another_account_and_lets_a_hold_expire() {
    let app = spawn_app().await;
    let card = app.open_usd("Card holder").await;
    let merchant = app.open_usd("Merchant").await;
    app.deposited(card.id, "500.00").await;

    let first = app.held(card.id, "120.00", None).await;
    assert_eq!(first["hold"]["status"], "ACTIVE");
    assert_eq!(first["hold"]["amount"], "120.00");
    assert_eq!(
        first["account"]["balance"], "500.00",
        "a hold moves no money"
    );
    assert_eq!(first["account"]["availableBalance"], "380.00");
    assert_eq!(first["account"]["heldAmount"], "120.00");

    let expires_at = (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let expiring = app.held(card.id, "50.00", Some(expires_at)).await;
    let third = app.held(card.id, "80.00", None).await;
    assert_eq!(third["account"]["availableBalance"], "250.00");

    // Capture 60 of the third's 80, to the merchant: a transfer; the rest is released.
    let captured = app
        .hold_mutation(
            &capture_hold(),
            json!({ "holdId": id_of(&third), "amount": "60", "toAccountId": merchant.id,
                    "reference": "order 7", "idempotencyKey": key() }),
        )
        .await;
    let captured = captured.data("captureHold");
    assert_eq!(captured["hold"]["status"], "CAPTURED");
    assert_eq!(captured["hold"]["capturedAmount"], "60.00");
    assert_eq!(captured["hold"]["toAccountId"], json!(merchant.id));
    assert_eq!(captured["account"]["balance"], "440.00");
    assert_eq!(
        captured["account"]["heldAmount"], "170.00",
        "120 + 50 still held; the capture's 20 left over is released"
    );
    let merchant_now = app.read_account(merchant.id).await.expect("merchant");
    assert_eq!(merchant_now.balance, "60.00");

    // The expiring hold counts for nothing from its expiry on, then the sweep records it.
    let expired = eventually("the sweep records the expiry", || async {
        let holds = app.holds_of(card.id, Some("EXPIRED")).await;
        let found = holds["holds"]
            .as_array()
            .expect("holds")
            .iter()
            .any(|h| h["id"] == expiring["hold"]["id"]);
        let recorded: i64 = sqlx::query_scalar(
            "select count(*) from accounts.events where event_type = 'HoldExpired'",
        )
        .fetch_one(&app.pool)
        .await
        .expect("count");
        (found && recorded == 1).then_some(holds)
    })
    .await;
    assert_eq!(
        expired["heldAmount"], "120.00",
        "only the first hold is left"
    );
    assert_eq!(expired["availableBalance"], "320.00");
    let refused = app
        .hold_mutation(
            &capture_hold(),
            json!({ "holdId": id_of(&expiring), "idempotencyKey": key() }),
        )
        .await;
    assert_eq!(refused.code(), Some("HOLD_NOT_ACTIVE"), "{}", refused.body);
    assert_eq!(
        refused.body["errors"][0]["extensions"]["field"],
        "input.holdId"
    );

    // Release the first: the whole balance is available again.
    let released = app
        .hold_mutation(
            &release_hold(),
            json!({ "holdId": id_of(&first), "reason": "order cancelled", "idempotencyKey": key() }),
        )
        .await;
    let released = released.data("releaseHold");
    assert_eq!(released["hold"]["status"], "RELEASED");
    assert_eq!(released["account"]["availableBalance"], "440.00");
    let all = app.holds_of(card.id, None).await;
    let statuses: Vec<&str> = all["holds"]
        .as_array()
        .expect("holds")
        .iter()
        .map(|h| h["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        vec!["CAPTURED", "EXPIRED", "RELEASED"],
        "most recently placed first"
    );
}

#[tokio::test]
async fn concurrent_holds_and_withdrawals_never_exceed_the_available_balance() {
    let app = spawn_app().await;
    let account = app.open_usd("Busy").await;
    app.deposited(account.id, "1000.00").await;
    let place = place_hold();
    let requests = (0..50).map(|n| {
        let app = &app;
        let place = place.clone();
        async move {
            let answer = if n % 2 == 0 {
                app.hold_mutation(
                    &place,
                    json!({ "accountId": account.id, "amount": "30.00", "idempotencyKey": key() }),
                )
                .await
            } else {
                app.withdraw(
                    app.teller(),
                    json!({ "accountId": account.id, "amount": "30.00", "idempotencyKey": key() }),
                )
                .await
            };
            match answer.code() {
                None => true,
                Some("INSUFFICIENT_FUNDS") => false,
                other => panic!("unexpected refusal {other:?}: {}", answer.body),
            }
        }
    });
    let accepted = join_all(requests)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    assert_eq!(accepted, 33, "1000 covers 33 of 30, not 34");
    let now = app.holds_of(account.id, None).await;
    assert_eq!(now["availableBalance"], "10.00");
    let balance: f64 = now["balance"]
        .as_str()
        .expect("balance")
        .parse()
        .expect("number");
    let held: f64 = now["heldAmount"]
        .as_str()
        .expect("held")
        .parse()
        .expect("number");
    assert!((balance - held - 10.0).abs() < 1e-9, "{now}");
}

#[tokio::test]
async fn concurrent_captures_of_one_hold_capture_it_once() {
    let app = spawn_app().await;
    let account = app.open_usd("Once").await;
    app.deposited(account.id, "100.00").await;
    let hold = app.held(account.id, "40.00", None).await;
    let capture = capture_hold();
    let answers = join_all((0..10).map(|_| {
        app.hold_mutation(
            &capture,
            json!({ "holdId": id_of(&hold), "amount": "25", "idempotencyKey": key() }),
        )
    }))
    .await;
    let captured = answers.iter().filter(|a| a.code().is_none()).count();
    assert_eq!(
        captured,
        1,
        "{:?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    assert!(
        answers
            .iter()
            .filter_map(|a| a.code())
            .all(|code| code == "HOLD_NOT_ACTIVE")
    );
    let account = app.read_account(account.id).await.expect("account");
    assert_eq!(account.balance, "75.00");
    let events: i64 = sqlx::query_scalar(
        "select count(*) from accounts.events where event_type = 'HoldCaptured'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(events, 1);
}

#[tokio::test]
async fn hold_refusals_name_the_field_and_write_nothing() {
    let app = spawn_app().await;
    let account = app.open_usd("Refused").await;
    app.deposited(account.id, "10.00").await;
    let place = place_hold();
    app.assert_refused(
        app.hold_mutation(
            &place,
            json!({ "accountId": account.id, "amount": "10.01", "idempotencyKey": key() }),
        ),
        "INSUFFICIENT_FUNDS",
        "input.amount",
    )
    .await;
    app.assert_refused(
        app.hold_mutation(
            &place,
            json!({ "accountId": account.id, "amount": "1", "expiresAt": "2020-01-01T00:00:00Z",
                    "idempotencyKey": key() }),
        ),
        "VALIDATION",
        "input.expiresAt",
    )
    .await;
    app.assert_refused(
        app.hold_mutation(
            &capture_hold(),
            json!({ "holdId": Uuid::new_v4(), "idempotencyKey": key() }),
        ),
        "HOLD_NOT_FOUND",
        "input.holdId",
    )
    .await;
    let hold = app.held(account.id, "5.00", None).await;
    app.assert_refused(
        app.hold_mutation(
            &capture_hold(),
            json!({ "holdId": id_of(&hold), "amount": "5.01", "idempotencyKey": key() }),
        ),
        "INVALID_AMOUNT",
        "input.amount",
    )
    .await;
    // Frozen: no capture, but a release.
    app.frozen(account.id).await;
    app.assert_refused(
        app.hold_mutation(
            &capture_hold(),
            json!({ "holdId": id_of(&hold), "idempotencyKey": key() }),
        ),
        "ACCOUNT_FROZEN",
        "input.holdId",
    )
    .await;
    let released = app
        .hold_mutation(
            &release_hold(),
            json!({ "holdId": id_of(&hold), "idempotencyKey": key() }),
        )
        .await;
    assert_eq!(released.data("releaseHold")["hold"]["status"], "RELEASED");
    // Closing with an active hold is refused, even at zero balance.
    let overdrawn = app.open("Holding", "USD", "10").await;
    app.held(overdrawn.id, "5.00", None).await;
    app.assert_refused(
        app.close_account(
            app.supervisor(),
            json!({ "accountId": overdrawn.id, "reason": "customer request", "idempotencyKey": key() }),
        ),
        "NONZERO_BALANCE",
        "input.accountId",
    )
    .await;
}

#[tokio::test]
async fn a_hold_id_names_one_hold_across_accounts_and_a_collision_disturbs_no_one_else() {
    let app = spawn_app().await;
    let first = app.open_usd("First").await;
    let second = app.open_usd("Second").await;
    let busy = app.open_usd("Busy").await;
    app.deposited(first.id, "100.00").await;
    app.deposited(second.id, "100.00").await;
    let hold_id = Uuid::new_v4();
    let placed = app
        .hold_mutation(
            &place_hold(),
            json!({ "accountId": first.id, "holdId": hold_id, "amount": "10", "idempotencyKey": key() }),
        )
        .await;
    assert_eq!(placed.data("placeHold")["hold"]["id"], json!(hold_id));
    let place = place_hold();
    let collisions = (0..8).map(|_| {
        app.hold_mutation(
            &place,
            json!({ "accountId": second.id, "holdId": hold_id, "amount": "1", "idempotencyKey": key() }),
        )
    });
    let deposits = (0..24).map(|_| {
        app.deposit(
            app.teller(),
            json!({ "accountId": busy.id, "amount": "1.00", "idempotencyKey": key() }),
        )
    });
    let (collisions, deposits) = tokio::join!(join_all(collisions), join_all(deposits));
    for refused in &collisions {
        assert_eq!(refused.code(), Some("VALIDATION"), "{}", refused.body);
        assert_eq!(
            refused.body["errors"][0]["extensions"]["field"],
            "input.holdId"
        );
        assert!(
            refused.message().contains("already exists"),
            "{}",
            refused.body
        );
    }
    for deposit in &deposits {
        assert!(deposit.code().is_none(), "{}", deposit.body);
    }
    assert_eq!(
        app.read_account(busy.id).await.expect("busy").balance,
        "24.00"
    );
    let second_now = app.holds_of(second.id, None).await;
    assert_eq!(second_now["heldAmount"], "0.00");
}

#[tokio::test]
async fn a_retry_after_the_hold_expired_gets_the_first_answer() {
    let app = spawn_app().await;
    let account = app.open_usd("Retry").await;
    app.deposited(account.id, "100.00").await;
    let input = json!({
        "accountId": account.id, "amount": "5.00", "idempotencyKey": key(),
        "expiresAt": (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339(),
    });
    let first = app.hold_mutation(&place_hold(), input.clone()).await;
    let first = first.data("placeHold").clone();
    assert_eq!(first["account"]["heldAmount"], "5.00");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let again = app.hold_mutation(&place_hold(), input).await;
    assert_eq!(
        again.data("placeHold"),
        &first,
        "the stored answer, as of its booking"
    );
}

#[tokio::test]
async fn a_capture_answers_with_the_ids_a_reversal_needs() {
    let app = spawn_app().await;
    let card = app.open_usd("Card").await;
    let shop = app.open_usd("Shop").await;
    app.deposited(card.id, "50.00").await;
    let to_shop = app.held(card.id, "20.00", None).await;
    let captured = app
        .execute(
            Some(app.teller()),
            &[],
            "mutation($input: CaptureHoldInput!) { captureHold(input: $input) { eventId transferId hold { reference } } }",
            json!({ "input": { "holdId": id_of(&to_shop), "toAccountId": shop.id, "idempotencyKey": key() } }),
        )
        .await;
    let captured = captured.data("captureHold").clone();
    assert!(captured["eventId"].is_string());
    assert!(captured["transferId"].is_string());
    assert_eq!(
        captured["hold"]["reference"], "card auth",
        "the capture keeps the authorisation's reference"
    );
    let reversed = app
        .execute(
            Some(app.supervisor()),
            &[],
            "mutation($input: ReverseInput!) { reverse(input: $input) { accounts { balance } } }",
            json!({ "input": { "transferId": captured["transferId"], "reason": "refund", "idempotencyKey": key() } }),
        )
        .await;
    let balances: Vec<&Value> = reversed.data("reverse")["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| &a["balance"])
        .collect();
    assert_eq!(balances, vec!["50.00", "0.00"]);
}
