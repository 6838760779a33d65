//! Throughput and latency of the whole platform, measured through HTTP and GraphQL against
//! the real PostgreSQL and NATS, as a client sees them. Method and results: docs/benchmarks.md.
//!
//! Run with `scripts/services && cargo bench --bench platform` (add `-- --quick` for a
//! smaller run). Each run uses a fresh database and fresh JetStream names.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use accounts::integrity::{IntegritySettings, VerifyOptions};
use folio::{
    configuration::Settings,
    startup::{Application, Mode},
};
use futures::{StreamExt, stream};
use platform::{Role, TokenKeys, testing};
use serde_json::{Value, json};

/// Requests in flight at once.
const CONCURRENCY: usize = 32;

struct Scale {
    accounts: usize,
    deposits: usize,
    transfers: usize,
    hot_deposits: usize,
    queries: usize,
}

const FULL: Scale = Scale {
    accounts: 200,
    deposits: 10_000,
    transfers: 5_000,
    hot_deposits: 1_000,
    queries: 5_000,
};

const QUICK: Scale = Scale {
    accounts: 50,
    deposits: 1_000,
    transfers: 500,
    hot_deposits: 200,
    queries: 500,
};

struct Client {
    http: reqwest::Client,
    url: String,
    teller: String,
    auditor: String,
}

impl Client {
    async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        self.http
            .post(&self.url)
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("a JSON answer")
    }
}

/// Latencies of one scenario, and its wall time.
struct Sample {
    name: &'static str,
    latencies: Vec<Duration>,
    wall: Duration,
    failures: usize,
}

impl Sample {
    fn row(&mut self) -> String {
        self.latencies.sort();
        let pick = |q: f64| {
            let index = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
            self.latencies
                .get(index)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
            self.name,
            self.latencies.len(),
            self.latencies.len() as f64 / self.wall.as_secs_f64(),
            pick(0.5),
            pick(0.95),
            pick(0.99),
            self.failures
        )
    }
}

