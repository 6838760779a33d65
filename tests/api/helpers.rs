//! The harness of the end-to-end tests: starts the whole platform on a random port against a
//! fresh PostgreSQL database and fresh JetStream names, and talks to it over HTTP and GraphQL
//! exactly as a client would (one method per GraphQL operation).

use std::{future::Future, str::FromStr, time::Duration};

use accounts::integrity::IntegritySettings;
use accounts::startup::AccountsOptions;
use folio::{
    configuration::Settings,
    startup::{Application, Mode},
};
use platform::{Role, TokenKeys, testing};
use reporting::state::ReportingOptions;

/// The seed of the key test checkpoints are signed with.
pub const TEST_SIGNING_SEED: [u8; 32] = [42; 32];
use reqwest::{StatusCode, header::HeaderMap};
use secrecy::ExposeSecret;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use sqlx::{
    Connection, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::sync::watch;
use uuid::Uuid;

/// How long test tokens live.
pub const TOKEN_TTL: Duration = Duration::from_secs(10 * 60);
/// The longest a test waits for something it polls for.
pub const POLL_DEADLINE: Duration = Duration::from_secs(15);
/// The pause between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Connections of the test's own pool on the test database.
const TEST_POOL_SIZE_MAX: u32 = 4;

const ACCOUNT_FIELDS: &str = "id holder currency balance overdraftLimit status version openedAt";

pub const OPEN_ACCOUNT: &str = "mutation($input: OpenAccountInput!) {
  openAccount(input: $input) { account { ...AccountFields } position }
}";
pub const DEPOSIT: &str = "mutation($input: DepositInput!) {
  deposit(input: $input) { account { ...AccountFields } eventId position }
}";
pub const WITHDRAW: &str = "mutation($input: WithdrawInput!) {
  withdraw(input: $input) { account { ...AccountFields } eventId position }
}";
pub const TRANSFER: &str = "mutation($input: TransferInput!) {
  transfer(input: $input) {
    transferId from { ...AccountFields } to { ...AccountFields } position
  }
}";
pub const FREEZE_ACCOUNT: &str = "mutation($input: AccountStatusInput!) {
  freezeAccount(input: $input) { account { ...AccountFields } position }
}";
pub const UNFREEZE_ACCOUNT: &str = "mutation($input: AccountStatusInput!) {
  unfreezeAccount(input: $input) { account { ...AccountFields } position }
}";
pub const CLOSE_ACCOUNT: &str = "mutation($input: AccountStatusInput!) {
  closeAccount(input: $input) { account { ...AccountFields } position }
}";
pub const ACCOUNT: &str = "query($id: UUID!) { account(id: $id) { ...AccountFields } }";

/// `Account` as a client reads it. Money fields are `String`s: a JSON number would not deserialise.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Account {
    pub id: Uuid,
    pub holder: String,
    pub currency: String,
    pub balance: String,
    pub overdraft_limit: String,
    pub status: String,
    pub version: i32,
    pub opened_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountPayload {
    pub account: Account,
    pub position: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MovementPayload {
    pub account: Account,
    pub event_id: Uuid,
    pub position: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferPayload {
    pub transfer_id: Uuid,
    pub from: Account,
    pub to: Account,
    pub position: String,
}

/// One GraphQL answer: HTTP status, headers and the JSON body.
#[derive(Debug)]
pub struct Gql {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Gql {
    /// `errors[0].extensions.code`, if the answer is an error.
    pub fn code(&self) -> Option<&str> {
        error_code(&self.body)
    }

    /// `errors[0].message`, or "" when there is none.
    pub fn message(&self) -> &str {
        self.body["errors"][0]["message"].as_str().unwrap_or("")
    }

    /// `data.<field>`, failing the test with the whole answer if the operation failed.
    pub fn data(&self, field: &str) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "HTTP status of {}", self.body);
        assert!(
            self.body.get("errors").is_none(),
            "expected {field} to succeed, got {}",
            self.body
        );
        let value = &self.body["data"][field];
        assert!(!value.is_null(), "no data.{field} in {}", self.body);
        value
    }

    /// `data.<field>` as `T`, failing the test if the operation failed or the shape differs.
    pub fn parse<T: DeserializeOwned>(&self, field: &str) -> T {
        let value = self.data(field).clone();
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("data.{field} has an unexpected shape ({e}): {value}"))
    }
}

