//! Request logs of a real `folio up` process: one JSON line per request with
//! `FOLIO_LOG_FORMAT=json`, no colour codes when the output is not a terminal, and never a
//! token.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use platform::{Role, TokenKeys};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::helpers::{TEST_SIGNING_SEED, TOKEN_TTL, eventually, key, test_settings};

/// A child process killed when dropped.
struct Stopped(std::process::Child);

impl Stopped {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn json_logs_give_one_line_per_request_with_its_facts_and_no_token_or_colour() {
    let settings = test_settings(|_| {}).await;
    let keys = TokenKeys::new(&settings.auth.jwt_secret);
    let token = keys
        .mint("teller-lou", &[Role::Teller], TOKEN_TTL)
        .expect("a token");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let log = std::env::temp_dir().join(format!("folio-log-{}.jsonl", key()));
    let file = std::fs::File::create(&log).expect("a log file");
    let seed: String = TEST_SIGNING_SEED
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let child = Command::new(env!("CARGO_BIN_EXE_folio"))
        .arg("up")
        .env("DATABASE_URL", settings.database.url.expose_secret())
        .env("NATS_URL", &settings.nats.url)
        .env("FOLIO_NATS_STREAM", &settings.nats.stream)
        .env("FOLIO_NATS_SUBJECT_PREFIX", &settings.nats.subject_prefix)
        .env("FOLIO_JWT_SECRET", settings.auth.jwt_secret.expose_secret())
        .env("FOLIO_SIGNING_KEY", seed)
        .env("FOLIO_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("FOLIO_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(file))
        .stderr(Stdio::null())
        .spawn()
        .expect("start folio up");
    // Stopped however the test ends, so no server outlives it.
    let mut child = Stopped(child);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    eventually("folio up answers /healthz", || {
        let http = http.clone();
        let url = format!("{base}/healthz");
        async move {
            http.get(url)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == StatusCode::OK)
        }
    })
    .await;
    let answer: Value = http
        .post(format!("{base}/graphql"))
        .bearer_auth(&token)
        .header("X-Correlation-Id", "log-test-0001")
        .json(&json!({
            "query": "mutation($input: OpenAccountInput!) { openAccount(input: $input) { position } }",
            "variables": { "input": { "holder": "Lou Reed", "currency": "EUR", "idempotencyKey": key() } },
        }))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    assert!(answer["errors"].is_null(), "{answer}");

    let line = eventually("the request's log line is written", || {
        let log = log.clone();
        async move {
            let text = std::fs::read_to_string(&log).ok()?;
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["correlation_id"] == "log-test-0001")
        }
    })
    .await;
    child.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = std::fs::read_to_string(&log).expect("the log");
    let _ = std::fs::remove_file(&log);

    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "folio::request");
    // Fields are flattened into the line (`FOLIO_LOG_FORMAT=json`).
    let fields = &line;
    assert_eq!(fields["method"], "POST");
    assert_eq!(fields["route"], "/graphql");
    assert_eq!(fields["operation"], "openAccount");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["actor"], "teller-lou");
    assert!(
        fields["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{line}"
    );
    for (number, raw) in text.lines().enumerate() {
        assert!(
            serde_json::from_str::<Value>(raw).is_ok(),
            "line {number} is not JSON: {raw}"
        );
    }
    assert!(!text.contains('\u{1b}'), "no colour codes in a file");
    assert!(!text.contains(&token), "the token is never logged");
}
