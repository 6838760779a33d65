//! Folio measured against PostgreSQL itself: each write and read scenario runs side by side
//! with pgbench on the same server, alternating fixed-length runs, and the ratio of each
//! pair is reported. Method and results: docs/benchmarks.md.
//!
//! Run with `scripts/services && cargo bench --bench platform`; `-- --quick` runs each
//! scenario once for 5 s, `-- --run-seconds N` sets the length of every run, `-- --only TEXT` runs
//! only the scenarios whose label contains TEXT (comma-separated; `visible` and `rebuild` name
//! the once-only measurements) and prints a partial report. The platform
//! (`folio up`) runs in this process on a fresh database and fresh JetStream names; pgbench
//! gets a fresh database of its own (`folio_pgbench_<pid>`, dropped at the end).

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Command,
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use accounts::integrity::IntegritySettings;
use folio::{
    configuration::Settings,
    startup::{Application, Mode},
};
use futures::{StreamExt, stream};
use platform::{Role, TokenKeys, testing};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgConnectOptions};

/// pgbench's scale: 10 branches, 100 tellers, 1,000,000 accounts.
const PGBENCH_SCALE: u32 = 10;
/// Accounts Folio's transfers move money between.
const ACCOUNTS: usize = 1_000;
/// What each account is funded with before the runs.
const FUNDING: &str = "100000.00";
/// Transfers per `executeBatch` request.
const BATCH_TRANSFERS: usize = 100;
/// Share of the hot scenario's transfers that touch the hot account.
const HOT_SHARE: f64 = 0.9;
/// Requests in flight (pgbench clients) of the scenarios run at one concurrency.
const IN_FLIGHT: usize = 32;
/// The paced rate of the commit → visible scenario.
const PACED_TRANSFERS_PER_SECOND: u64 = 1_000;
/// How often the commit → visible scenario looks at the read models.
const VISIBILITY_POLL: Duration = Duration::from_millis(5);
/// The longest the projection may take to catch up before the benchmark gives up.
const CATCH_UP_MAX: Duration = Duration::from_secs(600);

const OPEN: &str =
    "mutation($i: OpenAccountInput!) { openAccount(input: $i) { account { id } position } }";
const TRANSFER: &str = "mutation($i: TransferInput!) { transfer(input: $i) { position } }";
const EXECUTE_BATCH: &str =
    "mutation($i: BatchInput!) { executeBatch(input: $i) { committed position } }";
const BALANCE_AS_OF: &str =
    "query($id: UUID!, $t: DateTime!) { balanceAsOf(accountId: $id, asOf: $t) { balance } }";

/// The script of pgbench's hot reference: tpcb-like, with 90% of transactions on aid 1.
const PGBENCH_HOT_SCRIPT: &str = "\\set aid_uniform random(1, 100000 * :scale)
\\set pick random(1, 100)
\\set aid CASE WHEN :pick <= 90 THEN 1 ELSE :aid_uniform END
\\set bid random(1, 1 * :scale)
\\set tid random(1, 10 * :scale)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
";

// ------------------------------------------------------------------ what a run cost

/// Statements Folio sent to PostgreSQL, counted from sqlx's per-statement `sqlx::query`
/// events (every statement but `BEGIN`, which sqlx sends without one).
static STATEMENTS: AtomicU64 = AtomicU64::new(0);
/// Of those, the `COMMIT`s.
static COMMITS: AtomicU64 = AtomicU64::new(0);

/// Counts sqlx's statement events and ignores everything else (no other callsite is enabled).
struct StatementCounter;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementCounter {
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if metadata.target() == "sqlx::query" {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        metadata.target() == "sqlx::query"
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        STATEMENTS.fetch_add(1, Ordering::Relaxed);
        let mut summary = Summary(false);
        event.record(&mut summary);
        if summary.0 {
            COMMITS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether a statement event's summary is a `COMMIT`.
struct Summary(bool);

impl tracing::field::Visit for Summary {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.0 = value.trim().eq_ignore_ascii_case("commit");
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = format!("{value:?}")
                .trim_matches('"')
                .eq_ignore_ascii_case("commit");
        }
    }
}

/// CPU seconds used so far by PostgreSQL, this process (Folio and the load it is given) and
/// NATS, and Folio's statements so far.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    postgres: f64,
    folio: f64,
    nats: f64,
    statements: u64,
    commits: u64,
}

