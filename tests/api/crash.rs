//! `kill -9` of a real `folio up` process, then `atLeast` reads: an answer given for a
//! position must include every event committed before that position was written
//! (DESIGN.md, "An honest watermark"). Once as the reported scenario, deterministic;
//! once as a seeded random walk of kills under load, compared with a replay of the
//! event store.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use chrono::{SecondsFormat, Utc};
use folio::configuration::Settings;
use platform::{Role, TokenKeys};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::helpers::{TEST_SIGNING_SEED, TOKEN_TTL, eventually, key, position, test_settings};

/// `folio up` as a child process, killed with SIGKILL when asked (and when dropped).
struct Platform {
    settings: Settings,
    port: u16,
    child: Option<Child>,
    http: reqwest::Client,
    teller: String,
    auditor: String,
    pool: PgPool,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Platform {
    async fn start() -> Self {
        let settings = test_settings(|_| {}).await;
        let keys = TokenKeys::new(&settings.auth.jwt_secret);
        let pool = PgPool::connect(settings.database.url.expose_secret())
            .await
            .expect("the test database");
        let mut platform = Self {
            port: free_port(),
            teller: keys
                .mint("teller-tess", &[Role::Teller], TOKEN_TTL)
                .expect("token"),
            auditor: keys
                .mint("auditor-aud", &[Role::Auditor], TOKEN_TTL)
                .expect("token"),
            settings,
            child: None,
            http: reqwest::Client::new(),
            pool,
        };
        platform.restart().await;
        platform
    }

    /// Starts the process (again) on the same port, database and stream, and waits until
    /// it answers.
    async fn restart(&mut self) {
        let hex: String = TEST_SIGNING_SEED
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let child = Command::new(env!("CARGO_BIN_EXE_folio"))
            .arg("up")
            .env("DATABASE_URL", self.settings.database.url.expose_secret())
            .env("NATS_URL", &self.settings.nats.url)
            .env("FOLIO_NATS_STREAM", &self.settings.nats.stream)
            .env(
                "FOLIO_NATS_SUBJECT_PREFIX",
                &self.settings.nats.subject_prefix,
            )
            .env(
                "FOLIO_JWT_SECRET",
                self.settings.auth.jwt_secret.expose_secret(),
            )
            .env("FOLIO_SIGNING_KEY", hex)
            .env("FOLIO_HTTP_ADDR", format!("127.0.0.1:{}", self.port))
            // A loaded test machine may take a while to project; a stale answer is still
            // refused, only later.
            .env("FOLIO_AT_LEAST_WAIT_MS", "15000")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start folio up");
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let http = self.http.clone();
        eventually("folio up answers /healthz", || {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.get(url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == StatusCode::OK)
            }
        })
        .await;
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        self.http
            .post(format!("http://127.0.0.1:{}/graphql", self.port))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("the platform answers")
            .json()
            .await
            .expect("a JSON answer")
    }

    async fn open(&self, holder: &str) -> Uuid {
        let answer = self
            .gql(
                &self.teller,
                "mutation($i: OpenAccountInput!) { openAccount(input: $i) { account { id } } }",
                json!({ "i": { "holder": holder, "currency": "USD", "idempotencyKey": key() } }),
            )
            .await;
        serde_json::from_value(answer["data"]["openAccount"]["account"]["id"].clone())
            .unwrap_or_else(|e| panic!("opened ({e}): {answer}"))
    }

    /// Deposits `amount`; the position it wrote.
    async fn deposit(&self, account: Uuid, amount: &str) -> String {
        let answer = self
            .gql(
                &self.teller,
                "mutation($i: DepositInput!) { deposit(input: $i) { position } }",
                json!({ "i": { "accountId": account, "amount": amount, "idempotencyKey": key() } }),
            )
            .await;
        answer["data"]["deposit"]["position"]
            .as_str()
            .unwrap_or_else(|| panic!("deposited: {answer}"))
            .to_string()
    }