/// `errors[0].extensions.code` of a GraphQL response body.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// A fresh idempotency key.
pub fn key() -> String {
    format!("key-{}", Uuid::new_v4())
}

/// A position as the number it encodes; fails unless it is a plain decimal string.
pub fn position(raw: &str) -> u64 {
    assert!(
        !raw.is_empty() && raw.chars().all(|c| c.is_ascii_digit()),
        "position {raw:?} is not a decimal string"
    );
    raw.parse().expect("a position fits in 64 bits")
}

/// Polls `probe` every [`POLL_INTERVAL`] until it answers `Some`, failing after [`POLL_DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let poll = Poll::start();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        poll.wait(what).await;
    }
}

/// A bounded wait: [`Poll::wait`] pauses for [`POLL_INTERVAL`], failing once [`POLL_DEADLINE`] has passed.
pub struct Poll {
    deadline: tokio::time::Instant,
}

impl Poll {
    pub fn start() -> Self {
        Self {
            deadline: tokio::time::Instant::now() + POLL_DEADLINE,
        }
    }

    pub async fn wait(&self, what: &str) {
        assert!(
            tokio::time::Instant::now() < self.deadline,
            "gave up waiting after {POLL_DEADLINE:?}: {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// What the database holds, to show that a refused request wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub events: i64,
    pub idempotency_keys: i64,
    pub snapshots: i64,
}

/// The platform, running on a random port against its own database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub client: reqwest::Client,
    /// A pool of the test's own on the app's database.
    pub pool: PgPool,
    pub keys: TokenKeys,
    pub settings: Settings,
    /// The name of the app's database.
    pub database_name: String,
    teller: String,
    supervisor: String,
    shutdown: watch::Sender<bool>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The platform with the settings every test starts from.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The platform with settings adjusted by `adjust`, e.g. `|s| s.accounts.append_retries_max = 1`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_service(&test_settings(adjust).await, Mode::All).await
}

impl TestApp {
    /// A token for `sub` with `roles`, signed with the app's secret.
    pub fn token(&self, sub: &str, roles: &[Role]) -> String {
        self.keys.mint(sub, roles, TOKEN_TTL).expect("mint a token")
    }

    /// A teller's token, for arranging a test.
    pub fn teller(&self) -> &str {
        &self.teller
    }

    /// A supervisor's token, for arranging a test.
    pub fn supervisor(&self) -> &str {
        &self.supervisor
    }

    /// A connection string for the app's database.
    pub fn database_url(&self) -> String {
        self.settings.database.url.expose_secret().to_string()
    }