/// One process's `/proc/<pid>/stat`: (name, parent, own CPU ticks, reaped children's ticks).
fn proc_stat(path: &std::path::Path) -> Option<(String, u32, u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let parent = number(1)? as u32;
    Some((
        name,
        parent,
        number(11)? + number(12)?,
        number(13)? + number(14)?,
    ))
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

impl Usage {
    /// PostgreSQL's CPU is every `postgres` process's own plus, for the postmaster, that of
    /// the backends it has reaped, so connections that end during a run still count.
    fn now(ticks_per_second: f64) -> Self {
        let mut processes: HashMap<u32, (String, u32, u64, u64)> = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if let Some(stat) = proc_stat(&entry.path().join("stat")) {
                    processes.insert(pid, stat);
                }
            }
        }
        let is_postgres = |pid: &u32| processes.get(pid).is_some_and(|p| p.0 == "postgres");
        let mut postgres = 0;
        let mut nats = 0;
        for (name, parent, own, reaped) in processes.values() {
            if name == "postgres" {
                postgres += own + if is_postgres(parent) { 0 } else { *reaped };
            } else if name == "nats-server" {
                nats += own;
            }
        }
        let folio = proc_stat(std::path::Path::new("/proc/self/stat")).map_or(0, |p| p.2);
        Self {
            postgres: postgres as f64 / ticks_per_second,
            folio: folio as f64 / ticks_per_second,
            nats: nats as f64 / ticks_per_second,
            statements: STATEMENTS.load(Ordering::Relaxed),
            commits: COMMITS.load(Ordering::Relaxed),
        }
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            postgres: self.postgres - before.postgres,
            folio: self.folio - before.folio,
            nats: self.nats - before.nats,
            statements: self.statements - before.statements,
            commits: self.commits - before.commits,
        }
    }
}

/// The peak resident set of this process (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

// ------------------------------------------------------------------------- pgbench

#[derive(Clone, Copy, Debug, PartialEq)]
enum Reference {
    TpcbLike,
    HotTpcbLike,
    SelectOnly,
}

impl Reference {
    fn label(self) -> &'static str {
        match self {
            Reference::TpcbLike => "tpcb-like",
            Reference::HotTpcbLike => "tpcb-like, 90% on aid 1",
            Reference::SelectOnly => "select-only",
        }
    }
}

/// One pgbench run.
#[derive(Clone, Copy, Debug)]
struct PgbenchRun {
    tps: f64,
    transactions: u64,
    usage: Usage,
}

struct Pgbench {
    binary: PathBuf,
    host: String,
    port: u16,
    user: String,
    database: String,
    admin: PgConnectOptions,
    hot_script: PathBuf,
}

/// pgbench on the PATH or in Debian's PostgreSQL directories; else the benchmark stops and
/// says how to install it.
fn find_pgbench() -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v pgbench"])
        .output()
    {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !path.is_empty() {
            return PathBuf::from(path);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "pgbench is not installed, and this benchmark measures Folio against it: install it \
             (Debian/Ubuntu: `sudo apt-get install postgresql-contrib`, or `postgresql-client` \
             on recent releases) and run the benchmark again"
        )
    })
}

impl Pgbench {
    /// A fresh database `folio_pgbench_<pid>` initialised at [`PGBENCH_SCALE`].
    async fn create() -> Self {
        let binary = find_pgbench();
        let url = platform::config::env_or("DATABASE_URL", platform::config::DEFAULT_DATABASE_URL);
        let base = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL");
        let admin = base.clone().database("postgres");
        let database = format!("folio_pgbench_{}", std::process::id());
        let mut conn = PgConnection::connect_with(&admin)
            .await
            .expect("PostgreSQL is reachable; start it with scripts/services");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "drop database if exists \"{database}\""
        )))
        .await
        .expect("drop an old pgbench database");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "create database \"{database}\""
        )))
        .await
        .expect("create the pgbench database");
        let hot_script = std::env::temp_dir().join(format!("{database}_hot.sql"));
        std::fs::write(&hot_script, PGBENCH_HOT_SCRIPT).expect("write the hot script");
        let pgbench = Self {
            binary,
            host: base.get_host().to_string(),
            port: base.get_port(),
            user: base.get_username().to_string(),
            database,
            admin,
            hot_script,
        };
        let scale = PGBENCH_SCALE.to_string();
        pgbench.exec(&["-i", "-q", "-s", &scale]).await;
        pgbench
    }

    async fn exec(&self, arguments: &[&str]) -> String {
        let mut command = Command::new(&self.binary);
        command
            .args([
                "-h",
                &self.host,
                "-p",
                &self.port.to_string(),
                "-U",
                &self.user,
            ])
            .args(arguments)
            .arg(&self.database);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("pgbench ran")
            .expect("pgbench starts");
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "pgbench {arguments:?} failed: {}{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Waits until no backend serves the pgbench database any more: the CPU of a backend
    /// counts for the postmaster once it is reaped, and must land in the run that used it.
    async fn settle(&self) {
        let mut conn = PgConnection::connect_with(&self.admin)
            .await
            .expect("connect to PostgreSQL");
        let started = Instant::now();
        loop {
            let backends: i64 =
                sqlx::query_scalar("select count(*) from pg_stat_activity where datname = $1")
                    .bind(&self.database)
                    .fetch_one(&mut conn)
                    .await
                    .expect("pg_stat_activity");
            if backends == 0 || started.elapsed() > Duration::from_secs(10) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = conn.close().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// What pgbench's own vacuum step does (tellers and branches vacuumed, history emptied),
    /// done before the CPU is sampled so that only the run itself is measured.
    async fn prepare(&self) {
        let mut conn = PgConnection::connect_with(&self.admin.clone().database(&self.database))
            .await
            .expect("connect to the pgbench database");
        conn.execute("vacuum pgbench_branches")
            .await
            .expect("vacuum");
        conn.execute("vacuum pgbench_tellers")
            .await
            .expect("vacuum");
        conn.execute("truncate pgbench_history")
            .await
            .expect("truncate");
        let _ = conn.close().await;
        self.settle().await;
    }

    async fn run(
        &self,
        reference: Reference,
        clients: usize,
        seconds: u64,
        ticks: f64,
    ) -> PgbenchRun {
        self.prepare().await;
        let clients_text = clients.to_string();
        let threads = clients.min(2).to_string();
        let seconds_text = seconds.to_string();
        let scale = PGBENCH_SCALE.to_string();
        let hot = self.hot_script.to_string_lossy().to_string();
        let mut arguments = vec![
            "-n",
            "-c",
            &clients_text,
            "-j",
            &threads,
            "-T",
            &seconds_text,
            "-s",
            &scale,
        ];
        match reference {
            Reference::TpcbLike => arguments.extend(["-b", "tpcb-like"]),
            Reference::HotTpcbLike => arguments.extend(["-f", &hot]),
            Reference::SelectOnly => arguments.push("-S"),
        }
        let before = Usage::now(ticks);
        let out = self.exec(&arguments).await;
        self.settle().await;
        let usage = Usage::now(ticks).since(&before);
        let field = |prefix: &str| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.split('/').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("pgbench printed no {prefix:?}: {out}"))
        };
        PgbenchRun {
            tps: field("tps = "),
            transactions: field("number of transactions actually processed: ") as u64,
            usage,
        }
    }

    async fn drop_database(&self) {
        let _ = std::fs::remove_file(&self.hot_script);
        if let Ok(mut conn) = PgConnection::connect_with(&self.admin).await {
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "drop database if exists \"{}\" with (force)",
                    self.database
                )))
                .await;
        }
    }
}

