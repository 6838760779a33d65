//! The compliance queries of the accounts service: an auditor gets a proof, checkable
//! offline, that an event is part of signed history, and a supervisor verifies the store.

use ledger::integrity::AuditProof;
use platform::Role;
use serde_json::json;

use crate::helpers::{Gql, TEST_SIGNING_SEED, eventually, key, position, spawn_app_with};

#[tokio::test]
async fn an_auditor_gets_a_proof_of_an_event_that_checks_against_the_signing_key() {
    // Every relay batch signs a checkpoint, so each event is soon covered by one.
    let app = spawn_app_with(|s| s.integrity.checkpoint_events = 1).await;
    let a = app.open_usd("Ada").await.id;
    let deposited = app.deposited(a, "25.00").await;
    let auditor = app.auditor();

    let answer: Gql = eventually("a signed checkpoint to cover the deposit", || async {
        let answer = app.audit_proof(&auditor, deposited.event_id).await;
        match answer.code() {
            Some("STALE_READ") => None,
            _ => Some(answer),
        }
    })
    .await;
    let proof = answer.data("auditProof");
    assert_eq!(proof["eventId"], json!(deposited.event_id));
    assert_eq!(proof["position"], json!(deposited.position));
    let covered = proof["checkpoint"]["position"]
        .as_str()
        .expect("the checkpoint's position");
    assert!(
        position(covered) >= position(&deposited.position),
        "the checkpoint covers the event: {proof}"
    );

    // The document is the whole proof: it checks offline against the public key.
    let document: AuditProof = serde_json::from_value(proof["document"].clone())
        .unwrap_or_else(|e| panic!("the document is an audit proof ({e}): {proof}"));
    assert_eq!(document.event.event_id.as_uuid(), deposited.event_id);
    assert_eq!(document.event.position.to_string(), deposited.position);
    assert_eq!(
        document.event.hash.to_hex(),
        proof["hash"].as_str().expect("a hash")
    );
    let public_key = ed25519_dalek::SigningKey::from_bytes(&TEST_SIGNING_SEED).verifying_key();
    document
        .verify(&public_key)
        .unwrap_or_else(|e| panic!("the proof does not verify ({e}): {proof}"));
    let other_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    assert!(
        document.verify(&other_key).is_err(),
        "a proof checked against another key fails"
    );

    // Only auditors get proofs.
    let teller = app.audit_proof(app.teller(), deposited.event_id).await;
    assert_eq!(teller.code(), Some("FORBIDDEN"), "{}", teller.body);
}

#[tokio::test]
async fn a_supervisor_verifies_an_untouched_store_as_intact() {
    let app = spawn_app_with(|s| s.integrity.checkpoint_events = 1).await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Grace").await.id;
    app.deposited(a, "100.00").await;
    let _ = app
        .transfer(
            app.teller(),
            json!({ "fromAccountId": a, "toAccountId": b, "amount": "30.00", "idempotencyKey": key() }),
        )
        .await
        .data("transfer");
    app.frozen(b).await;

    let report = app.verify_integrity(app.supervisor(), json!({})).await;
    let report = report.data("verifyIntegrity");
    assert_eq!(report["ok"], json!(true), "{report}");
    assert_eq!(report["problems"], json!([]), "{report}");
    assert_eq!(report["problemsNotListed"], json!(0), "{report}");
    assert_eq!(report["truncated"], json!(false), "{report}");
    assert_eq!(report["streamsChecked"], json!(2), "{report}");
    assert_eq!(
        report["eventsChecked"],
        json!(app.event_count().await),
        "{report}"
    );

    let one = app
        .verify_integrity(app.supervisor(), json!({ "accountId": a }))
        .await;
    let one = one.data("verifyIntegrity");
    assert_eq!(one["ok"], json!(true), "{one}");
    assert_eq!(one["streamsChecked"], json!(1), "{one}");
    assert_eq!(one["eventsChecked"], json!(3), "{one}");

    let teller = app.verify_integrity(app.teller(), json!({})).await;
    assert_eq!(teller.code(), Some("FORBIDDEN"), "{}", teller.body);
    let auditor = app.token("auditor-ann", &[Role::Auditor]);
    let by_auditor = app.verify_integrity(&auditor, json!({})).await;
    assert_eq!(by_auditor.data("verifyIntegrity")["ok"], json!(true));
}