    /// Connection options for the server's maintenance database (`postgres`).
    pub fn admin_options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.database_url())
            .expect("the test database URL parses")
            .database("postgres")
    }

    /// A connection of its own on the app's database, outside every pool.
    pub async fn connection(&self) -> PgConnection {
        PgConnection::connect(&self.database_url())
            .await
            .expect("connect to the test database")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// POSTs `body` to `/graphql` with `token` (if any) and extra `headers`.
    pub async fn post_graphql(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Gql {
        let mut request = self.client.post(self.url("/graphql")).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the platform answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a response body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}), HTTP {status}: {text}"));
        Gql {
            status,
            headers,
            body,
        }
    }

    /// Runs `query` with `variables`; the fragment `AccountFields` is available to it.
    pub async fn graphql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (StatusCode, Value) {
        let answer = self.execute(token, &[], query, variables).await;
        (answer.status, answer.body)
    }

    /// Like [`Self::graphql`], with extra headers and the whole answer.
    pub async fn execute(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        query: &str,
        variables: Value,
    ) -> Gql {
        let document = if query.contains("...AccountFields") {
            format!("{query}\nfragment AccountFields on Account {{ {ACCOUNT_FIELDS} }}")
        } else {
            query.to_string()
        };
        let body = json!({ "query": document, "variables": variables });
        self.post_graphql(token, headers, &body).await
    }

    async fn mutation(&self, token: &str, query: &str, input: Value) -> Gql {
        self.execute(Some(token), &[], query, json!({ "input": input }))
            .await
    }

    pub async fn open_account(&self, token: &str, input: Value) -> Gql {
        self.mutation(token, OPEN_ACCOUNT, input).await
    }

    pub async fn deposit(&self, token: &str, input: Value) -> Gql {
        self.mutation(token, DEPOSIT, input).await
    }

    pub async fn withdraw(&self, token: &str, input: Value) -> Gql {
        self.mutation(token, WITHDRAW, input).await
    }

    pub async fn transfer(&self, token: &str, input: Value) -> Gql {
        self.mutation(token, TRANSFER, input).await
    }

    pub async fn freeze_account(&self, token: &str, input: Value) -> Gql {
        self.mutation(token, FREEZE_ACCOUNT, input).await
    }

    pub async fn unfreeze_account(&self, token: &str, input: Value) -> Gql {
        self.mutation(token, UNFREEZE_ACCOUNT, input).await
    }

    pub async fn close_account(&self, token: &str, input: Value) -> Gql {
        self.mutation(token, CLOSE_ACCOUNT, input).await
    }

    pub async fn account(&self, token: &str, id: Uuid) -> Gql {
        self.execute(Some(token), &[], ACCOUNT, json!({ "id": id }))
            .await
    }

    /// Opens an account as a teller; `overdraft_limit` "0" means none.
    pub async fn open(&self, holder: &str, currency: &str, overdraft_limit: &str) -> Account {
        self.open_account(
            self.teller(),
            json!({
                "holder": holder,
                "currency": currency,
                "overdraftLimit": overdraft_limit,
                "idempotencyKey": key(),
            }),
        )
        .await
        .parse::<AccountPayload>("openAccount")
        .account
    }

    /// Opens a USD account without overdraft as a teller.
    pub async fn open_usd(&self, holder: &str) -> Account {
        self.open(holder, "USD", "0").await
    }

    /// Deposits `amount` as a teller.
    pub async fn deposited(&self, account_id: Uuid, amount: &str) -> MovementPayload {
        self.deposit(
            self.teller(),
            json!({ "accountId": account_id, "amount": amount, "idempotencyKey": key() }),
        )
        .await
        .parse("deposit")
    }

    /// Freezes as a supervisor.
    pub async fn frozen(&self, account_id: Uuid) -> AccountPayload {
        self.freeze_account(
            self.supervisor(),
            json!({ "accountId": account_id, "reason": "fraud review", "idempotencyKey": key() }),
        )
        .await
        .parse("freezeAccount")
    }

    /// Closes as a supervisor.
    pub async fn closed(&self, account_id: Uuid) -> AccountPayload {
        self.close_account(
            self.supervisor(),
            json!({ "accountId": account_id, "reason": "customer request", "idempotencyKey": key() }),
        )
        .await
        .parse("closeAccount")
    }

    /// The account as `account(id)` answers it to a teller (`None` when null).
    pub async fn read_account(&self, id: Uuid) -> Option<Account> {
        let answer = self.account(self.teller(), id).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(answer.body.get("errors").is_none(), "{}", answer.body);
        serde_json::from_value(answer.body["data"]["account"].clone())
            .unwrap_or_else(|e| panic!("account has an unexpected shape ({e}): {}", answer.body))
    }

    /// Rows in the tables a command writes.
    pub async fn written(&self) -> Written {
        let (events, idempotency_keys, snapshots): (i64, i64, i64) = sqlx::query_as(
            "select (select count(*) from accounts.events),
                    (select count(*) from accounts.idempotency_keys),
                    (select count(*) from accounts.snapshots)",
        )
        .fetch_one(&self.pool)
        .await
        .expect("count written rows");
        Written {
            events,
            idempotency_keys,
            snapshots,
        }
    }

    pub async fn event_count(&self) -> i64 {
        self.written().await.events
    }

    /// Sends `request` and checks that it is refused with `code`, that the message names
    /// `field`, and that nothing was written. Returns the refusal.
    pub async fn assert_refused(
        &self,
        request: impl Future<Output = Gql>,
        code: &str,
        field: &str,
    ) -> Gql {
        let before = self.written().await;
        let answer = request.await;
        assert_eq!(
            answer.code(),
            Some(code),
            "expected {code}, got {}",
            answer.body
        );
        assert_message_names(&answer, field);
        if !matches!(code, "FORBIDDEN" | "UNAUTHENTICATED") {
            let path = if field.contains('.') {
                field.to_string()
            } else {
                format!("input.{field}")
            };
            assert_eq!(
                answer.body["errors"][0]["extensions"]["field"],
                json!(path),
                "extensions.field names the input: {}",
                answer.body
            );
        }
        assert!(
            answer.body["data"].is_null()
                || answer.body["data"]
                    .as_object()
                    .is_some_and(|data| data.values().all(Value::is_null)),
            "a refused operation returns no data: {}",
            answer.body
        );
        assert_eq!(self.written().await, before, "a refused request wrote rows");
        answer
    }

    /// A hand-made HS256 token for `claims`, signed with `secret` (HMAC-SHA-256 computed with
    /// PostgreSQL's `sha256`), for tokens [`TokenKeys::mint`] cannot make, such as expired ones.
    pub async fn forge_token(&self, claims: &Value, secret: &[u8]) -> String {
        let header = base64url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = base64url(claims.to_string().as_bytes());
        let signing_input = format!("{header}.{payload}");
        let signature = hmac_sha256(&self.pool, secret, signing_input.as_bytes()).await;
        format!("{signing_input}.{}", base64url(&signature))
    }
}