/// Runs `requests` with [`CONCURRENCY`] in flight; a request fails when the answer has errors.
async fn measure<F, Fut>(name: &'static str, count: usize, request: F) -> Sample
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let started = Instant::now();
    let results: Vec<(Duration, bool)> = stream::iter(0..count)
        .map(|i| {
            let future = request(i);
            async move {
                let at = Instant::now();
                let answer = future.await;
                (at.elapsed(), answer.get("errors").is_none())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    Sample {
        name,
        wall: started.elapsed(),
        failures: results.iter().filter(|(_, ok)| !ok).count(),
        latencies: results.into_iter().map(|(d, _)| d).collect(),
    }
}

const OPEN: &str =
    "mutation($i: OpenAccountInput!) { openAccount(input: $i) { account { id } position } }";
const DEPOSIT: &str = "mutation($i: DepositInput!) { deposit(input: $i) { position } }";
const TRANSFER: &str = "mutation($i: TransferInput!) { transfer(input: $i) { position } }";
const BALANCE_AS_OF: &str = "query($id: UUID!, $t: DateTime!, $p: String) { balanceAsOf(accountId: $id, asOf: $t, atLeast: $p) { balance } }";

/// Where publication and projection stood when the writes ended, and how long they took to finish.
struct Backlog {
    stored: i64,
    published_at_end: i64,
    applied_at_end: i64,
    relay_drained: Duration,
    projection_drained: Duration,
}

impl Backlog {
    async fn counts(pool: &sqlx::PgPool) -> (i64, i64, i64) {
        sqlx::query_as(
            "select (select count(*) from accounts.events),
                    (select coalesce(max(published_events), 0) from accounts.relay_checkpoints),
                    (select coalesce(max(applied_events), 0) from reporting.projection_checkpoints)",
        )
        .fetch_one(pool)
        .await
        .expect("progress counts")
    }

    async fn measure(pool: &sqlx::PgPool) -> Self {
        let started = Instant::now();
        let (stored, published_at_end, applied_at_end) = Self::counts(pool).await;
        let mut relay_drained = None;
        loop {
            let (_, published, applied) = Self::counts(pool).await;
            if published >= stored && relay_drained.is_none() {
                relay_drained = Some(started.elapsed());
            }
            if applied >= stored {
                return Self {
                    stored,
                    published_at_end,
                    applied_at_end,
                    relay_drained: relay_drained.unwrap_or_else(|| started.elapsed()),
                    projection_drained: started.elapsed(),
                };
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "the projection never caught up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { QUICK } else { FULL };
    let settings = Settings {
        database: testing::fresh_database().await,
        nats: testing::fresh_nats().await,
        auth: testing::auth(),
        http_addr: "127.0.0.1:0".parse().expect("address"),
        accounts: accounts::startup::AccountsOptions::default(),
        reporting: reporting::state::ReportingOptions {
            at_least_wait: Duration::from_secs(60),
        },
        integrity: IntegritySettings::with_key(ed25519_dalek::SigningKey::from_bytes(&[5; 32])),
        migrate: true,
    };
    let app = Application::build(&settings, Mode::All)
        .await
        .expect("platform builds");
    let pool = app.pool.clone();
    let port = app.local_addr().expect("address").port();
    tokio::spawn(app.run_until_stopped());
    let keys = TokenKeys::new(&settings.auth.jwt_secret);
    let client = Arc::new(Client {
        http: reqwest::Client::new(),
        url: format!("http://127.0.0.1:{port}/graphql"),
        teller: keys
            .mint("bench-teller", &[Role::Teller], Duration::from_secs(3600))
            .expect("token"),
        auditor: keys
            .mint("bench-auditor", &[Role::Auditor], Duration::from_secs(3600))
            .expect("token"),
    });

    let mut accounts = Vec::with_capacity(scale.accounts);
    for n in 0..scale.accounts {
        let answer = client
            .gql(
                &client.teller,
                OPEN,
                json!({ "i": { "holder": format!("Bench {n}"), "currency": "USD", "idempotencyKey": key() } }),
            )
            .await;
        accounts.push(
            answer["data"]["openAccount"]["account"]["id"]
                .as_str()
                .expect("account id")
                .to_string(),
        );
    }
    let accounts = Arc::new(accounts);
    let mut samples = Vec::new();

    let c = client.clone();
    let a = accounts.clone();
    samples.push(
        measure("deposit (spread over accounts)", scale.deposits, move |i| {
            let c = c.clone();
            let id = a[i % a.len()].clone();
            async move {
                c.gql(
                    &c.teller,
                    DEPOSIT,
                    json!({ "i": { "accountId": id, "amount": "10.00", "idempotencyKey": key() } }),
                )
                .await
            }
        })
        .await,
    );

    let c = client.clone();
    let a = accounts.clone();
    samples.push(
        measure("transfer (random pairs)", scale.transfers, move |i| {
            let c = c.clone();
            let from = a[i % a.len()].clone();
            let to = a[(i * 7 + 1) % a.len()].clone();
            let to = if to == from { a[(i + 1) % a.len()].clone() } else { to };
            async move {
                c.gql(
                    &c.teller,
                    TRANSFER,
                    json!({ "i": { "fromAccountId": from, "toAccountId": to, "amount": "0.01", "idempotencyKey": key() } }),
                )
                .await
            }
        })
        .await,
    );

    let c = client.clone();
    let hot = accounts[0].clone();
    let hot_sample = measure("deposit (one hot account)", scale.hot_deposits, move |_| {
        let c = c.clone();
        let id = hot.clone();
        async move {
            c.gql(
                &c.teller,
                DEPOSIT,
                json!({ "i": { "accountId": id, "amount": "1.00", "idempotencyKey": key() } }),
            )
            .await
        }
    })
    .await;
    samples.push(hot_sample);

    // Publication and projection: how far behind the writes they were, and how fast they drained.
    let backlog = Backlog::measure(&pool).await;

    // Projection: how long until reporting reflects the last write.
    let last = client
        .gql(
            &client.teller,
            DEPOSIT,
            json!({ "i": { "accountId": accounts[1], "amount": "1.00", "idempotencyKey": key() } }),
        )
        .await;
    let last_position = last["data"]["deposit"]["position"]
        .as_str()
        .expect("position")
        .to_string();
    let caught_up = Instant::now();
    let now = chrono::Utc::now().to_rfc3339();
    let answer = client
        .gql(
            &client.auditor,
            BALANCE_AS_OF,
            json!({ "id": accounts[1], "t": now, "p": last_position }),
        )
        .await;
    assert!(
        answer.get("errors").is_none(),
        "projection caught up: {answer}"
    );
    let catch_up = caught_up.elapsed();

    let c = client.clone();
    let a = accounts.clone();
    samples.push(
        measure(
            "balanceAsOf (random account, now)",
            scale.queries,
            move |i| {
                let c = c.clone();
                let id = a[(i * 13) % a.len()].clone();
                let t = chrono::Utc::now().to_rfc3339();
                async move {
                    c.gql(&c.auditor, BALANCE_AS_OF, json!({ "id": id, "t": t }))
                        .await
                }
            },
        )
        .await,
    );

    let events: i64 = sqlx::query_scalar("select count(*) from accounts.events")
        .fetch_one(&pool)
        .await
        .expect("count");
    let verified_at = Instant::now();
    let report = accounts::integrity::verify(
        &pool,
        &VerifyOptions {
            public_key: settings.integrity.public_key(),
            account: None,
            external: None,
            events_max: None,
            progress: None,
            backdate_max: chrono::Duration::days(accounts::writer::BACKDATE_DAYS_MAX_DEFAULT),
        },
    )
    .await
    .expect("verify");
    let verify_time = verified_at.elapsed();

    println!(
        "\n{} accounts, {CONCURRENCY} requests in flight\n",
        scale.accounts
    );
    println!("| scenario | requests | per second | p50 ms | p95 ms | p99 ms | failed |");
    println!("|---|---|---|---|---|---|---|");
    for sample in &mut samples {
        println!("{}", sample.row());
    }
    println!(
        "\nwhen the writes ended, {} events were stored, {} published and {} projected;",
        backlog.stored, backlog.published_at_end, backlog.applied_at_end
    );
    println!(
        "the relay drained its backlog in {:.1} s, the projection in {:.1} s ({:.0} events/s while catching up)",
        backlog.relay_drained.as_secs_f64(),
        backlog.projection_drained.as_secs_f64(),
        (backlog.stored - backlog.applied_at_end) as f64
            / backlog.projection_drained.as_secs_f64().max(0.001)
    );
    println!(
        "a balanceAsOf with atLeast = the last write's position answered {:.0} ms after that write",
        catch_up.as_secs_f64() * 1000.0
    );
    println!(
        "folio verify: {events} events in {:.2} s ({:.0} events/s), clean: {}",
        verify_time.as_secs_f64(),
        events as f64 / verify_time.as_secs_f64(),
        report.is_clean()
    );
}
