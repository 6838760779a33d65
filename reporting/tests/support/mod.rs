//! Helpers shared by the reporting integration tests: a fresh PostgreSQL database per test
//! whose read models are filled through the projection with events from `FakeLedger`,
//! the reporting state and GraphQL schema over it, tokens, and a small HTTP client.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use async_graphql::{Request, Response, Variables};
use chrono::{DateTime, TimeZone, Utc};
use ledger::{RecordedEvent, testing::FakeLedger};
use platform::{Principal, RequestContext, Role, TokenKeys, config::NatsSettings};
use reporting::{
    graphql::{ReportingSchema, schema},
    projection::{Delivery, Disposition, Projector},
    state::{ReportingOptions, ReportingState},
};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long `atLeast` waits in tests that expect it to give up.
pub const SHORT_AT_LEAST_WAIT: Duration = Duration::from_millis(200);
/// How long `atLeast` waits in tests that expect the position to arrive.
pub const LONG_AT_LEAST_WAIT: Duration = Duration::from_secs(30);
/// The client address test requests come from.
pub const CLIENT_ADDR: &str = "10.1.2.3";

/// A database of its own with the reporting migrations, and a projector feeding it.
pub struct TestDb {
    pub pool: PgPool,
    pub projector: Projector,
    pub stream: String,
    sequence: AtomicU64,
}

impl TestDb {
    /// A database whose projector checkpoints under a stream name of its own.
    pub async fn new() -> Self {
        Self::with_stream(format!("TEST_{}", uuid::Uuid::new_v4().simple())).await
    }

    pub async fn with_stream(stream: String) -> Self {
        let (pool, _settings) =
            platform::testing::fresh_pool(vec![(reporting::migrator(), reporting::SCHEMA)]).await;
        Self {
            projector: Projector::new(pool.clone(), stream.clone()),
            pool,
            stream,
            sequence: AtomicU64::new(0),
        }
    }

    /// Projects `events` in one batch, as the consumer would, and checks each was applied.
    pub async fn apply(&self, events: impl IntoIterator<Item = RecordedEvent>) {
        let deliveries: Vec<Delivery> = events
            .into_iter()
            .map(|event| Delivery {
                stream_sequence: self.sequence.fetch_add(1, Ordering::SeqCst) + 1,
                event,
            })
            .collect();
        let dispositions = self
            .projector
            .apply_batch(&deliveries)
            .await
            .expect("apply a batch")
            .dispositions;
        for (delivery, disposition) in deliveries.iter().zip(&dispositions) {
            assert_eq!(
                disposition,
                &Disposition::Applied,
                "event at position {} was not applied",
                delivery.event.position
            );
        }
    }

    /// Projects `events` without checking what happened to them.
    pub async fn deliver(
        &self,
        events: impl IntoIterator<Item = RecordedEvent>,
    ) -> Vec<Disposition> {
        let deliveries: Vec<Delivery> = events
            .into_iter()
            .map(|event| Delivery {
                stream_sequence: self.sequence.fetch_add(1, Ordering::SeqCst) + 1,
                event,
            })
            .collect();
        self.projector
            .apply_batch(&deliveries)
            .await
            .expect("apply a batch")
            .dispositions
    }
}

/// A database plus the reporting state and schema over it (with fresh JetStream names).
pub struct TestApi {
    pub db: TestDb,
    pub state: ReportingState,
    pub schema: ReportingSchema,
}

impl TestApi {
    pub async fn new() -> Self {
        Self::with_wait(SHORT_AT_LEAST_WAIT).await
    }

    pub async fn with_wait(at_least_wait: Duration) -> Self {
        let settings: NatsSettings = platform::testing::fresh_nats().await;
        let db = TestDb::with_stream(settings.stream.clone()).await;
        let nats = async_nats::connect(settings.url.as_str())
            .await
            .expect("NATS is reachable (start it with scripts/services)");
        let options = ReportingOptions { at_least_wait };
        let access_log = platform::access_log::AccessLog::spawn(db.pool.clone());
        let state = ReportingState::new(db.pool.clone(), nats, settings, options, access_log);
        let schema = schema(state.clone());
        Self { db, state, schema }
    }

    /// Runs `query` with `variables` as `actor` holding `roles`.
    pub async fn run(
        &self,
        actor: &str,
        roles: &[Role],
        query: &str,
        variables: Value,
    ) -> Response {
        self.schema
            .execute(
                Request::new(query)
                    .variables(Variables::from_json(variables))
                    .data(context(actor, roles, &format!("corr-{actor}"))),
            )
            .await
    }

    /// Runs `query` as an auditor and returns its data, failing the test on any error.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.run("audrey", &[Role::Auditor], query, variables).await;
        assert!(response.errors.is_empty(), "errors: {:?}", response.errors);
        response.data.into_json().expect("data as JSON")
    }
}

/// The request context of `actor` holding `roles`.
pub fn context(actor: &str, roles: &[Role], correlation_id: &str) -> RequestContext {
    RequestContext {
        principal: Principal {
            actor: actor.to_string(),
            roles: roles.iter().copied().collect(),
        },
        correlation_id: correlation_id.to_string(),
        client_addr: Some(CLIENT_ADDR.to_string()),
    }
}

/// The `extensions.code` of each error of `response`.
pub fn codes(response: &Response) -> Vec<String> {
    response
        .errors
        .iter()
        .map(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .map(|c| c.to_string().trim_matches('"').to_string())
                .unwrap_or_else(|| format!("no code: {}", e.message))
        })
        .collect()
}

/// The only error of `response`: its code and message.
pub fn only_error(response: &Response) -> (String, String) {
    assert_eq!(response.errors.len(), 1, "errors: {:?}", response.errors);
    (
        codes(response).remove(0),
        response.errors[0].message.clone(),
    )
}

/// An instant on the test day, 2026-03-02.
pub fn at(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, hour, minute, second)
        .single()
        .expect("a valid instant")
}

pub fn dec(text: &str) -> Decimal {
    text.parse().expect("a decimal")
}

/// A ledger whose events are recorded by `teller-1` unless told otherwise.
pub fn ledger() -> FakeLedger {
    FakeLedger::new()
}

/// The positions of `events`, in order.
pub fn positions(events: &[RecordedEvent]) -> Vec<i64> {
    events.iter().map(|e| e.position).collect()
}

/// Fails the test unless `items` has no repeats; returns them as a set.
pub fn distinct<T: Ord + Clone + std::fmt::Debug>(items: &[T]) -> BTreeSet<T> {
    let set: BTreeSet<T> = items.iter().cloned().collect();
    assert_eq!(set.len(), items.len(), "repeated items in {items:?}");
    set
}

/// Signs tokens as the test platform does.
pub fn token_keys() -> TokenKeys {
    TokenKeys::new(&platform::testing::auth().jwt_secret)
}

pub fn token(actor: &str, roles: &[Role]) -> String {
    token_keys()
        .mint(actor, roles, Duration::from_secs(600))
        .expect("mint a token")
}

/// An HTTP response as the test client read it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` over HTTP/1.1 with an optional bearer token; reads the whole response.
pub async fn http_get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the test server");
    let authorization = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .expect("read the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8(raw[..split].to_vec()).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body: String::from_utf8(body).expect("a UTF-8 body"),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size_text = std::str::from_utf8(&data[..line_end]).expect("a chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("a hex chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Splits CSV text into rows of fields (RFC 4180: quoted fields, doubled quotes, CRLF rows).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}
