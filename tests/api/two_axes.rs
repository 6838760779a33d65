//! Value dates and the two time axes through GraphQL: a deposit backdated into last
//! month, and the month-end balance as known before and after it (../shared/API.md,
//! "Value dates").

use chrono::{DateTime, Datelike, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, key, spawn_app};

const TWO_AXES_BALANCE: &str =
    "query($accountId: UUID!, $asOf: DateTime!, $asKnownAt: DateTime, $atLeast: String) {
  balanceAsOf(accountId: $accountId, asOf: $asOf, asKnownAt: $asKnownAt, atLeast: $atLeast) {
    balance asOf asKnownAt version
  }
}";

const TWO_AXES_STATEMENT: &str =
    "query($accountId: UUID!, $from: DateTime!, $to: DateTime!, $asKnownAt: DateTime, $atLeast: String) {
  statement(accountId: $accountId, from: $from, to: $to, asKnownAt: $asKnownAt, atLeast: $atLeast) {
    openingBalance closingBalance asKnownAt entryCount
    entries { edges { node { kind amount balanceAfter valueDate recordedAt } } }
  }
}";

const TWO_AXES_BALANCES: &str = "query($asOf: DateTime!, $asKnownAt: DateTime, $atLeast: String) {
  balancesAsOf(asOf: $asOf, asKnownAt: $asKnownAt, atLeast: $atLeast) { totals { currency total } }
}";

fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The last instant of last month, and its first.
fn last_month() -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now();
    let this_month = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .expect("the first of this month");
    let end = this_month - Duration::microseconds(1);
    let start = Utc
        .with_ymd_and_hms(end.year(), end.month(), 1, 0, 0, 0)
        .single()
        .expect("the first of last month");
    (start, end)
}

impl TestApp {
    async fn deposit_valued(&self, account: uuid::Uuid, amount: &str, value_date: &str) -> Value {
        self.deposit(
            self.teller(),
            json!({ "accountId": account, "amount": amount, "valueDate": value_date,
                    "idempotencyKey": key() }),
        )
        .await
        .data("deposit")
        .clone()
    }

    async fn month_end_balance(
        &self,
        account: uuid::Uuid,
        as_of: DateTime<Utc>,
        as_known_at: Option<DateTime<Utc>>,
        at_least: &str,
    ) -> Value {
        self.execute(
            Some(self.teller()),
            &[],
            TWO_AXES_BALANCE,
            json!({ "accountId": account, "asOf": text(as_of), "asKnownAt": as_known_at.map(text),
                    "atLeast": at_least }),
        )
        .await
        .data("balanceAsOf")
        .clone()
    }
}

#[tokio::test]
async fn the_month_end_balance_as_known_before_a_backdating_never_changes() {
    let app = spawn_app().await;
    let account = app.open_usd("Back office").await.id;
    let (start, month_end) = last_month();
    // Money that moved ten days before last month's end, booked today.
    let first = app
        .deposit_valued(account, "100.00", &text(month_end - Duration::days(10)))
        .await;
    assert_eq!(first["account"]["balance"], "100.00");
    let first_position = first["position"].as_str().expect("position").to_string();
    let known_before = Utc::now();

    let before = app
        .month_end_balance(account, month_end, Some(known_before), &first_position)
        .await;
    assert_eq!(before["balance"], "100.00");
    assert_eq!(before["asKnownAt"], json!(text(known_before)));

    // Booked now, valued two days before last month's end.
    let backdated = app
        .deposit_valued(account, "50.00", &text(month_end - Duration::days(2)))
        .await;
    let position = backdated["position"]
        .as_str()
        .expect("position")
        .to_string();

    let again = app
        .month_end_balance(account, month_end, Some(known_before), &position)
        .await;
    assert_eq!(
        again, before,
        "asked as known before: the same answer forever"
    );
    let now = app
        .month_end_balance(account, month_end, Some(Utc::now()), &position)
        .await;
    assert_eq!(now["balance"], "150.00");
    let default = app
        .month_end_balance(account, month_end, None, &position)
        .await;
    assert_eq!(default["balance"], "150.00", "asKnownAt defaults to now");
    assert_eq!(
        default["asKnownAt"],
        Value::Null,
        "not final: a booking of a moment ago may still arrive"
    );

    let statement = |known: Option<DateTime<Utc>>| {
        let app = &app;
        let position = position.clone();
        async move {
            app.execute(
                Some(app.teller()),
                &[],
                TWO_AXES_STATEMENT,
                json!({ "accountId": account, "from": text(start), "to": text(month_end),
                        "asKnownAt": known.map(text), "atLeast": position }),
            )
            .await
            .data("statement")
            .clone()
        }
    };
    let as_known_before = statement(Some(known_before)).await;
    assert_eq!(as_known_before["entryCount"], 1);
    assert_eq!(as_known_before["closingBalance"], "100.00");
    let as_known_now = statement(None).await;
    assert_eq!(as_known_now["entryCount"], 2);
    assert_eq!(as_known_now["openingBalance"], "0.00");
    assert_eq!(as_known_now["closingBalance"], "150.00");
    let lines: Vec<(String, String)> = as_known_now["entries"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["node"]["amount"].as_str().expect("amount").to_string(),
                e["node"]["balanceAfter"]
                    .as_str()
                    .expect("balance")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            ("100.00".to_string(), "100.00".to_string()),
            ("50.00".to_string(), "150.00".to_string())
        ]
    );

    let totals = |known: Option<DateTime<Utc>>| {
        let app = &app;
        let position = position.clone();
        async move {
            app.execute(
                Some(app.auditor().as_str()),
                &[],
                TWO_AXES_BALANCES,
                json!({ "asOf": text(month_end), "asKnownAt": known.map(text), "atLeast": position }),
            )
            .await
            .data("balancesAsOf")["totals"][0]["total"]
                .clone()
        }
    };
    assert_eq!(totals(Some(known_before)).await, "100.00");
    assert_eq!(totals(None).await, "150.00");

    // The last nanosecond of the month, as people write it: stored to the microsecond,
    // counted in the month.
    let last_nanosecond = format!("{}999Z", text(month_end).trim_end_matches('Z'));
    let late = app.deposit_valued(account, "7.00", &last_nanosecond).await;
    let late_position = late["position"].as_str().expect("position").to_string();
    let month = app
        .execute(
            Some(app.teller()),
            &[],
            TWO_AXES_BALANCE,
            json!({ "accountId": account, "asOf": last_nanosecond, "atLeast": late_position }),
        )
        .await;
    assert_eq!(month.data("balanceAsOf")["balance"], "157.00");
}

#[tokio::test]
async fn value_dates_outside_the_window_and_future_as_known_at_are_refused() {
    let app = spawn_app().await;
    let account = app.open_usd("Window").await.id;
    for value_date in [
        Utc::now() + Duration::hours(1),
        Utc::now() - Duration::days(63),
    ] {
        app.assert_refused(
            app.deposit(
                app.teller(),
                json!({ "accountId": account, "amount": "1.00", "valueDate": text(value_date),
                        "idempotencyKey": key() }),
            ),
            "VALUE_DATE_OUT_OF_RANGE",
            "input.valueDate",
        )
        .await;
    }
    let future = app
        .execute(
            Some(app.teller()),
            &[],
            TWO_AXES_BALANCE,
            json!({ "accountId": account, "asOf": text(Utc::now()),
                    "asKnownAt": text(Utc::now() + Duration::hours(1)) }),
        )
        .await;
    assert_eq!(future.code(), Some("VALIDATION"), "{}", future.body);
    assert_eq!(future.body["errors"][0]["extensions"]["field"], "asKnownAt");
}
