//! A seeded, bounded generator of malformed requests, run against a live platform.
//!
//! Every answer must be in the contract's shape: no 5xx, no INTERNAL, every error code
//! one of `../shared/API.md`'s; a refused request adds no row to `accounts.events`; and the
//! process is alive at the end. The seed is printed: `FOLIO_FUZZ_SEED=<seed>` replays a
//! run, `FOLIO_FUZZ_REQUESTS=<n>` changes its length.

use ledger::ErrorCode;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// Requests per run unless `FOLIO_FUZZ_REQUESTS` says otherwise.
const REQUESTS_DEFAULT: usize = 3_000;

const TEMPLATES: [&str; 8] = [
    r#"mutation { deposit(input: {accountId: "ACCOUNT", amount: "10.00", reference: "rent", idempotencyKey: "KEY"}) { account { id balance } eventId position } }"#,
    r#"mutation { withdraw(input: {accountId: "ACCOUNT", amount: "1.00", idempotencyKey: "KEY"}) { position } }"#,
    r#"mutation { transfer(input: {fromAccountId: "ACCOUNT", toAccountId: "OTHER", amount: "2.50", idempotencyKey: "KEY"}) { transferId position } }"#,
    r#"mutation { openAccount(input: {holder: "Fuzz", currency: "USD", overdraftLimit: "5", idempotencyKey: "KEY"}) { account { id } position } }"#,
    r#"query { account(id: "ACCOUNT") { id holder balance status version } }"#,
    r#"query { balanceAsOf(accountId: "ACCOUNT", asOf: "2026-03-03T17:00:00Z") { balance version } }"#,
    r#"query { statement(accountId: "ACCOUNT", from: "2026-01-01T00:00:00Z", to: "2030-01-01T00:00:00Z", first: 5) { openingBalance entries { edges { cursor node { amount kind } } pageInfo { endCursor } } } }"#,
    r#"query { auditTrail(filter: {accountId: "ACCOUNT", eventTypes: ["MoneyDeposited"]}, first: 3) { edges { node { position eventType payload } } } }"#,
];

const VARIABLE_DOCUMENTS: [(&str, &str); 4] = [
    (
        "mutation($i: DepositInput!) { deposit(input: $i) { position } }",
        "deposit",
    ),
    (
        "mutation($i: TransferInput!) { transfer(input: $i) { position } }",
        "transfer",
    ),
    (
        "mutation($i: OpenAccountInput!) { openAccount(input: $i) { position } }",
        "open",
    ),
    (
        "query($a: UUID!, $t: DateTime!, $p: String) { balanceAsOf(accountId: $a, asOf: $t, atLeast: $p) { balance } }",
        "balance",
    ),
];

const FRAGMENTS: [&str; 30] = [
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ":",
    "$x",
    "$i",
    "@skip(if: true)",
    "@include(if: $x)",
    "\"",
    "\\",
    "...",
    "#",
    "\u{0}",
    "1e999",
    "-",
    "null",
    "true",
    "\"\"\"",
    "__typename",
    "amount: \"1\"",
    "...F",
    "fragment F on Query { __typename }",
    "query",
    "mutation",
    ",",
    "é",
    "\u{202e}",
];

/// One generated request: headers and body bytes.
struct Fuzzed {
    kind: &'static str,
    content_type: Option<&'static str>,
    authorization: Option<String>,
    body: Vec<u8>,
}

struct Generator {
    rng: fastrand::Rng,
    account: String,
    other: String,
    token: String,
}