// --------------------------------------------------------------------------- Folio

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

    async fn transfer(&self, from: &str, to: &str) -> Value {
        self.gql(
            &self.teller,
            TRANSFER,
            json!({ "i": { "fromAccountId": from, "toAccountId": to, "amount": "0.01", "idempotencyKey": key() } }),
        )
        .await
    }
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Two distinct accounts, uniformly.
fn uniform_pair(accounts: usize) -> (usize, usize) {
    let a = fastrand::usize(..accounts);
    let b = fastrand::usize(..accounts - 1);
    (a, if b >= a { b + 1 } else { b })
}

/// Two distinct accounts, one of them account 0 in [`HOT_SHARE`] of the picks.
fn hot_pair(accounts: usize) -> (usize, usize) {
    if fastrand::f64() < HOT_SHARE {
        let other = fastrand::usize(1..accounts);
        if fastrand::bool() {
            (0, other)
        } else {
            (other, 0)
        }
    } else {
        uniform_pair(accounts)
    }
}

/// What one request did: operations committed and refused.
#[derive(Clone, Copy, Debug, Default)]
struct Outcome {
    ok: u64,
    failed: u64,
}

impl Outcome {
    fn of(answer: &Value) -> Self {
        if answer.get("errors").is_none() {
            Self { ok: 1, failed: 0 }
        } else {
            Self { ok: 0, failed: 1 }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scenario {
    Transfers(usize),
    Batches,
    Hot,
    Balances,
}

impl Scenario {
    fn label(self) -> String {
        match self {
            Scenario::Transfers(n) => format!("transfers, {n} in flight"),
            Scenario::Batches => {
                format!("executeBatch of {BATCH_TRANSFERS} transfers, {IN_FLIGHT} in flight")
            }
            Scenario::Hot => format!("transfers, {IN_FLIGHT} in flight, 90% on one account"),
            Scenario::Balances => format!("balanceAsOf, {IN_FLIGHT} in flight"),
        }
    }

    fn in_flight(self) -> usize {
        match self {
            Scenario::Transfers(n) => n,
            _ => IN_FLIGHT,
        }
    }

    fn reference(self) -> (Reference, usize) {
        match self {
            Scenario::Transfers(n) => (Reference::TpcbLike, n),
            Scenario::Batches => (Reference::TpcbLike, IN_FLIGHT),
            Scenario::Hot => (Reference::HotTpcbLike, IN_FLIGHT),
            Scenario::Balances => (Reference::SelectOnly, IN_FLIGHT),
        }
    }

    fn writes(self) -> bool {
        self != Scenario::Balances
    }

    async fn request(self, client: &Client, accounts: &[String]) -> Outcome {
        match self {
            Scenario::Transfers(_) => {
                let (a, b) = uniform_pair(accounts.len());
                Outcome::of(&client.transfer(&accounts[a], &accounts[b]).await)
            }
            Scenario::Hot => {
                let (a, b) = hot_pair(accounts.len());
                Outcome::of(&client.transfer(&accounts[a], &accounts[b]).await)
            }
            Scenario::Batches => {
                let operations: Vec<Value> = (0..BATCH_TRANSFERS)
                    .map(|_| {
                        let (a, b) = uniform_pair(accounts.len());
                        json!({ "transfer": { "fromAccountId": accounts[a], "toAccountId": accounts[b], "amount": "0.01", "idempotencyKey": key() } })
                    })
                    .collect();
                let answer = client
                    .gql(
                        &client.teller,
                        EXECUTE_BATCH,
                        json!({ "i": { "operations": operations, "atomic": false } }),
                    )
                    .await;
                let ok = answer["data"]["executeBatch"]["committed"]
                    .as_u64()
                    .unwrap_or(0);
                Outcome {
                    ok,
                    failed: BATCH_TRANSFERS as u64 - ok,
                }
            }
            Scenario::Balances => {
                let id = &accounts[fastrand::usize(..accounts.len())];
                let t = chrono::Utc::now().to_rfc3339();
                Outcome::of(
                    &client
                        .gql(&client.auditor, BALANCE_AS_OF, json!({ "id": id, "t": t }))
                        .await,
                )
            }
        }
    }
}

/// Where the projection stood when a write run ended, and how long it took to catch up.
#[derive(Clone, Copy, Debug)]
struct Lag {
    events_behind: i64,
    /// Of those, not yet published by the relay.
    unpublished: i64,
    catch_up: Duration,
    /// The run's write rate, to say how many seconds of its load the lag is.
    events_per_second: f64,
}

impl Lag {
    fn seconds_of_load(&self) -> f64 {
        self.events_behind as f64 / self.events_per_second.max(f64::EPSILON)
    }
}

/// One Folio run: operations committed per second over the run's wall time.
#[derive(Clone, Debug)]
struct FolioRun {
    rate: f64,
    ok: u64,
    failed: u64,
    latencies: Vec<Duration>,
    /// From the run's start until the projection had caught up after it.
    usage: Usage,
    lag: Option<Lag>,
    sessions: Sessions,
}

struct Bench {
    client: Arc<Client>,
    accounts: Arc<Vec<String>>,
    pool: PgPool,
    stream: String,
    ticks: f64,
    /// Events in the store, and the highest position counted.
    stored: Mutex<(i64, i64)>,
}

impl Bench {
    /// The events stored so far (counting only the ones added since the last call).
    async fn stored(&self) -> i64 {
        let (total, last) = *self.stored.lock().expect("lock");
        let (added, highest): (i64, Option<i64>) = sqlx::query_as(
            "select count(*), max(position) from accounts.events where position > $1",
        )
        .bind(last)
        .fetch_one(&self.pool)
        .await
        .expect("count events");
        let counted = (total + added, highest.unwrap_or(last));
        *self.stored.lock().expect("lock") = counted;
        counted.0
    }

    async fn applied(&self) -> i64 {
        sqlx::query_scalar(
            "select coalesce(max(applied_events), 0) from reporting.projection_checkpoints where stream = $1",
        )
        .bind(&self.stream)
        .fetch_one(&self.pool)
        .await
        .expect("projection progress")
    }

    /// Waits until the projection has applied every stored event; how far behind it was.
    async fn drain(&self, written: i64, run: Duration) -> Lag {
        let stored = self.stored().await;
        let started = Instant::now();
        let events_behind = (stored - self.applied().await).max(0);
        let published: i64 = sqlx::query_scalar(
            "select coalesce(max(published_events), 0) from accounts.relay_checkpoints",
        )
        .fetch_one(&self.pool)
        .await
        .expect("relay progress");
        let unpublished = (stored - published).max(0);
        while self.applied().await < stored {
            assert!(
                started.elapsed() < CATCH_UP_MAX,
                "the projection did not catch up within {CATCH_UP_MAX:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Lag {
            events_behind,
            unpublished,
            catch_up: started.elapsed(),
            events_per_second: written as f64 / run.as_secs_f64(),
        }
    }

    /// Folio's counterpart of pgbench's vacuum step, outside the measured window:
    /// `VACUUM (ANALYZE)` of Folio's database, which a production server's autovacuum does
    /// in the background. Without it (this machine runs PostgreSQL with `autovacuum = off`)
    /// the read models' updated rows pile up as dead tuples and the planner never learns
    /// how large the tables have grown, and every run is slower than the one before.
    async fn vacuum(&self) {
        let mut conn = self.pool.acquire().await.expect("a connection");
        conn.execute("vacuum (analyze)").await.expect("vacuum");
    }

    /// `scenario` for `duration` with its requests in flight, each worker issuing its next
    /// request when the last one answers; then, for writes, the projection's catch-up.
    async fn run(&self, scenario: Scenario, duration: Duration) -> FolioRun {
        self.vacuum().await;
        let stored_before = self.stored().await;
        let before = Usage::now(self.ticks);
        let started = Instant::now();
        let deadline = started + duration;
        let sampler = tokio::spawn(sample_sessions(self.pool.clone(), deadline));
        let workers: Vec<_> = (0..scenario.in_flight())
            .map(|_| {
                let client = self.client.clone();
                let accounts = self.accounts.clone();
                tokio::spawn(async move {
                    let mut done = (Outcome::default(), Vec::new());
                    while Instant::now() < deadline {
                        let at = Instant::now();
                        let outcome = scenario.request(&client, &accounts).await;
                        done.1.push(at.elapsed());
                        done.0.ok += outcome.ok;
                        done.0.failed += outcome.failed;
                    }
                    done
                })
            })
            .collect();
        let mut total = Outcome::default();
        let mut latencies = Vec::new();
        for worker in workers {
            let (outcome, mut times) = worker.await.expect("worker");
            total.ok += outcome.ok;
            total.failed += outcome.failed;
            latencies.append(&mut times);
        }
        let wall = started.elapsed();
        let sessions = sampler.await.expect("sampler");
        let lag = if scenario.writes() {
            let written = self.stored().await - stored_before;
            Some(self.drain(written, wall).await)
        } else {
            None
        };
        latencies.sort();
        FolioRun {
            rate: total.ok as f64 / wall.as_secs_f64(),
            ok: total.ok,
            failed: total.failed,
            latencies,
            usage: Usage::now(self.ticks).since(&before),
            lag,
            sessions,
        }
    }
}

/// What Folio's PostgreSQL sessions were doing during a run, on average: running a statement,
/// or inside a transaction waiting for Folio's next statement (`idle in transaction`).
#[derive(Clone, Copy, Debug, Default)]
struct Sessions {
    active: f64,
    idle_in_transaction: f64,
}

/// Samples `pg_stat_activity` of Folio's database every 10 ms until `deadline`.
async fn sample_sessions(pool: PgPool, deadline: Instant) -> Sessions {
    let (mut samples, mut active, mut idle) = (0u64, 0i64, 0i64);
    while Instant::now() < deadline {
        let (a, i): (i64, i64) = sqlx::query_as(
            "select count(*) filter (where state = 'active'),
                    count(*) filter (where state = 'idle in transaction')
             from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
        )
        .fetch_one(&pool)
        .await
        .expect("pg_stat_activity");
        samples += 1;
        active += a;
        idle += i;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let samples = samples.max(1) as f64;
    Sessions {
        active: active as f64 / samples,
        idle_in_transaction: idle as f64 / samples,
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round().max(0.0) as usize;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

// ------------------------------------------------------------- paced, read and rebuild

/// Commit → visible at a paced rate: each transfer's answer is noted with its position, and
/// every [`VISIBILITY_POLL`] the read models are asked which noted positions they show,
/// with the predicate `atLeast` uses (the event's row in `audit_log`, at or below the
/// projection's watermark). A position's delay runs from its answer to the start of the
/// first poll that sees it.
struct Visibility {
    sent: u64,
    answered_per_second: f64,
    /// Each transfer's latency, from send to answer.
    answers: Vec<Duration>,
    delays: Vec<Duration>,
    failed: u64,
    lag: Lag,
}

async fn commit_to_visible(bench: &Bench, duration: Duration) -> Visibility {
    bench.vacuum().await;
    let stored_before = bench.stored().await;
    let pending: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let answers: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let sending_done = Arc::new(AtomicBool::new(false));
    let poller = {
        let (pool, stream) = (bench.pool.clone(), bench.stream.clone());
        let (pending, sending_done) = (pending.clone(), sending_done.clone());
        tokio::spawn(async move { poll_visible(pool, stream, pending, sending_done).await })
    };
    let started = Instant::now();
    let mut ticker =
        tokio::time::interval(Duration::from_secs(1) / PACED_TRANSFERS_PER_SECOND as u32);
    let mut senders = Vec::new();
    while started.elapsed() < duration {
        ticker.tick().await;
        let (client, accounts) = (bench.client.clone(), bench.accounts.clone());
        let (pending, answers, failed) = (pending.clone(), answers.clone(), failed.clone());
        senders.push(tokio::spawn(async move {
            let (a, b) = uniform_pair(accounts.len());
            let sent = Instant::now();
            let answer = client.transfer(&accounts[a], &accounts[b]).await;
            answers.lock().expect("lock").push(sent.elapsed());
            let position = answer["data"]["transfer"]["position"]
                .as_str()
                .and_then(|p| p.parse::<i64>().ok());
            match position {
                Some(p) => pending.lock().expect("lock").push((p, Instant::now())),
                None => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let sent = senders.len() as u64;
    for sender in senders {
        sender.await.expect("sender");
    }
    let answered = started.elapsed();
    sending_done.store(true, Ordering::Release);
    let written = bench.stored().await - stored_before;
    let lag = bench.drain(written, answered).await;
    let mut delays = poller.await.expect("poller");
    delays.sort();
    let mut answers = std::mem::take(&mut *answers.lock().expect("lock"));
    answers.sort();
    Visibility {
        sent,
        answered_per_second: sent as f64 / answered.as_secs_f64(),
        answers,
        delays,
        failed: failed.load(Ordering::Relaxed),
        lag,
    }
}

async fn poll_visible(
    pool: PgPool,
    stream: String,
    pending: Arc<Mutex<Vec<(i64, Instant)>>>,
    sending_done: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut delays = Vec::new();
    let started = Instant::now();
    while started.elapsed() < CATCH_UP_MAX {
        tokio::time::sleep(VISIBILITY_POLL).await;
        // Read before the snapshot: when sending is done, every answer is already noted.
        let done = sending_done.load(Ordering::Acquire);
        let waiting: Vec<(i64, Instant)> = pending.lock().expect("lock").clone();
        if waiting.is_empty() {
            if done {
                break;
            }
            continue;
        }
        let at = Instant::now();
        let positions: Vec<i64> = waiting.iter().map(|w| w.0).collect();
        let visible: Vec<i64> = sqlx::query_scalar(
            "select a.position from reporting.audit_log a
             join reporting.projection_checkpoints c on c.stream = $2
             where a.position = any($1) and a.stream_sequence <= c.watermark_sequence",
        )
        .bind(&positions)
        .bind(&stream)
        .fetch_all(&pool)
        .await
        .expect("visible positions");
        delays.extend(
            waiting
                .iter()
                .filter(|w| visible.contains(&w.0))
                .map(|w| at.saturating_duration_since(w.1)),
        );
        pending
            .lock()
            .expect("lock")
            .retain(|p| !visible.contains(&p.0));
    }
    delays
}

/// Opens [`ACCOUNTS`] accounts and funds each with [`FUNDING`].
async fn open_accounts(client: &Arc<Client>) -> Vec<String> {
    let accounts: Vec<String> = stream::iter(0..ACCOUNTS)
        .map(|n| {
            let client = client.clone();
            async move {
                let answer = client
                    .gql(
                        &client.teller,
                        OPEN,
                        json!({ "i": { "holder": format!("Bench {n}"), "currency": "USD", "idempotencyKey": key() } }),
                    )
                    .await;
                answer["data"]["openAccount"]["account"]["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("an account: {answer}"))
                    .to_string()
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for chunk in accounts.chunks(BATCH_TRANSFERS) {
        let operations: Vec<Value> = chunk
            .iter()
            .map(|id| json!({ "deposit": { "accountId": id, "amount": FUNDING, "idempotencyKey": key() } }))
            .collect();
        let answer = client
            .gql(
                &client.teller,
                EXECUTE_BATCH,
                json!({ "i": { "operations": operations, "atomic": true } }),
            )
            .await;
        assert_eq!(
            answer["data"]["executeBatch"]["committed"].as_u64(),
            Some(chunk.len() as u64),
            "funding: {answer}"
        );
    }
    accounts
}

// ------------------------------------------------------------------------ reporting

/// A scenario and its pgbench reference, run alternately.
struct Pair {
    scenario: Scenario,
    pgbench: Vec<PgbenchRun>,
    folio: Vec<FolioRun>,
}

impl Pair {
    fn ratio(&self) -> f64 {
        median(
            self.pgbench
                .iter()
                .zip(&self.folio)
                .map(|(p, f)| f.rate / p.tps)
                .collect(),
        )
    }

    fn folio_rate(&self) -> f64 {
        median(self.folio.iter().map(|f| f.rate).collect())
    }

    /// Per committed operation over all runs: PostgreSQL CPU ms, Folio CPU ms, NATS CPU ms,
    /// statements, commits.
    fn folio_cost(&self) -> (f64, f64, f64, f64, f64) {
        let ops: u64 = self.folio.iter().map(|f| f.ok).sum();
        let ops = ops.max(1) as f64;
        let sum = |f: fn(&Usage) -> f64| self.folio.iter().map(|r| f(&r.usage)).sum::<f64>();
        (
            sum(|u| u.postgres) * 1000.0 / ops,
            sum(|u| u.folio) * 1000.0 / ops,
            sum(|u| u.nats) * 1000.0 / ops,
            sum(|u| u.statements as f64) / ops,
            sum(|u| u.commits as f64) / ops,
        )
    }

    fn pgbench_cpu_ms(&self) -> f64 {
        let transactions: u64 = self.pgbench.iter().map(|p| p.transactions).sum();
        let cpu: f64 = self.pgbench.iter().map(|p| p.usage.postgres).sum();
        cpu * 1000.0 / transactions.max(1) as f64
    }

    /// The run whose projection was furthest behind when it ended.
    fn worst_lag(&self) -> Option<Lag> {
        self.folio
            .iter()
            .filter_map(|f| f.lag)
            .max_by(|a, b| a.seconds_of_load().total_cmp(&b.seconds_of_load()))
    }

    fn row(&self) -> String {
        let (reference, clients) = self.scenario.reference();
        let mut latencies: Vec<Duration> = self
            .folio
            .iter()
            .flat_map(|f| f.latencies.clone())
            .collect();
        latencies.sort();
        let failed: u64 = self.folio.iter().map(|f| f.failed).sum();
        format!(
            "| {} | {} {clients} | {:.0} | {:.0} | **{:.3}** | {:.1} / {:.1} | {} |",
            self.scenario.label(),
            reference.label(),
            median(self.pgbench.iter().map(|p| p.tps).collect()),
            self.folio_rate(),
            self.ratio(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            failed
        )
    }

    fn cost_row(&self) -> String {
        let (pg, folio, nats, statements, commits) = self.folio_cost();
        let lag = self.worst_lag().map_or("–".to_string(), |l| {
            format!(
                "{} events ({} unpublished), {:.2} s of load, caught up in {:.2} s",
                l.events_behind,
                l.unpublished,
                l.seconds_of_load(),
                l.catch_up.as_secs_f64()
            )
        });
        let active = median(self.folio.iter().map(|f| f.sessions.active).collect());
        let idle = median(
            self.folio
                .iter()
                .map(|f| f.sessions.idle_in_transaction)
                .collect(),
        );
        format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {active:.2} / {idle:.2} | {lag} |",
            self.scenario.label(),
            pg,
            self.pgbench_cpu_ms(),
            folio,
            nats,
            statements,
            commits
        )
    }
}

struct Options {
    run: Duration,
    repetitions: usize,
    /// `--only TEXT[,TEXT...]`: only the scenarios whose label contains one of the TEXTs,
    /// and none of the once-only measurements (commit → visible, rebuild) unless a TEXT
    /// names them (`visible`, `rebuild`). For working on one figure; the report is partial.
    only: Option<String>,
}

impl Options {
    fn wants(&self, label: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|text| label.contains(text)))
    }
}

fn options() -> Options {
    let arguments: Vec<String> = std::env::args().collect();
    let quick = arguments.iter().any(|a| a == "--quick");
    let seconds = arguments
        .iter()
        .position(|a| a == "--run-seconds")
        .and_then(|i| arguments.get(i + 1))
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(if quick { 5 } else { 30 });
    let only = arguments
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| arguments.get(i + 1))
        .cloned();
    Options {
        run: Duration::from_secs(seconds),
        repetitions: if quick { 1 } else { 3 },
        only,
    }
}

async fn start_platform() -> (Settings, Application) {
    let mut database = testing::fresh_database().await;
    // The production default (FOLIO_DB_POOL_SIZE_MAX).
    database.pool_size_max = 16;
    let settings = Settings {
        database,
        nats: testing::fresh_nats().await,
        auth: testing::auth(),
        http_addr: "127.0.0.1:0".parse().expect("address"),
        accounts: accounts::startup::AccountsOptions::from_env().expect("accounts options"),
        reporting: reporting::state::ReportingOptions {
            at_least_wait: Duration::from_secs(60),
        },
        integrity: IntegritySettings::with_key(ed25519_dalek::SigningKey::from_bytes(&[5; 32])),
        migrate: true,
    };
    let app = Application::build(&settings, Mode::All)
        .await
        .expect("platform builds");
    (settings, app)
}

#[tokio::main]
async fn main() {
    use tracing_subscriber::layer::SubscriberExt;
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(StatementCounter))
        .expect("the statement counter is the only subscriber");
    let options = options();
    let pgbench = Pgbench::create().await;
    let (settings, app) = start_platform().await;
    let pool = app.pool.clone();
    let port = app.local_addr().expect("address").port();
    tokio::spawn(app.run_until_stopped());
    let keys = TokenKeys::new(&settings.auth.jwt_secret);
    let mint = |sub: &str, role: Role| {
        keys.mint(sub, &[role], Duration::from_secs(24 * 3600))
            .expect("token")
    };
    let client = Arc::new(Client {
        http: reqwest::Client::new(),
        url: format!("http://127.0.0.1:{port}/graphql"),
        teller: mint("bench-teller", Role::Teller),
        auditor: mint("bench-auditor", Role::Auditor),
    });
    let accounts = Arc::new(open_accounts(&client).await);
    let bench = Bench {
        client,
        accounts,
        pool: pool.clone(),
        stream: settings.nats.stream.clone(),
        ticks: clock_ticks_per_second(),
        stored: Mutex::new((0, 0)),
    };
    bench.drain(0, Duration::from_secs(1)).await;
    println!(
        "{} s per run, {} pair(s) per scenario, {ACCOUNTS} accounts, pgbench scale {PGBENCH_SCALE}",
        options.run.as_secs(),
        options.repetitions
    );

    let scenarios = [
        Scenario::Transfers(1),
        Scenario::Transfers(8),
        Scenario::Transfers(IN_FLIGHT),
        Scenario::Batches,
        Scenario::Hot,
        Scenario::Balances,
    ];
    let mut pairs = Vec::new();
    for scenario in scenarios {
        if !options.wants(&scenario.label()) {
            continue;
        }
        let mut pair = Pair {
            scenario,
            pgbench: Vec::new(),
            folio: Vec::new(),
        };
        let (reference, clients) = scenario.reference();
        for _ in 0..options.repetitions {
            let p = pgbench
                .run(reference, clients, options.run.as_secs(), bench.ticks)
                .await;
            let f = bench.run(scenario, options.run).await;
            println!(
                "  {}: pgbench {:.0} tps, Folio {:.0}/s ({} refused), ratio {:.3}",
                scenario.label(),
                p.tps,
                f.rate,
                f.failed,
                f.rate / p.tps
            );
            pair.pgbench.push(p);
            pair.folio.push(f);
        }
        pairs.push(pair);
    }

    if options.only.is_some() {
        print_pairs(&pairs);
        if options.wants("visible") {
            let visibility = commit_to_visible(&bench, options.run).await;
            print_visibility(&visibility);
        }
        if options.wants("rebuild") {
            let nats = platform::messaging::connect(&settings.nats)
                .await
                .expect("NATS client");
            let rebuilt = reporting::rebuild::rebuild(&pool, nats, &settings.nats, &|_, _| {})
                .await
                .expect("rebuild");
            println!(
                "read-model rebuild: {} events in {:.1} s, {:.0} events/s",
                rebuilt.events,
                rebuilt.elapsed.as_secs_f64(),
                rebuilt.events_per_second()
            );
        }
        pgbench.drop_database().await;
        return;
    }
    let visibility = commit_to_visible(&bench, options.run).await;
    let events = bench.stored().await;
    let nats = platform::messaging::connect(&settings.nats)
        .await
        .expect("NATS client");
    let rebuilt = reporting::rebuild::rebuild(&pool, nats, &settings.nats, &|_, _| {})
        .await
        .expect("rebuild");
    pgbench.drop_database().await;

    report(&pairs, &visibility, events, &rebuilt);
}

/// The two tables of the scenario pairs: rates and ratios, then costs per operation.
fn print_pairs(pairs: &[Pair]) {
    println!(
        "\n| scenario | pgbench reference, clients | pgbench tps | Folio ops/s | Folio ÷ pgbench | Folio p50 / p99 ms | refused |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for pair in pairs {
        println!("{}", pair.row());
    }
    println!(
        "\n| scenario | PostgreSQL CPU ms per op, Folio | PostgreSQL CPU ms per transaction, pgbench | Folio process CPU ms per op | NATS CPU ms per op | statements per op | COMMITs per op | Folio's PostgreSQL sessions active / idle in transaction | projection lag when the run ended (worst run) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for pair in pairs {
        println!("{}", pair.cost_row());
    }
}

/// The commit → visible line.
fn print_visibility(visibility: &Visibility) {
    let d = &visibility.delays;
    println!(
        "\ncommit → visible, {PACED_TRANSFERS_PER_SECOND} transfers/s paced: {} sent ({:.0}/s answered, {} refused, answers p50 {:.1} ms, p99 {:.1} ms), visible p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; lag when it ended {} events ({:.2} s of load), caught up in {:.2} s",
        visibility.sent,
        visibility.answered_per_second,
        visibility.failed,
        percentile(&visibility.answers, 0.5),
        percentile(&visibility.answers, 0.99),
        percentile(d, 0.5),
        percentile(d, 0.99),
        percentile(d, 1.0),
        visibility.lag.events_behind,
        visibility.lag.seconds_of_load(),
        visibility.lag.catch_up.as_secs_f64()
    );
}

fn report(
    pairs: &[Pair],
    visibility: &Visibility,
    events: i64,
    rebuilt: &reporting::rebuild::RebuildReport,
) {
    print_pairs(pairs);
    let find = |s: Scenario| pairs.iter().find(|p| p.scenario == s);
    let hot_over_uniform = match (find(Scenario::Hot), find(Scenario::Transfers(IN_FLIGHT))) {
        (Some(hot), Some(uniform)) => hot.folio_rate() / uniform.folio_rate(),
        _ => 0.0,
    };
    let d = &visibility.delays;
    print_visibility(visibility);
    println!(
        "read-model rebuild: {} events in {:.1} s, {:.0} events/s ({events} events in the store)",
        rebuilt.events,
        rebuilt.elapsed.as_secs_f64(),
        rebuilt.events_per_second()
    );
    let rss = peak_rss_mib();
    println!(
        "peak RSS of the process (Folio in-process with the load generator): {rss:.0} MiB (VmHWM)"
    );

    let ratio = |s: Scenario| find(s).map_or(0.0, Pair::ratio);
    let worst_lag = pairs
        .iter()
        .filter_map(Pair::worst_lag)
        .chain([visibility.lag])
        .map(|l| l.seconds_of_load())
        .fold(0.0, f64::max);
    let targets = [
        (
            "transfers, 32 in flight ÷ tpcb-like 32",
            ratio(Scenario::Transfers(IN_FLIGHT)),
            ">= 1.0",
            ratio(Scenario::Transfers(IN_FLIGHT)) >= 1.0,
        ),
        (
            "executeBatch ÷ tpcb-like 32",
            ratio(Scenario::Batches),
            ">= 3.0",
            ratio(Scenario::Batches) >= 3.0,
        ),
        (
            "hot ÷ uniform",
            hot_over_uniform,
            ">= 0.5",
            hot_over_uniform >= 0.5,
        ),
        (
            "commit → visible p99 ms",
            percentile(d, 0.99),
            "<= 100",
            percentile(d, 0.99) <= 100.0,
        ),
        (
            "projection lag, s of load (worst)",
            worst_lag,
            "<= 1",
            worst_lag <= 1.0,
        ),
        (
            "rebuild events/s",
            rebuilt.events_per_second(),
            ">= 20000",
            rebuilt.events_per_second() >= 20_000.0,
        ),
        (
            "balanceAsOf ÷ select-only 32",
            ratio(Scenario::Balances),
            ">= 0.3",
            ratio(Scenario::Balances) >= 0.3,
        ),
    ];
    println!("\n| target | reached | wanted | met |\n|---|---:|---|---|");
    for (name, value, wanted, met) in targets {
        println!(
            "| {name} | {value:.3} | {wanted} | {} |",
            if met { "met" } else { "not met" }
        );
    }
}
