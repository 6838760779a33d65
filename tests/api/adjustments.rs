//! Four-eyes adjustments end to end (../shared/API.md "Four-eyes adjustments"; SOX
//! maker-checker): one supervisor asks, another approves, the posted event names both in
//! the audit trail and in the hash chain, and `folio verify` holds them to it.

use accounts::integrity::{ProblemKind, VerifyOptions, verify};
use ledger::AccountId;
use platform::Role;
use serde_json::{Value, json};

use crate::helpers::{Gql, TEST_SIGNING_SEED, TestApp, key, spawn_app};

const REQUEST: &str = "mutation($input: RequestAdjustmentInput!) {
  requestAdjustment(input: $input) {
    adjustment { id accountId amount reason status requestedBy decidedBy }
    account { balance } position eventId
  } }";
const APPROVE: &str = "mutation($input: AdjustmentDecisionInput!) {
  approveAdjustment(input: $input) {
    adjustment { id status requestedBy decidedBy comment }
    account { balance } position eventId
  } }";
const REJECT: &str = "mutation($input: AdjustmentDecisionInput!) {
  rejectAdjustment(input: $input) { adjustment { id status decidedBy } position } }";
const LIST: &str = "query($status: AdjustmentStatus, $accountId: UUID, $atLeast: String) {
  adjustments(status: $status, accountId: $accountId, atLeast: $atLeast) {
    edges { node { id amount status requestedBy decidedBy } } } }";

pub async fn request(app: &TestApp, token: &str, account: uuid::Uuid, amount: &str) -> Gql {
    app.execute(
        Some(token),
        &[],
        REQUEST,
        json!({ "input": { "accountId": account, "amount": amount, "reason": "fee charged twice",
                           "evidence": "ticket 81", "idempotencyKey": key() } }),
    )
    .await
}

pub async fn approve(app: &TestApp, token: &str, adjustment: &Value) -> Gql {
    app.execute(
        Some(token),
        &[],
        APPROVE,
        json!({ "input": { "adjustmentId": adjustment, "comment": "seen the ticket", "idempotencyKey": key() } }),
    )
    .await
}

async fn verify_store(app: &TestApp) -> accounts::integrity::Report {
    let key = ed25519_dalek::SigningKey::from_bytes(&TEST_SIGNING_SEED).verifying_key();
    let options = VerifyOptions {
        public_key: key,
        account: None,
        external: None,
        events_max: None,
        progress: None,
        backdate_max: chrono::Duration::days(62),
    };
    verify(&app.pool, &options).await.expect("verify runs")
}