impl Generator {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(..items.len())]
    }

    fn template(&mut self) -> String {
        let key = format!("fuzz-{}", self.rng.u64(..));
        self.pick(&TEMPLATES)
            .replace("ACCOUNT", &self.account)
            .replace("OTHER", &self.other)
            .replace("KEY", &key)
    }

    fn mutated_document(&mut self) -> String {
        let mut document: Vec<char> = self.template().chars().collect();
        for _ in 0..self.rng.usize(1..4) {
            let at = self.rng.usize(..=document.len());
            match self.rng.u8(..4) {
                0 if !document.is_empty() => {
                    let end = (at + self.rng.usize(1..8)).min(document.len());
                    let start = at.min(end);
                    document.drain(start..end);
                }
                1 => {
                    let fragment = *self.pick(&FRAGMENTS);
                    document.splice(at..at, fragment.chars());
                }
                2 if !document.is_empty() => {
                    let start = self.rng.usize(..document.len());
                    let end = (start + self.rng.usize(1..40)).min(document.len());
                    let copy: Vec<char> = document[start..end].to_vec();
                    document.splice(at..at, copy);
                }
                _ => {
                    let c = char::from_u32(self.rng.u32(..0x2FFF)).unwrap_or('?');
                    document.insert(at, c);
                }
            }
        }
        document.into_iter().collect()
    }

    fn nesting_bomb(&mut self) -> String {
        let depth = self.rng.usize(10..4_000);
        let (open, close) = *self.pick(&[("[", "]"), ("{a: ", "}"), ("(", ")"), ("{ a ", "}")]);
        let inner = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        match self.rng.u8(..3) {
            0 => format!("{{ x(a: {inner}) }}"),
            1 => format!("query($v: [Int] = {inner}) {{ __typename }}"),
            _ => format!("{{ __typename @skip(if: {inner}) }}"),
        }
    }

    fn decimal_text(&mut self) -> String {
        let alphabet: Vec<char> = "0123456789..--+eE_ ,x".chars().collect();
        (0..self.rng.usize(0..40))
            .map(|_| *self.pick(&alphabet))
            .collect()
    }

    fn json_value(&mut self, depth: usize) -> Value {
        match self.rng.u8(..10) {
            0 => Value::Null,
            1 => json!(self.rng.bool()),
            2 => json!(self.rng.i64(..)),
            3 => json!(self.rng.f64() * 1e300),
            4 => json!(self.decimal_text()),
            5 => json!("x".repeat(self.rng.usize(0..5_000))),
            6 if depth < 60 => Value::Array(
                (0..self.rng.usize(0..3))
                    .map(|_| self.json_value(depth + 1))
                    .collect(),
            ),
            7 if depth < 60 => {
                let mut object = serde_json::Map::new();
                for _ in 0..self.rng.usize(0..3) {
                    object.insert(format!("k{}", self.rng.u8(..5)), self.json_value(depth + 1));
                }
                Value::Object(object)
            }
            8 => json!(format!("{}\u{0}{}", self.account, "\u{1b}[0m")),
            _ => json!(self.account),
        }
    }

    fn variables(&mut self, kind: &str) -> Value {
        let mut input = match kind {
            "deposit" => {
                json!({ "accountId": self.account, "amount": "1.00", "idempotencyKey": "k" })
            }
            "transfer" => {
                json!({ "fromAccountId": self.account, "toAccountId": self.other, "amount": "1.00", "idempotencyKey": "k" })
            }
            "open" => json!({ "holder": "Fuzz", "currency": "USD", "idempotencyKey": "k" }),
            _ => json!({ "a": self.account, "t": "2026-03-03T17:00:00Z", "p": "1" }),
        };
        let object = input.as_object_mut().expect("an object");
        let keys: Vec<String> = object.keys().cloned().collect();
        for _ in 0..self.rng.usize(1..3) {
            let key = self.pick(&keys).clone();
            match self.rng.u8(..4) {
                0 => {
                    object.remove(&key);
                }
                1 => {
                    object.insert(format!("{key}X"), self.json_value(0));
                }
                _ => {
                    let value = if key == "amount" && self.rng.bool() {
                        json!(self.decimal_text())
                    } else {
                        self.json_value(0)
                    };
                    object.insert(key, value);
                }
            }
        }
        if kind == "balance" {
            input
        } else {
            json!({ "i": input })
        }
    }

    fn next(&mut self) -> Fuzzed {
        let token = Some(format!("Bearer {}", self.token));
        let json_body = |query: String, variables: Value| {
            serde_json::to_vec(&json!({ "query": query, "variables": variables })).expect("JSON")
        };
        match self.rng.u8(..20) {
            0..=6 => Fuzzed {
                kind: "mutated document",
                content_type: Some("application/json"),
                authorization: token,
                body: json_body(self.mutated_document(), json!({})),
            },
            7..=11 => {
                let (document, kind) = *self.pick(&VARIABLE_DOCUMENTS);
                Fuzzed {
                    kind: "fuzzed variables",
                    content_type: Some("application/json"),
                    authorization: token,
                    body: json_body(document.to_string(), self.variables(kind)),
                }
            }
            12..=13 => Fuzzed {
                kind: "nesting bomb",
                content_type: Some("application/json"),
                authorization: token,
                body: json_body(self.nesting_bomb(), json!({})),
            },
            14..=15 => {
                let amount = self.decimal_text();
                Fuzzed {
                    kind: "decimal text",
                    content_type: Some("application/json"),
                    authorization: token,
                    body: json_body(
                        "mutation($i: DepositInput!) { deposit(input: $i) { position } }".into(),
                        json!({ "i": { "accountId": self.account, "amount": amount, "idempotencyKey": format!("d-{}", self.rng.u64(..)) } }),
                    ),
                }
            }
            16 => {
                let mut body = json_body(self.template(), json!({}));
                let cut = self.rng.usize(..body.len());
                body.truncate(cut);
                if self.rng.bool() {
                    body.extend((0..self.rng.usize(1..20)).map(|_| self.rng.u8(..)));
                }
                Fuzzed {
                    kind: "broken body",
                    content_type: Some("application/json"),
                    authorization: token,
                    body,
                }
            }
            17 => Fuzzed {
                kind: "content type",
                content_type: Some(*self.pick(&[
                    "text/plain",
                    "application/graphql",
                    "multipart/form-data; boundary=x",
                    "application/json; charset=latin1",
                    "",
                ])),
                authorization: token,
                body: json_body(self.template(), json!({})),
            },
            18 => {
                let raw = match self.rng.u8(..4) {
                    0 => "Bearer".to_string(),
                    1 => format!("Bearer {}x", self.token),
                    2 => format!("Basic {}", self.token),
                    _ => format!("Bearer {}", "A.".repeat(self.rng.usize(1..2_000))),
                };
                Fuzzed {
                    kind: "authorization",
                    content_type: Some("application/json"),
                    authorization: Some(raw),
                    body: json_body(self.template(), json!({})),
                }
            }
            _ => {
                let amount = self.decimal_text();
                Fuzzed {
                    kind: "duplicate keys",
                    content_type: Some("application/json"),
                    authorization: token,
                    body: format!(
                        r#"{{"query": "mutation($i: DepositInput!) {{ deposit(input: $i) {{ position }} }}", "variables": {{"i": {{"accountId": "{}", "amount": "1", "amount": "{amount}", "idempotencyKey": "k"}}}}}}"#,
                        self.account,
                    )
                    .into_bytes(),
                }
            }
        }
    }
}