    async fn balance_as_of(&self, account: Uuid, at_least: &str) -> Value {
        self.gql(
            &self.auditor,
            "query($id: UUID!, $t: DateTime!, $p: String) {
               balanceAsOf(accountId: $id, asOf: $t, atLeast: $p) { balance version } }",
            json!({ "id": account, "t": now(), "p": at_least }),
        )
        .await
    }

    /// The version and balance an account's stream holds after `version`, replayed from the
    /// event store itself (its latest version when `version` is `None`).
    async fn stored(&self, account: Uuid, version: Option<i64>) -> (i64, Decimal) {
        let row: (i64, Option<String>) = sqlx::query_as(
            "select stream_version, payload->>'balanceAfter' from accounts.events
             where stream_id = $1 and ($2::int8 is null or stream_version = $2)
             order by stream_version desc limit 1",
        )
        .bind(account)
        .bind(version)
        .fetch_one(&self.pool)
        .await
        .expect("the stream");
        let balance = match row.1 {
            Some(text) => text.parse().expect("a decimal"),
            None => Decimal::ZERO,
        };
        (row.0, balance)
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Waits until the projector has taken a lock that someone else holds (it is inside a batch).
async fn projector_waits_on_a_lock(pool: &PgPool) {
    eventually("the projector blocks inside its batch", || async {
        let waiting: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_stat_activity where datname = current_database()
                            and wait_event_type = 'Lock')",
        )
        .fetch_one(pool)
        .await
        .ok()?;
        waiting.then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_kill_inside_a_projection_batch_never_yields_an_answer_missing_a_committed_event() {
    let mut platform = Platform::start().await;
    let x = platform.open("X").await;
    let y = platform.open("Y").await;
    platform.deposit(x, "1.00").await;
    let settled = platform.deposit(y, "1.00").await;
    // Both deposits are applied before the lock is taken.
    let answer = platform.balance_as_of(y, &settled).await;
    assert_eq!(answer["data"]["balanceAsOf"]["balance"], "1.00", "{answer}");

    // As in psql: hold the read models so the next projection batch blocks inside its
    // transaction, then kill -9 the process with that batch half done.
    let mut psql = PgConnection::connect(platform.settings.database.url.expose_secret())
        .await
        .expect("a connection of its own");
    sqlx::query("begin")
        .execute(&mut psql)
        .await
        .expect("begin");
    sqlx::query("lock table reporting.account_balances in share mode")
        .execute(&mut psql)
        .await
        .expect("lock");
    let p1 = platform.deposit(x, "1.00").await;
    projector_waits_on_a_lock(&platform.pool).await;
    platform.kill();
    sqlx::query("rollback")
        .execute(&mut psql)
        .await
        .expect("rollback");
    platform.restart().await;

    let p2 = platform.deposit(x, "1.00").await;
    let p3 = platform.deposit(y, "1.00").await;
    assert!(position(&p3) > position(&p2) && position(&p2) > position(&p1));

    let balance = platform.balance_as_of(x, &p3).await;
    match balance["errors"][0]["extensions"]["code"].as_str() {
        Some(code) => assert_eq!(code, "STALE_READ", "{balance}"),
        None => {
            assert_eq!(
                balance["data"]["balanceAsOf"]["balance"], "3.00",
                "{balance}"
            );
            assert_eq!(balance["data"]["balanceAsOf"]["version"], 4, "{balance}");
        }
    }
    let all = platform
        .gql(
            &platform.auditor,
            "query($t: DateTime!, $p: String) { balancesAsOf(asOf: $t, atLeast: $p) {
               edges { node { accountId balance } } } }",
            json!({ "t": now(), "p": p3 }),
        )
        .await;
    let x_balance = all["data"]["balancesAsOf"]["edges"]
        .as_array()
        .and_then(|edges| {
            edges
                .iter()
                .find(|e| e["node"]["accountId"] == json!(x))
                .map(|e| e["node"]["balance"].clone())
        });
    assert_eq!(x_balance, Some(json!("3.00")), "{all}");
    let trail = platform
        .gql(
            &platform.auditor,
            "query($id: UUID!, $p: String) { auditTrail(filter: {accountId: $id}, atLeast: $p) {
               edges { node { position } } } }",
            json!({ "id": x, "p": p3 }),
        )
        .await;
    let positions: Vec<String> = trail["data"]["auditTrail"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["position"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        positions.contains(&p1) && positions.contains(&p2),
        "{trail}"
    );
}

