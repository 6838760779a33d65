//! A NATS outage: the platform runs against a `nats-server` of the test's own, which the
//! test stops and starts again. Commands keep succeeding while it is down (the event store
//! is the outbox), readiness says NATS is down, and once it is back the reporting side
//! catches up with every event exactly once.

use std::{
    fs::OpenOptions,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use chrono::{SecondsFormat, TimeDelta, Utc};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Poll, ProjectionStatus, Statement, TestApp, TransferPayload, eventually, key, position,
    spawn_app_with,
};

/// Where `nats-server` is looked for when it is not on `PATH` (Debian installs it in /usr/sbin).
const NATS_SERVER_FALLBACKS: [&str; 2] = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server"];
/// How long a query with `atLeast` waits in this test: long enough for the relay and the
/// consumer to reconnect and work off their backoff after the outage.
const CATCH_UP_WAIT: Duration = Duration::from_secs(60);

/// The `nats-server` binary, from `PATH` or a usual place; fails the test if there is none.
fn nats_server_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("nats-server"));
    on_path
        .chain(NATS_SERVER_FALLBACKS.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server is not installed (looked on PATH and in {NATS_SERVER_FALLBACKS:?}); \
                 this test starts and stops a server of its own. Install it with \
                 `sudo apt-get install nats-server` (Debian, Ubuntu), `brew install nats-server` \
                 (macOS) or from https://github.com/nats-io/nats-server/releases, or run \
                 scripts/services, which installs it"
            )
        })
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free local port")
}