#[tokio::test]
async fn one_supervisor_asks_another_approves_and_the_posting_names_both() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await.id;
    app.deposited(account, "100.00").await;
    let maker = app.token("supervisor-maker", &[Role::Supervisor]);
    let checker = app.token("supervisor-checker", &[Role::Supervisor]);

    let requested = request(&app, &maker, account, "-4.20").await;
    let requested = requested.data("requestAdjustment");
    assert_eq!(requested["adjustment"]["status"], json!("PENDING"));
    assert_eq!(requested["adjustment"]["amount"], json!("-4.20"));
    assert_eq!(
        requested["account"]["balance"],
        json!("100.00"),
        "nothing moves yet"
    );
    let id = requested["adjustment"]["id"].clone();

    let own = approve(&app, &maker, &id).await;
    assert_eq!(own.code(), Some("SELF_APPROVAL"), "{:?}", own.body);

    let approved = approve(&app, &checker, &id).await;
    let approved = approved.data("approveAdjustment");
    assert_eq!(approved["adjustment"]["status"], json!("APPROVED"));
    assert_eq!(
        approved["adjustment"]["requestedBy"],
        json!("supervisor-maker")
    );
    assert_eq!(
        approved["adjustment"]["decidedBy"],
        json!("supervisor-checker")
    );
    assert_eq!(approved["account"]["balance"], json!("95.80"));

    let twice = approve(&app, &checker, &id).await;
    assert_eq!(
        twice.code(),
        Some("ADJUSTMENT_NOT_PENDING"),
        "{:?}",
        twice.body
    );
    let rejected = app
        .execute(
            Some(&checker),
            &[],
            REJECT,
            json!({ "input": { "adjustmentId": id, "idempotencyKey": key() } }),
        )
        .await;
    assert_eq!(
        rejected.code(),
        Some("ADJUSTMENT_NOT_PENDING"),
        "{:?}",
        rejected.body
    );

    // The audit trail shows the posting written by the checker, naming the maker.
    let at_least = approved["position"]
        .as_str()
        .expect("a position")
        .to_string();
    let auditor = app.auditor();
    let trail = app
        .whole_audit_trail(
            &auditor,
            json!({ "accountId": account, "eventTypes": ["AdjustmentPosted"] }),
            50,
            &at_least,
        )
        .await;
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0].actor, "supervisor-checker");
    assert_eq!(trail[0].payload["requestedBy"], json!("supervisor-maker"));
    assert_eq!(trail[0].payload["approvedBy"], json!("supervisor-checker"));

    // Supervisors and auditors list it; tellers may not.
    let listed = app
        .execute(
            Some(&auditor),
            &[],
            LIST,
            json!({ "status": "APPROVED", "accountId": account, "atLeast": at_least }),
        )
        .await;
    let edges = listed.data("adjustments")["edges"].clone();
    assert_eq!(
        edges[0]["node"]["decidedBy"],
        json!("supervisor-checker"),
        "{edges}"
    );
    let teller = app.execute(Some(app.teller()), &[], LIST, json!({})).await;
    assert_eq!(teller.code(), Some("FORBIDDEN"));

    let report = verify_store(&app).await;
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[tokio::test]
async fn an_approved_debit_stays_within_the_accounts_limits() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await.id;
    app.deposited(account, "10.00").await;
    let teller = app.teller().to_string();
    let requested = request(&app, &teller, account, "-10.01").await;
    let id = requested.data("requestAdjustment")["adjustment"]["id"].clone();
    let refused = approve(&app, app.supervisor(), &id).await;
    assert_eq!(
        refused.code(),
        Some("INSUFFICIENT_FUNDS"),
        "{:?}",
        refused.body
    );
    assert_eq!(
        app.read_account(account).await.map(|a| a.balance),
        Some("10.00".into())
    );
}

#[tokio::test]
async fn an_edited_approver_is_caught_by_verify_at_its_event() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await.id;
    let maker = app.token("supervisor-maker", &[Role::Supervisor]);
    let requested = request(&app, &maker, account, "25.00").await;
    let id = requested.data("requestAdjustment")["adjustment"]["id"].clone();
    let approved = approve(&app, app.supervisor(), &id).await;
    let approved = approved.data("approveAdjustment");
    let event_id: uuid::Uuid =
        serde_json::from_value(approved["eventId"].clone()).expect("an event id");
    let position: i64 = approved["position"]
        .as_str()
        .expect("position")
        .parse()
        .expect("number");

    let mut tx = app.pool.begin().await.expect("begin");
    for sql in [
        "alter table accounts.events disable trigger events_are_immutable",
        "update accounts.events set payload = jsonb_set(payload, '{approvedBy}', '\"supervisor-maker\"') where event_id = $1",
        "alter table accounts.events enable always trigger events_are_immutable",
    ] {
        sqlx::query(sql)
            .bind(event_id)
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    tx.commit().await.expect("commit the tampering");

    let report = verify_store(&app).await;
    let found: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.position == Some(position))
        .map(|p| p.kind)
        .collect();
    assert!(
        found.contains(&ProblemKind::HashMismatch)
            && found.contains(&ProblemKind::AdjustmentInconsistent),
        "{:?}",
        report.problems
    );
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.stream_id.is_none() || p.stream_id == Some(AccountId::from_uuid(account))),
        "{:?}",
        report.problems
    );
}