/// Fails unless the answer's message names `field`.
pub fn assert_message_names(answer: &Gql, field: &str) {
    assert!(
        answer.message().contains(field),
        "the message should name {field:?}: {}",
        answer.body
    );
}

/// The current time in seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// HMAC-SHA-256 (RFC 2104) with the digest computed by PostgreSQL.
async fn hmac_sha256(pool: &PgPool, secret: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK_BYTES: usize = 64;
    assert!(secret.len() <= BLOCK_BYTES, "test secrets fit in one block");
    let mut block = secret.to_vec();
    block.resize(BLOCK_BYTES, 0);
    let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    sqlx::query_scalar("select sha256($2 || sha256($1 || $3))")
        .bind(inner_pad)
        .bind(outer_pad)
        .bind(message.to_vec())
        .fetch_one(pool)
        .await
        .expect("compute an HMAC")
}

/// Base64url without padding (RFC 4648 section 5), as JWTs use it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        let symbols = chunk.len() + 1;
        for i in 0..symbols {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[test]
fn base64url_matches_rfc_4648_vectors() {
    assert_eq!(base64url(b""), "");
    assert_eq!(base64url(b"f"), "Zg");
    assert_eq!(base64url(b"fo"), "Zm8");
    assert_eq!(base64url(b"foo"), "Zm9v");
    assert_eq!(base64url(b"foob"), "Zm9vYg");
    assert_eq!(base64url(b"fooba"), "Zm9vYmE");
    assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}

pub const BALANCE_AS_OF: &str = "query($accountId: UUID!, $asOf: DateTime!, $atLeast: String) {
  balanceAsOf(accountId: $accountId, asOf: $asOf, atLeast: $atLeast) {
    accountId holder currency balance asOf version lastChangeAt
  }
}";
pub const BALANCES_AS_OF: &str =
    "query($asOf: DateTime!, $currency: String, $first: Int, $after: String, $atLeast: String) {
  balancesAsOf(asOf: $asOf, currency: $currency, first: $first, after: $after, atLeast: $atLeast) {
    totals { currency total accounts }
    edges { cursor node { accountId holder currency balance asOf version lastChangeAt } }
    pageInfo { hasNextPage endCursor }
  }
}";
pub const STATEMENT: &str = "query($accountId: UUID!, $from: DateTime!, $to: DateTime!, $first: Int, $after: String, $atLeast: String) {
  statement(accountId: $accountId, from: $from, to: $to, first: $first, after: $after, atLeast: $atLeast) {
    accountId currency from to openingBalance closingBalance totalCredits totalDebits entryCount
    entries {
      edges { cursor node {
        eventId recordedAt kind amount balanceAfter reference transferId counterpartyAccountId
        version position
      } }
      pageInfo { hasNextPage endCursor }
    }
  }
}";
pub const AUDIT_TRAIL: &str =
    "query($filter: AuditFilter!, $first: Int, $after: String, $atLeast: String) {
  auditTrail(filter: $filter, first: $first, after: $after, atLeast: $atLeast) {
    edges { cursor node {
      position eventId eventType eventVersion accountId streamVersion recordedAt actor roles
      correlationId causationId commandType idempotencyKey clientAddr payload hash previousHash
    } }
    pageInfo { hasNextPage endCursor }
  }
}";
pub const ACCESS_LOG: &str = "query($filter: AccessLogFilter, $first: Int, $after: String) {
  accessLog(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id accessedAt actor roles query arguments correlationId clientAddr
                          outcome refusalCode refusalReason } }
    pageInfo { hasNextPage endCursor }
  }
}";
pub const PROJECTION_STATUS: &str = "query($atLeast: String) {
  projectionStatus(atLeast: $atLeast) {
    position lagEvents updatedAt appliedEvents streamSequence integrityAlerts haltedAccounts
  }
}";
pub const AUDIT_PROOF: &str = "query($eventId: UUID!) {
  auditProof(eventId: $eventId) {
    eventId position hash links
    checkpoint { sequence position eventCount digest signedAt keyId }
    document
  }
}";
pub const VERIFY_INTEGRITY: &str = "query($accountId: UUID) {
  verifyIntegrity(accountId: $accountId) {
    ok streamsChecked eventsChecked checkpointsChecked truncated
    problems { kind accountId streamVersion position detail }
    problemsNotListed
  }
}";