async fn event_count(app: &TestApp) -> i64 {
    app.event_count().await
}

#[tokio::test]
async fn thousands_of_malformed_requests_get_contract_shaped_refusals_and_write_nothing() {
    let seed: u64 = std::env::var("FOLIO_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let requests: usize = std::env::var("FOLIO_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(REQUESTS_DEFAULT);
    println!("fuzz seed: {seed} (replay with FOLIO_FUZZ_SEED={seed})");
    let app = spawn_app().await;
    let account = app.open_usd("Fuzz A").await;
    let other = app.open_usd("Fuzz B").await;
    app.deposited(account.id, "100.00").await;
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(ErrorCode::as_str).collect();
    let token = app.token("fuzzer", &[platform::Role::Teller, platform::Role::Auditor]);
    let mut generator = Generator {
        rng: fastrand::Rng::with_seed(seed),
        account: account.id.to_string(),
        other: other.id.to_string(),
        token,
    };
    let mut refused = 0usize;
    for n in 0..requests {
        let fuzzed = generator.next();
        let before = event_count(&app).await;
        let mut request = app
            .client
            .post(app.url("/graphql"))
            .body(fuzzed.body.clone());
        if let Some(content_type) = fuzzed.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(authorization) = &fuzzed.authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.unwrap_or_else(|e| {
            panic!("seed {seed}, request {n} ({}): no answer: {e}", fuzzed.kind)
        });
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let context = || {
            format!(
                "seed {seed}, request {n} ({}): HTTP {status}\nbody: {}\nanswer: {text}",
                fuzzed.kind,
                String::from_utf8_lossy(&fuzzed.body)
                    .chars()
                    .take(600)
                    .collect::<String>()
            )
        };
        assert!(status.as_u16() < 500, "{}", context());
        let answer: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", context()));
        let errors = answer["errors"].as_array().cloned().unwrap_or_default();
        for error in &errors {
            let code = error["extensions"]["code"].as_str().unwrap_or("(none)");
            assert!(codes.contains(&code), "unknown code {code}: {}", context());
            assert_ne!(code, "INTERNAL", "{}", context());
        }
        if !errors.is_empty() || status != StatusCode::OK {
            refused += 1;
            assert_eq!(
                event_count(&app).await,
                before,
                "a refused request wrote events: {}",
                context()
            );
        }
    }
    println!("fuzz: {refused} of {requests} requests refused");
    assert!(
        refused > requests / 2,
        "the generator mostly makes bad requests"
    );
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("alive");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        app.read_account(account.id).await.map(|a| a.id),
        Some(account.id),
        "the platform still serves requests"
    );
}