/// How many times the random walk kills the platform under load.
const KILLS: usize = 3;
/// Accounts the load moves money between.
const ACCOUNTS: usize = 4;
/// Clients sending deposits at once.
const CLIENTS: usize = 6;

#[tokio::test]
async fn after_random_kills_under_load_every_at_least_answer_matches_a_replay_of_the_store() {
    let seed: u64 = std::env::var("FOLIO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("crash test seed: {seed} (replay with FOLIO_CRASH_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut platform = Platform::start().await;
    let mut accounts = Vec::with_capacity(ACCOUNTS);
    for i in 0..ACCOUNTS {
        accounts.push(platform.open(&format!("Account {i}")).await);
    }

    for round in 0..KILLS {
        // Load from several clients, then a kill at a random moment within it.
        let stop = tokio::sync::watch::channel(false);
        let mut load = Vec::new();
        for client in 0..CLIENTS {
            let http = platform.http.clone();
            let port = platform.port;
            let teller = platform.teller.clone();
            let account = accounts[(client + round) % ACCOUNTS];
            let mut stopped = stop.1.clone();
            load.push(tokio::spawn(async move {
                while !*stopped.borrow_and_update() {
                    let request = http
                        .post(format!("http://127.0.0.1:{port}/graphql"))
                        .bearer_auth(&teller)
                        .json(&json!({
                            "query": "mutation($i: DepositInput!) { deposit(input: $i) { position } }",
                            "variables": { "i": { "accountId": account, "amount": "0.01", "idempotencyKey": key() } },
                        }))
                        .timeout(Duration::from_secs(5))
                        .send();
                    if request.await.is_err() {
                        // The process is gone: stop sending until the next round.
                        break;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(150..1200))).await;
        platform.kill();
        let _ = stop.0.send(true);
        for task in load {
            let _ = task.await;
        }
        platform.restart().await;

        // Everything committed is in the store now; one more deposit is written after all of it.
        let mut committed = Vec::with_capacity(ACCOUNTS);
        for account in &accounts {
            committed.push(platform.stored(*account, None).await);
        }
        println!("round {round}: committed {committed:?}");
        let target = accounts[rng.usize(..ACCOUNTS)];
        let p = platform.deposit(target, "1.00").await;
        for (account, (committed_version, _)) in accounts.iter().zip(&committed) {
            let answer = platform.balance_as_of(*account, &p).await;
            if let Some(code) = answer["errors"][0]["extensions"]["code"].as_str() {
                assert_eq!(code, "STALE_READ", "seed {seed}, round {round}: {answer}");
                continue;
            }
            let node = &answer["data"]["balanceAsOf"];
            let version = node["version"].as_i64().expect("a version");
            assert!(
                version >= *committed_version,
                "seed {seed}, round {round}: account {account} answered at version {version}, \
                 but version {committed_version} was committed before position {p} was written: {answer}"
            );
            let (_, replayed) = platform.stored(*account, Some(version)).await;
            let answered: Decimal = node["balance"]
                .as_str()
                .and_then(|b| b.parse().ok())
                .expect("a balance");
            assert_eq!(
                answered, replayed,
                "seed {seed}, round {round}: account {account} at version {version}"
            );
        }
    }
}

/// What became of one request sent while the platform was killed.
struct Sent {
    key: String,
    body: Value,
    /// Events the command writes when it succeeds.
    events: i64,
    answered: Option<bool>,
}

#[tokio::test]
async fn a_kill_during_group_commits_loses_no_answered_command_and_doubles_none() {
    let mut platform = Platform::start().await;
    let mut accounts = Vec::new();
    for i in 0..4 {
        let id = platform.open(&format!("Account {i}")).await;
        platform.deposit(id, "1000.00").await;
        accounts.push(id);
    }
    let sent: std::sync::Arc<tokio::sync::Mutex<Vec<Sent>>> = Default::default();
    let mut clients = Vec::new();
    for client in 0..8usize {
        let http = platform.http.clone();
        let port = platform.port;
        let teller = platform.teller.clone();
        let accounts = accounts.clone();
        let sent = sent.clone();
        clients.push(tokio::spawn(async move {
            for n in 0.. {
                let idempotency_key = key();
                let (body, events) = if (client + n) % 3 == 0 {
                    (
                        json!({
                            "query": "mutation($i: DepositInput!) { deposit(input: $i) { position } }",
                            "variables": { "i": { "accountId": accounts[n % 4], "amount": "0.10", "idempotencyKey": idempotency_key } },
                        }),
                        1,
                    )
                } else {
                    (
                        json!({
                            "query": "mutation($i: TransferInput!) { transfer(input: $i) { position } }",
                            "variables": { "i": { "fromAccountId": accounts[n % 4], "toAccountId": accounts[(n + 1 + client % 3) % 4],
                                                   "amount": "0.25", "idempotencyKey": idempotency_key } },
                        }),
                        2,
                    )
                };
                let index = {
                    let mut sent = sent.lock().await;
                    sent.push(Sent {
                        key: idempotency_key,
                        body: body.clone(),
                        events,
                        answered: None,
                    });
                    sent.len() - 1
                };
                let answer = http
                    .post(format!("http://127.0.0.1:{port}/graphql"))
                    .bearer_auth(&teller)
                    .json(&body)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                let Ok(answer) = answer else { return };
                let Ok(json) = answer.json::<Value>().await else { return };
                sent.lock().await[index].answered = Some(json.get("errors").is_none());
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(fastrand::u64(300..900))).await;
    platform.kill();
    for client in clients {
        let _ = client.await;
    }
    platform.restart().await;

    let counts = |pool: PgPool| async move {
        let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
            "select metadata->>'idempotencyKey', count(*) from accounts.events group by 1",
        )
        .fetch_all(&pool)
        .await
        .expect("events per key");
        rows.into_iter()
            .filter_map(|(k, n)| k.map(|k| (k, n)))
            .collect::<std::collections::HashMap<String, i64>>()
    };
    let stored = counts(platform.pool.clone()).await;
    let mut sent = sent.lock().await;
    let answered_ok = sent.iter().filter(|s| s.answered == Some(true)).count();
    assert!(
        answered_ok > 0,
        "some commands were answered before the kill"
    );
    for request in sent.iter() {
        let written = stored.get(&request.key).copied().unwrap_or(0);
        if request.answered == Some(true) {
            assert_eq!(
                written, request.events,
                "an answered command is in the store"
            );
        } else {
            assert!(
                written == 0 || written == request.events,
                "a command is written whole or not at all: {written} events"
            );
        }
    }
    // Retry what was never answered, under its key: it is written once, or answered as written.
    for request in sent.iter_mut().filter(|s| s.answered != Some(true)) {
        let answer = platform
            .http
            .post(format!("http://127.0.0.1:{}/graphql", platform.port))
            .bearer_auth(&platform.teller)
            .json(&request.body)
            .send()
            .await
            .expect("answer")
            .json::<Value>()
            .await
            .expect("JSON");
        request.answered = Some(answer.get("errors").is_none());
        assert_eq!(request.answered, Some(true), "{answer}");
    }
    let stored = counts(platform.pool.clone()).await;
    for request in sent.iter() {
        assert_eq!(
            stored.get(&request.key).copied().unwrap_or(0),
            request.events,
            "every command written exactly once"
        );
    }
    // Money is conserved: the deposits alone changed the total.
    let deposits = sent.iter().filter(|s| s.events == 1).count() as i64;
    let total: Decimal = sqlx::query_scalar(
        "select sum((payload->>'balanceAfter')::numeric) from (
             select distinct on (stream_id) payload from accounts.events
             order by stream_id, stream_version desc) heads",
    )
    .fetch_one(&platform.pool)
    .await
    .expect("total");
    assert_eq!(total, Decimal::new(400_000 + deposits * 10, 2));
}