/// Relay paging, as every reporting connection answers it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge<T> {
    pub cursor: String,
    pub node: T,
}

/// A page of a Relay connection.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Page<T> {
    pub edges: Vec<Edge<T>>,
    pub page_info: PageInfo,
}

impl<T> Page<T> {
    pub fn nodes(self) -> Vec<T> {
        self.edges.into_iter().map(|edge| edge.node).collect()
    }
}

/// `HistoricalBalance` as a client reads it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoricalBalance {
    pub account_id: Uuid,
    pub holder: String,
    pub currency: String,
    pub balance: String,
    pub as_of: String,
    pub version: i64,
    pub last_change_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CurrencyTotal {
    pub currency: String,
    pub total: String,
    pub accounts: i64,
}

/// `balancesAsOf`: a page of balances and the totals over every matching account.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BalancesAsOf {
    pub totals: Vec<CurrencyTotal>,
    pub edges: Vec<Edge<HistoricalBalance>>,
    pub page_info: PageInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatementEntry {
    pub event_id: Uuid,
    pub recorded_at: String,
    pub kind: String,
    pub amount: String,
    pub balance_after: String,
    pub reference: Option<String>,
    pub transfer_id: Option<Uuid>,
    pub counterparty_account_id: Option<Uuid>,
    pub version: i64,
    pub position: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Statement {
    pub account_id: Uuid,
    pub currency: String,
    pub from: String,
    pub to: String,
    pub opening_balance: String,
    pub closing_balance: String,
    pub total_credits: String,
    pub total_debits: String,
    pub entry_count: i64,
    pub entries: Page<StatementEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditEntry {
    pub position: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: i32,
    pub account_id: Uuid,
    pub stream_version: i64,
    pub recorded_at: String,
    pub actor: String,
    pub roles: Vec<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub command_type: Option<String>,
    pub idempotency_key: Option<String>,
    pub client_addr: Option<String>,
    pub payload: Value,
    pub hash: String,
    pub previous_hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogEntry {
    pub id: String,
    pub accessed_at: String,
    pub actor: String,
    pub roles: Vec<String>,
    pub query: String,
    pub arguments: Value,
    pub correlation_id: Option<String>,
    pub client_addr: Option<String>,
    pub outcome: String,
    pub refusal_code: Option<String>,
    pub refusal_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectionStatus {
    pub position: String,
    pub lag_events: Option<i64>,
    pub updated_at: Option<String>,
    pub applied_events: i64,
    pub stream_sequence: String,
    pub integrity_alerts: i64,
    pub halted_accounts: Vec<Uuid>,
}

/// The settings [`spawn_app_with`] starts from, on a fresh database and fresh JetStream
/// names, adjusted by `adjust`; for starting the services one by one with [`spawn_service`].
pub async fn test_settings(adjust: impl FnOnce(&mut Settings)) -> Settings {
    let mut settings = Settings {
        database: testing::fresh_database().await,
        nats: testing::fresh_nats().await,
        auth: testing::auth(),
        http_addr: "127.0.0.1:0".parse().expect("a socket address"),
        accounts: AccountsOptions {
            // Tests that wait for expiries need not wait long.
            hold_sweep_interval: std::time::Duration::from_secs(1),
            ..AccountsOptions::default()
        },
        reporting: ReportingOptions {
            at_least_wait: reporting::state::AT_LEAST_WAIT_DEFAULT,
        },
        integrity: IntegritySettings::with_key(ed25519_dalek::SigningKey::from_bytes(
            &TEST_SIGNING_SEED,
        )),
        migrate: true,
    };
    adjust(&mut settings);
    settings
}

/// One process running `mode` with `settings` on a port of its own: e.g. the accounts
/// service alone (`folio accounts`) beside the reporting service alone (`folio reporting`).
pub async fn spawn_service(settings: &Settings, mode: Mode) -> TestApp {
    let application = Application::build(settings, mode)
        .await
        .unwrap_or_else(|e| panic!("the {mode:?} service builds: {e:#}"));
    let port = application.local_addr().expect("a bound address").port();
    let shutdown = application.shutdown_handle();
    tokio::spawn(application.run_until_stopped());

    let url = settings.database.url.expose_secret().to_string();
    let database_name = PgConnectOptions::from_str(&url)
        .expect("the test database URL parses")
        .get_database()
        .expect("the test database URL names a database")
        .to_string();
    let pool = PgPoolOptions::new()
        .max_connections(TEST_POOL_SIZE_MAX)
        .connect(&url)
        .await
        .expect("connect to the test database");
    let keys = TokenKeys::new(&settings.auth.jwt_secret);
    let teller = keys
        .mint("teller-tess", &[Role::Teller], TOKEN_TTL)
        .expect("mint a teller token");
    let supervisor = keys
        .mint("supervisor-sam", &[Role::Supervisor], TOKEN_TTL)
        .expect("mint a supervisor token");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
        pool,
        keys,
        settings: settings.clone(),
        database_name,
        teller,
        supervisor,
        shutdown,
    }
}

/// The subject of [`TestApp::auditor`]'s tokens.
pub const AUDITOR_SUB: &str = "auditor-aud";

impl TestApp {
    /// An auditor's token (subject [`AUDITOR_SUB`]), for reading reports.
    pub fn auditor(&self) -> String {
        self.token(AUDITOR_SUB, &[Role::Auditor])
    }

    pub async fn balance_as_of(&self, token: &str, variables: Value) -> Gql {
        self.execute(Some(token), &[], BALANCE_AS_OF, variables)
            .await
    }

    pub async fn balances_as_of(&self, token: &str, variables: Value) -> Gql {
        self.execute(Some(token), &[], BALANCES_AS_OF, variables)
            .await
    }

    pub async fn statement(&self, token: &str, variables: Value) -> Gql {
        self.execute(Some(token), &[], STATEMENT, variables).await
    }

    pub async fn audit_trail(&self, token: &str, variables: Value) -> Gql {
        self.execute(Some(token), &[], AUDIT_TRAIL, variables).await
    }

    pub async fn access_log(&self, token: &str, variables: Value) -> Gql {
        self.execute(Some(token), &[], ACCESS_LOG, variables).await
    }

    pub async fn projection_status(&self, token: &str, variables: Value) -> Gql {
        self.execute(Some(token), &[], PROJECTION_STATUS, variables)
            .await
    }

    pub async fn audit_proof(&self, token: &str, event_id: Uuid) -> Gql {
        self.execute(
            Some(token),
            &[],
            AUDIT_PROOF,
            json!({ "eventId": event_id }),
        )
        .await
    }

    pub async fn verify_integrity(&self, token: &str, variables: Value) -> Gql {
        self.execute(Some(token), &[], VERIFY_INTEGRITY, variables)
            .await
    }

    /// `balanceAsOf` as a teller once the projection has applied `at_least`.
    pub async fn balance_at(
        &self,
        account_id: Uuid,
        as_of: &str,
        at_least: &str,
    ) -> Option<HistoricalBalance> {
        let answer = self
            .balance_as_of(
                self.teller(),
                json!({ "accountId": account_id, "asOf": as_of, "atLeast": at_least }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(answer.body.get("errors").is_none(), "{}", answer.body);
        serde_json::from_value(answer.body["data"]["balanceAsOf"].clone()).unwrap_or_else(|e| {
            panic!("balanceAsOf has an unexpected shape ({e}): {}", answer.body)
        })
    }

    /// Every audit-trail entry matching `filter`, read with `token` page by page (`first`
    /// per page) once the projection has applied `at_least`; fails if a page repeats a position.
    pub async fn whole_audit_trail(
        &self,
        token: &str,
        filter: Value,
        first: i32,
        at_least: &str,
    ) -> Vec<AuditEntry> {
        let mut entries: Vec<AuditEntry> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page: Page<AuditEntry> = self
                .audit_trail(
                    token,
                    json!({ "filter": filter, "first": first, "after": after, "atLeast": at_least }),
                )
                .await
                .parse("auditTrail");
            assert!(
                page.edges.len() <= usize::try_from(first).unwrap_or(0),
                "a page holds at most first={first} entries: {page:?}"
            );
            let last_cursor = page.edges.last().map(|edge| edge.cursor.clone());
            assert_eq!(
                page.page_info.end_cursor, last_cursor,
                "endCursor is the last edge's cursor"
            );
            let has_next_page = page.page_info.has_next_page;
            for entry in page.nodes() {
                assert!(
                    entries.iter().all(|seen| seen.position != entry.position),
                    "position {} came twice",
                    entry.position
                );
                entries.push(entry);
            }
            if !has_next_page {
                return entries;
            }
            after = Some(last_cursor.expect("a page with a next page has edges"));
        }
    }
}