/// A `nats-server` with JetStream on a port and store directory of its own. Stopped (and
/// its store removed) when dropped, so a failing test leaves no server behind.
struct NatsServer {
    binary: PathBuf,
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    async fn start() -> Self {
        let binary = nats_server_binary();
        let store = std::env::temp_dir().join(format!("folio-test-nats-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&store)
            .unwrap_or_else(|e| panic!("create the NATS store {}: {e}", store.display()));
        let mut server = Self {
            binary,
            port: free_port(),
            store,
            child: None,
        };
        server.run().await;
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.store.join("server.log")
    }

    /// Starts the process on the server's port and store, and waits until it accepts clients.
    async fn run(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the NATS log");
        let child = Command::new(&self.binary)
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(self.store.join("jetstream"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        let poll = Poll::start();
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "nats-server exited with {status}: {}",
                    read_log(&self.log_path())
                );
            }
            if tokio::net::TcpStream::connect(&address).await.is_ok() {
                return;
            }
            poll.wait("nats-server to accept connections").await;
        }
    }

    /// Kills the process and waits for it to be gone.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}

/// `GET /readyz`: its status and body.
async fn readiness(app: &TestApp) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("the platform answers");
    let status = response.status();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

fn decimal(raw: &str) -> Decimal {
    raw.parse()
        .unwrap_or_else(|e| panic!("{raw:?} is not a decimal: {e}"))
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn events_of(app: &TestApp, account: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from accounts.events where stream_id = $1")
        .bind(account)
        .fetch_one(&app.pool)
        .await
        .expect("count the account's events")
}

#[tokio::test]
async fn while_nats_is_down_commands_succeed_and_reporting_catches_up_exactly_once() {
    let mut nats = NatsServer::start().await;
    let app = spawn_app_with(|s| {
        s.nats.url = nats.url();
        s.reporting.at_least_wait = CATCH_UP_WAIT;
    })
    .await;

    // Before the outage, a mutation is projected.
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Grace").await.id;
    let before = app.deposited(a, "100.00").await.position;
    let seen = app
        .balance_at(a, &now(), &before)
        .await
        .expect("A is projected");
    assert_eq!(seen.balance, "100.00");
    let (status, body) = readiness(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    nats.stop();
    let down = eventually("/readyz to report NATS down", || async {
        let (status, body) = readiness(&app).await;
        (status == StatusCode::SERVICE_UNAVAILABLE && body["checks"]["nats"]["ok"] == json!(false))
            .then_some(body)
    })
    .await;
    assert_eq!(down["ready"], json!(false), "{down}");
    assert_eq!(down["checks"]["postgres"]["ok"], json!(true), "{down}");

    // Commands still succeed: the event store is the outbox.
    app.deposited(a, "10.00").await;
    let _ = app
        .withdraw(
            app.teller(),
            json!({ "accountId": a, "amount": "5.00", "idempotencyKey": key() }),
        )
        .await
        .data("withdraw");
    let moved: TransferPayload = app
        .transfer(
            app.teller(),
            json!({ "fromAccountId": a, "toAccountId": b, "amount": "20.00", "idempotencyKey": key() }),
        )
        .await
        .parse("transfer");
    assert_eq!(moved.from.balance, "85.00");
    let c = app.open("Katherine", "EUR", "0").await.id;
    let last = app.deposited(c, "7.00").await.position;
    assert!(position(&last) > position(&before));

    // Nothing can have reached the reporting side yet: without atLeast it answers what it has.
    let stale = app
        .balance_at(a, &now(), "0")
        .await
        .expect("A is still projected");
    assert_eq!(
        stale.balance, "100.00",
        "the outage's mutations are not projected yet"
    );
    assert_eq!(app.balance_at(c, &now(), "0").await, None);

    nats.run().await;

    // The query itself waits until the projection has caught up.
    let caught_up = now();
    let expected = [(a, "85.00", 5), (b, "20.00", 2), (c, "7.00", 2)];
    for (account, balance, version) in expected {
        let found = app
            .balance_at(account, &caught_up, &last)
            .await
            .unwrap_or_else(|| panic!("{account} is projected"));
        assert_eq!(decimal(&found.balance), decimal(balance), "{found:?}");
        assert_eq!(found.version, version, "{found:?}");
    }

    // Each event applied exactly once: the audit trail is the event store, one for one.
    let stored: Vec<i64> =
        sqlx::query_scalar("select position from accounts.events order by position")
            .fetch_all(&app.pool)
            .await
            .expect("read the event store's positions");
    let auditor = app.auditor();
    let trail = app.whole_audit_trail(&auditor, json!({}), 500, &last).await;
    let projected: Vec<i64> = trail
        .iter()
        .map(|e| i64::try_from(position(&e.position)).expect("a position fits in i64"))
        .collect();
    assert_eq!(projected, stored, "every event exactly once, by position");
    for (account, _, _) in expected {
        let theirs = app
            .whole_audit_trail(&auditor, json!({ "accountId": account }), 500, &last)
            .await;
        let count = i64::try_from(theirs.len()).expect("small");
        assert_eq!(
            count,
            events_of(&app, account).await,
            "{account}: {theirs:?}"
        );
    }
    let statement: Statement = app
        .statement(
            app.teller(),
            json!({
                "accountId": a,
                "from": "2000-01-01T00:00:00Z",
                "to": (Utc::now() + TimeDelta::days(1)).to_rfc3339_opts(SecondsFormat::Micros, true),
                "atLeast": last,
            }),
        )
        .await
        .parse("statement");
    let kinds: Vec<String> = statement
        .entries
        .nodes()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["DEPOSIT", "DEPOSIT", "WITHDRAWAL", "TRANSFER_OUT"]);
    assert_eq!(decimal(&statement.closing_balance), decimal("85.00"));

    let status: ProjectionStatus = app
        .projection_status(&auditor, json!({ "atLeast": last }))
        .await
        .parse("projectionStatus");
    assert_eq!(status.applied_events, app.event_count().await, "{status:?}");
    assert_eq!(status.integrity_alerts, 0);

    // JetStream holds each event once too: re-sent batches were deduplicated by event id.
    let client = async_nats::connect(nats.url())
        .await
        .expect("connect to the test's NATS server");
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(&app.settings.nats.stream)
        .await
        .expect("the stream exists");
    let messages = stream.info().await.expect("stream info").state.messages;
    assert_eq!(
        i64::try_from(messages).expect("small"),
        app.event_count().await,
        "one message per event"
    );

    let ready = eventually("/readyz to report ready again", || async {
        let (status, body) = readiness(&app).await;
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    assert_eq!(ready["checks"]["nats"]["ok"], json!(true), "{ready}");
}
