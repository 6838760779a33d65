//! The reporting GraphQL schema end to end over real PostgreSQL (and NATS for the lag):
//! the contract's shapes, pagination by cursor, roles, `atLeast`, error codes and the
//! access log every recorded query writes before it answers.

mod support;

use std::collections::BTreeSet;

use ledger::RecordedEvent;
use platform::Role;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::{CLIENT_ADDR, LONG_AT_LEAST_WAIT, TestApi, at, codes, distinct, ledger, only_error};
use uuid::Uuid;

const BALANCE_AS_OF: &str = "query($id: UUID!, $asOf: DateTime!, $atLeast: String) {
  balanceAsOf(accountId: $id, asOf: $asOf, atLeast: $atLeast) {
    accountId currency balance asOf version lastChangeAt
  }
}";
const BALANCES_AS_OF: &str =
    "query($asOf: DateTime!, $currency: String, $first: Int, $after: String) {
  balancesAsOf(asOf: $asOf, currency: $currency, first: $first, after: $after) {
    edges { cursor node { accountId currency balance version } }
    pageInfo { hasNextPage endCursor }
    totals { currency total accounts }
  }
}";
const STATEMENT: &str = "query($id: UUID!, $from: DateTime!, $to: DateTime!, $first: Int, $after: String) {
  statement(accountId: $id, from: $from, to: $to, first: $first, after: $after) {
    accountId currency from to openingBalance closingBalance totalCredits totalDebits
    entries {
      edges { cursor node { eventId recordedAt kind amount balanceAfter reference transferId counterpartyAccountId } }
      pageInfo { hasNextPage endCursor }
    }
  }
}";
const AUDIT_TRAIL: &str = "query($filter: AuditFilter!, $first: Int, $after: String) {
  auditTrail(filter: $filter, first: $first, after: $after) {
    edges { cursor node {
      position eventId eventType eventVersion accountId streamVersion recordedAt actor
      correlationId causationId idempotencyKey payload hash previousHash
    } }
    pageInfo { hasNextPage endCursor }
  }
}";
const PROJECTION_STATUS: &str = "{ projectionStatus {
  position lagEvents updatedAt appliedEvents streamSequence integrityAlerts haltedAccounts
} }";
const ACCESS_LOG: &str = "query($filter: AccessLogFilter, $first: Int, $after: String) {
  accessLog(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id accessedAt actor roles query arguments correlationId clientAddr } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// One row of `reporting.access_log`.
#[derive(sqlx::FromRow)]
struct AccessRow {
    actor: String,
    roles: Vec<String>,
    query: String,
    arguments: Value,
    correlation_id: Option<String>,
    client_addr: Option<String>,
}

/// Two USD accounts with a deposit, a transfer and a withdrawal; returns the accounts and events.
async fn seeded(api: &TestApi) -> (Uuid, Uuid, Vec<RecordedEvent>) {
    let mut ledger = ledger();
    let (a, opened_a) = ledger.open("USD", at(9, 0, 0));
    let (b, opened_b) = ledger.open("USD", at(9, 0, 0));
    let deposited = ledger.deposit(a, "100", at(10, 0, 0));
    let (debit, credit) = ledger.transfer(a, b, "30.50", at(11, 0, 0));
    let withdrawn = ledger.withdraw(b, "0.50", at(12, 0, 0));
    let events = vec![opened_a, opened_b, deposited, debit, credit, withdrawn];
    api.db.apply(events.clone()).await;
    (a.as_uuid(), b.as_uuid(), events)
}

#[tokio::test]
async fn balance_as_of_answers_the_contract_shape_and_null_before_opening() {
    let api = TestApi::new().await;
    let (a, _, _) = seeded(&api).await;
    let data = api
        .data(
            BALANCE_AS_OF,
            json!({ "id": a, "asOf": "2026-03-02T11:00:00Z" }),
        )
        .await;
    assert_eq!(
        data["balanceAsOf"],
        json!({
            "accountId": a.to_string(), "currency": "USD", "balance": "69.50",
            "asOf": "2026-03-02T11:00:00Z", "version": 3, "lastChangeAt": "2026-03-02T11:00:00Z",
        })
    );
    let before = api
        .data(
            BALANCE_AS_OF,
            json!({ "id": a, "asOf": "2026-03-02T08:59:59Z" }),
        )
        .await;
    assert_eq!(before["balanceAsOf"], Value::Null);
}

#[tokio::test]
async fn balances_as_of_follows_cursors_to_every_account_with_totals() {
    let api = TestApi::new().await;
    let mut ledger = ledger();
    let mut events = Vec::new();
    let mut expected_total = Decimal::ZERO;
    for n in 0..7u32 {
        let (id, opened) = ledger.open("USD", at(9, n, 0));
        events.push(opened);
        events.push(ledger.deposit(id, &format!("{}.25", n + 1), at(10, n, 0)));
        expected_total += ledger.balance(id);
    }
    api.db.apply(events).await;

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = api
            .data(
                BALANCES_AS_OF,
                json!({ "asOf": "2026-03-02T23:00:00Z", "first": 3, "after": after }),
            )
            .await;
        let connection = &data["balancesAsOf"];
        assert_eq!(
            connection["totals"],
            json!([{ "currency": "USD", "total": expected_total.to_string(), "accounts": 7 }]),
            "totals over all accounts on every page"
        );
        let edges = connection["edges"].as_array().expect("edges");
        assert!(edges.len() <= 3);
        for edge in edges {
            seen.push(edge["node"]["accountId"].as_str().expect("id").to_string());
        }
        let page_info = &connection["pageInfo"];
        assert_eq!(
            page_info["endCursor"],
            edges.last().map_or(Value::Null, |e| e["cursor"].clone())
        );
        if page_info["hasNextPage"] == json!(false) {
            break;
        }
        after = page_info["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 7);
    distinct(&seen);
    assert_eq!(
        expected_total.to_string(),
        "29.75",
        "1.25 + 2.25 + ... + 7.25"
    );
}

#[tokio::test]
async fn statement_over_graphql_has_signed_amounts_kinds_and_exact_pages() {
    let api = TestApi::new().await;
    let (a, b, events) = seeded(&api).await;
    let mut entries = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = api
            .data(
                STATEMENT,
                json!({ "id": a, "from": "2026-03-02T00:00:00Z", "to": "2026-03-02T23:59:59Z", "first": 1, "after": after }),
            )
            .await;
        let statement = &data["statement"];
        assert_eq!(statement["openingBalance"], json!("0.00"));
        assert_eq!(statement["closingBalance"], json!("69.50"));
        assert_eq!(statement["totalCredits"], json!("100.00"));
        assert_eq!(statement["totalDebits"], json!("30.50"));
        for edge in statement["entries"]["edges"].as_array().expect("edges") {
            entries.push(edge["node"].clone());
        }
        let page_info = &statement["entries"]["pageInfo"];
        if page_info["hasNextPage"] == json!(false) {
            break;
        }
        after = page_info["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0]["eventId"],
        json!(events[2].event_id.as_uuid().to_string())
    );
    assert_eq!(entries[0]["kind"], json!("DEPOSIT"));
    assert_eq!(entries[0]["amount"], json!("100.00"));
    assert_eq!(entries[0]["transferId"], Value::Null);
    assert_eq!(entries[1]["kind"], json!("TRANSFER_OUT"));
    assert_eq!(entries[1]["amount"], json!("-30.50"));
    assert_eq!(entries[1]["balanceAfter"], json!("69.50"));
    assert_eq!(entries[1]["counterpartyAccountId"], json!(b.to_string()));
    assert_eq!(entries[1]["reference"], json!("test transfer"));
}

#[tokio::test]
async fn audit_trail_over_graphql_shows_metadata_payload_and_hex_hashes() {
    let api = TestApi::new().await;
    let (_, b, events) = seeded(&api).await;
    let data = api
        .data(
            AUDIT_TRAIL,
            json!({ "filter": { "accountId": b, "eventTypes": ["TransferCredited", "MoneyWithdrawn"] } }),
        )
        .await;
    let edges = data["auditTrail"]["edges"].as_array().expect("edges");
    let credit = &events[4];
    assert_eq!(edges.len(), 2);
    let node = &edges[0]["node"];
    assert_eq!(node["position"], json!(credit.position.to_string()));
    assert_eq!(node["eventType"], json!("TransferCredited"));
    assert_eq!(node["eventVersion"], json!(credit.event_version));
    assert_eq!(node["streamVersion"], json!(2));
    assert_eq!(node["actor"], json!("teller-1"));
    assert_eq!(node["correlationId"], credit.metadata["correlationId"]);
    assert_eq!(node["idempotencyKey"], credit.metadata["idempotencyKey"]);
    assert_eq!(node["payload"], credit.payload);
    assert_eq!(node["hash"], json!(credit.hash.to_hex()));
    assert_eq!(
        node["previousHash"],
        json!(credit.prev_hash.map(|h| h.to_hex()))
    );
    assert_eq!(edges[1]["node"]["eventType"], json!("MoneyWithdrawn"));
}

#[tokio::test]
async fn every_recorded_query_writes_one_access_log_row_before_answering() {
    let api = TestApi::new().await;
    let (a, _, _) = seeded(&api).await;
    let asked = [
        (
            BALANCE_AS_OF,
            json!({ "id": a, "asOf": "2026-03-02T11:00:00Z", "atLeast": "3" }),
            "balanceAsOf",
        ),
        (
            BALANCES_AS_OF,
            json!({ "asOf": "2026-03-02T11:00:00Z", "currency": "usd" }),
            "balancesAsOf",
        ),
        (
            STATEMENT,
            json!({ "id": a, "from": "2026-03-02T00:00:00Z", "to": "2026-03-02T23:00:00Z" }),
            "statement",
        ),
        (
            AUDIT_TRAIL,
            json!({ "filter": { "actor": "teller-1" } }),
            "auditTrail",
        ),
        (ACCESS_LOG, json!({}), "accessLog"),
        (PROJECTION_STATUS, json!({}), "not recorded"),
    ];
    for (query, variables, _) in &asked {
        api.data(query, variables.clone()).await;
    }

    let rows: Vec<AccessRow> = sqlx::query_as(
        "select actor, roles, query, arguments, correlation_id, client_addr
         from reporting.access_log order by id",
    )
    .fetch_all(&api.db.pool)
    .await
    .expect("access log");
    let names: Vec<&str> = rows.iter().map(|r| r.query.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "balanceAsOf",
            "balancesAsOf",
            "statement",
            "auditTrail",
            "accessLog"
        ]
    );
    for row in &rows {
        assert_eq!(row.actor, "audrey");
        assert_eq!(row.roles, vec!["auditor".to_string()]);
        assert_eq!(row.correlation_id.as_deref(), Some("corr-audrey"));
        assert_eq!(row.client_addr.as_deref(), Some(CLIENT_ADDR));
    }
    assert_eq!(rows[0].arguments["accountId"], json!(a.to_string()));
    assert_eq!(rows[0].arguments["atLeast"], json!("3"));
    assert_eq!(rows[1].arguments["currency"], json!("USD"));
    assert_eq!(rows[3].arguments["filter"]["actor"], json!("teller-1"));

    // The access log shows itself, newest first; the accessLog query saw its own row.
    let data = api
        .data(ACCESS_LOG, json!({ "filter": { "query": "statement" } }))
        .await;
    let edges = data["accessLog"]["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 1);
    assert_eq!(
        edges[0]["node"]["arguments"]["accountId"],
        json!(a.to_string())
    );
    let newest = api.data(ACCESS_LOG, json!({ "first": 2 })).await;
    let queries: Vec<&str> = newest["accessLog"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["query"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(queries, vec!["accessLog", "accessLog"], "newest first");
}

#[tokio::test]
async fn access_log_pages_newest_first_without_repeats() {
    let api = TestApi::new().await;
    let (a, _, _) = seeded(&api).await;
    for _ in 0..5 {
        api.data(
            BALANCE_AS_OF,
            json!({ "id": a, "asOf": "2026-03-02T11:00:00Z" }),
        )
        .await;
    }
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = api
            .data(ACCESS_LOG, json!({ "filter": { "query": "balanceAsOf", "actor": "audrey" }, "first": 2, "after": after }))
            .await;
        for edge in data["accessLog"]["edges"].as_array().expect("edges") {
            ids.push(
                edge["node"]["id"]
                    .as_str()
                    .expect("id")
                    .parse::<i64>()
                    .expect("numeric id"),
            );
        }
        let page_info = &data["accessLog"]["pageInfo"];
        if page_info["hasNextPage"] == json!(false) {
            break;
        }
        after = page_info["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(ids.len(), 5);
    distinct(&ids);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let indexed: i64 = sqlx::query_scalar(
        "select count(*) from pg_indexes where schemaname = 'reporting' and indexname = 'access_log_query'",
    )
    .fetch_one(&api.db.pool)
    .await
    .expect("indexes");
    assert_eq!(indexed, 1, "the access log is indexed by query name");
}

#[tokio::test]
async fn a_query_whose_access_cannot_be_recorded_is_refused() {
    let api = TestApi::new().await;
    let (a, _, _) = seeded(&api).await;
    sqlx::raw_sql(
        "create function reporting.refuse_access() returns trigger language plpgsql as
             $$ begin raise exception 'access log is read-only'; end $$;
         create trigger refuse_access before insert on reporting.access_log
             for each row execute function reporting.refuse_access();",
    )
    .execute(&api.db.pool)
    .await
    .expect("make the access log refuse rows");

    let response = api
        .run(
            "audrey",
            &[Role::Auditor],
            STATEMENT,
            json!({ "id": a, "from": "2026-03-02T00:00:00Z", "to": "2026-03-02T23:00:00Z" }),
        )
        .await;
    let (code, message) = only_error(&response);
    assert_eq!(code, "INTERNAL");
    assert_eq!(message, "internal error", "no details leak");
    assert_eq!(
        response.data.into_json().expect("json"),
        Value::Null,
        "no data without a record"
    );
}

#[tokio::test]
async fn at_least_a_position_not_yet_projected_is_a_stale_read_and_an_applied_one_answers() {
    let api = TestApi::new().await;
    let (a, _, events) = seeded(&api).await;
    let last = events.last().expect("events").position;

    let applied = api
        .data(
            BALANCE_AS_OF,
            json!({ "id": a, "asOf": "2026-03-02T23:00:00Z", "atLeast": last.to_string() }),
        )
        .await;
    assert_eq!(applied["balanceAsOf"]["balance"], json!("69.50"));

    let missing = (last + 1).to_string();
    let response = api
        .run(
            "audrey",
            &[Role::Auditor],
            BALANCE_AS_OF,
            json!({ "id": a, "asOf": "2026-03-02T23:00:00Z", "atLeast": missing }),
        )
        .await;
    let (code, message) = only_error(&response);
    assert_eq!(code, "STALE_READ");
    assert!(
        message.contains(&format!("position {}", last + 1)),
        "{message}"
    );
    assert!(
        message.contains(&format!("watermark is at position {last}")),
        "{message}"
    );

    for query in [BALANCES_AS_OF, STATEMENT, AUDIT_TRAIL] {
        let variables = json!({
            "id": a, "asOf": "2026-03-02T23:00:00Z", "from": "2026-03-02T00:00:00Z", "to": "2026-03-02T23:00:00Z",
            "filter": {},
        });
        let with_at_least = query
            .replacen("$after: String)", "$after: String, $atLeast: String)", 1)
            .replacen("after: $after)", "after: $after, atLeast: $atLeast)", 1);
        let mut variables = variables;
        variables["atLeast"] = json!((last + 1).to_string());
        let response = api
            .run("audrey", &[Role::Auditor], &with_at_least, variables)
            .await;
        assert_eq!(codes(&response), vec!["STALE_READ"], "{query}");
    }
    let status = api
        .run(
            "audrey",
            &[Role::Auditor],
            "query($p: String) { projectionStatus(atLeast: $p) { position } }",
            json!({ "p": (last + 1).to_string() }),
        )
        .await;
    assert_eq!(codes(&status), vec!["STALE_READ"]);
}

#[tokio::test]
async fn at_least_waits_until_the_projection_applies_the_position() {
    let api = TestApi::with_wait(LONG_AT_LEAST_WAIT).await;
    let mut ledger = ledger();
    let (id, opened) = ledger.open("USD", at(9, 0, 0));
    api.db.apply([opened]).await;
    let deposited = ledger.deposit(id, "12.34", at(9, 30, 0));
    let position = deposited.position.to_string();

    let schema = api.schema.clone();
    let variables =
        json!({ "id": id.as_uuid(), "asOf": "2026-03-02T23:00:00Z", "atLeast": position });
    let waiting = tokio::spawn(async move {
        schema
            .execute(
                async_graphql::Request::new(BALANCE_AS_OF)
                    .variables(async_graphql::Variables::from_json(variables))
                    .data(support::context("audrey", &[Role::Auditor], "corr-wait")),
            )
            .await
    });
    api.db.apply([deposited]).await;
    let response = waiting.await.expect("the waiting query");
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let data = response.data.into_json().expect("json");
    assert_eq!(
        data["balanceAsOf"]["balance"],
        json!("12.34"),
        "the answer reflects the awaited position"
    );
}

#[tokio::test]
async fn malformed_arguments_are_validation_errors_naming_the_field() {
    let api = TestApi::new().await;
    let (a, _, _) = seeded(&api).await;
    let day = json!({ "id": a, "from": "2026-03-02T00:00:00Z", "to": "2026-03-02T23:00:00Z" });
    let with = |extra: Value| {
        let mut variables = day.clone();
        for (k, v) in extra.as_object().expect("object") {
            variables[k] = v.clone();
        }
        variables
    };
    let cases = [
        (
            BALANCE_AS_OF,
            json!({ "id": a, "asOf": "2026-03-02T11:00:00Z", "atLeast": "soon" }),
            "VALIDATION",
            "atLeast: ",
        ),
        (
            BALANCES_AS_OF,
            json!({ "asOf": "2026-03-02T11:00:00Z", "currency": "XYZ" }),
            "VALIDATION",
            "currency: ",
        ),
        (
            BALANCES_AS_OF,
            json!({ "asOf": "2026-03-02T11:00:00Z", "after": "bm90IGEgY3Vyc29y" }),
            "VALIDATION",
            "after: ",
        ),
        (
            BALANCES_AS_OF,
            json!({ "asOf": "2026-03-02T11:00:00Z", "first": -1 }),
            "VALIDATION",
            "first: ",
        ),
        (
            STATEMENT,
            with(json!({ "from": "2026-03-03T00:00:00Z" })),
            "VALIDATION",
            "from: ",
        ),
        (
            STATEMENT,
            with(json!({ "id": Uuid::new_v4() })),
            "ACCOUNT_NOT_FOUND",
            "accountId: ",
        ),
        (
            STATEMENT,
            with(json!({ "after": "%%%" })),
            "VALIDATION",
            "after: ",
        ),
        (
            AUDIT_TRAIL,
            json!({ "filter": { "eventTypes": ["MoneyPrinted"] } }),
            "VALIDATION",
            "filter.eventTypes: ",
        ),
        (
            AUDIT_TRAIL,
            json!({ "filter": { "eventTypes": [] } }),
            "VALIDATION",
            "filter.eventTypes: ",
        ),
        (
            AUDIT_TRAIL,
            json!({ "filter": { "from": "2026-03-03T00:00:00Z", "to": "2026-03-02T00:00:00Z" } }),
            "VALIDATION",
            "filter.from: ",
        ),
        (
            ACCESS_LOG,
            json!({ "filter": { "actor": "" } }),
            "VALIDATION",
            "filter.actor: ",
        ),
    ];
    for (query, variables, expected_code, prefix) in cases {
        let response = api
            .run("audrey", &[Role::Auditor], query, variables.clone())
            .await;
        let (code, message) = only_error(&response);
        assert_eq!(code, expected_code, "{variables}: {message}");
        assert!(message.starts_with(prefix), "{variables}: {message}");
    }
    // A cursor of one list is not accepted by another.
    let balances = api
        .data(
            BALANCES_AS_OF,
            json!({ "asOf": "2026-03-02T11:00:00Z", "first": 1 }),
        )
        .await;
    let foreign = balances["balancesAsOf"]["pageInfo"]["endCursor"].clone();
    let response = api
        .run(
            "audrey",
            &[Role::Auditor],
            AUDIT_TRAIL,
            json!({ "filter": {}, "after": foreign }),
        )
        .await;
    let (code, message) = only_error(&response);
    assert_eq!(
        (code.as_str(), message.starts_with("after: ")),
        ("VALIDATION", true),
        "{message}"
    );
    // Arguments refused before reading record nothing; asking for an unknown account's
    // statement is an access (it reads) and is recorded like any other.
    let recorded: Vec<String> = sqlx::query_scalar(
        "select query from reporting.access_log where query <> 'balancesAsOf' order by id",
    )
    .fetch_all(&api.db.pool)
    .await
    .expect("access log");
    assert_eq!(recorded, vec!["statement".to_string()]);
}

#[tokio::test]
async fn reports_need_a_reporting_role_and_the_access_log_needs_auditor() {
    let api = TestApi::new().await;
    let (a, _, _) = seeded(&api).await;
    let day = json!({
        "id": a, "asOf": "2026-03-02T11:00:00Z", "from": "2026-03-02T00:00:00Z", "to": "2026-03-02T23:00:00Z",
        "filter": {},
    });
    let all = [
        BALANCE_AS_OF,
        BALANCES_AS_OF,
        STATEMENT,
        AUDIT_TRAIL,
        PROJECTION_STATUS,
        ACCESS_LOG,
    ];
    for query in all {
        let response = api.run("nobody", &[], query, day.clone()).await;
        assert_eq!(codes(&response), vec!["FORBIDDEN"], "{query}");
    }
    for role in [Role::Teller, Role::Supervisor] {
        for query in &all[..5] {
            let response = api.run("staff", &[role], query, day.clone()).await;
            assert!(
                response.errors.is_empty(),
                "{role} on {query}: {:?}",
                response.errors
            );
        }
        let response = api.run("staff", &[role], ACCESS_LOG, json!({})).await;
        assert_eq!(
            codes(&response),
            vec!["FORBIDDEN"],
            "{role} reads the access log"
        );
    }
    let granted: Vec<String> = sqlx::query_scalar(
        "select distinct actor from reporting.access_log where outcome = 'GRANTED'",
    )
    .fetch_all(&api.db.pool)
    .await
    .expect("actors");
    assert_eq!(
        granted.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from(["staff".to_string()]),
        "forbidden queries read nothing"
    );
    // Every recorded query refused is on the record as refused (the projection's own
    // status is not a read of account data, so neither its reads nor its refusals are).
    let refused: Vec<(String, String, String)> = sqlx::query_as(
        "select actor, query, refusal_code from reporting.access_log
         where outcome = 'REFUSED' order by id",
    )
    .fetch_all(&api.db.pool)
    .await
    .expect("refusals");
    let row = |actor: &str, query: &str| {
        (
            actor.to_string(),
            query.to_string(),
            "FORBIDDEN".to_string(),
        )
    };
    assert_eq!(
        refused,
        vec![
            row("nobody", "balanceAsOf"),
            row("nobody", "balancesAsOf"),
            row("nobody", "statement"),
            row("nobody", "auditTrail"),
            row("nobody", "accessLog"),
            row("staff", "accessLog"),
            row("staff", "accessLog"),
        ]
    );
}

#[tokio::test]
async fn projection_status_shows_checkpoint_lag_and_integrity() {
    let api = TestApi::new().await;
    let before = api.data(PROJECTION_STATUS, json!({})).await;
    assert_eq!(before["projectionStatus"]["position"], json!("0"));
    assert_eq!(before["projectionStatus"]["appliedEvents"], json!(0));

    let (_, _, events) = seeded(&api).await;
    let data = api.data(PROJECTION_STATUS, json!({})).await;
    let status = &data["projectionStatus"];
    assert_eq!(
        status["position"],
        json!(events.last().expect("events").position.to_string())
    );
    assert_eq!(status["appliedEvents"], json!(6));
    assert_eq!(status["streamSequence"], json!("6"));
    assert_eq!(status["integrityAlerts"], json!(0));
    assert_eq!(status["haltedAccounts"], json!([]));
    assert_eq!(
        status["lagEvents"],
        json!(0),
        "nothing published on this test's stream"
    );
    assert!(status["updatedAt"].is_string());
}

#[tokio::test]
async fn a_page_costs_its_size_against_the_complexity_limit() {
    let api = TestApi::new().await;
    let node = "position eventId eventType eventVersion accountId streamVersion recordedAt actor correlationId \
                causationId idempotencyKey payload hash previousHash";
    let small =
        format!("{{ a: auditTrail(filter: {{}}, first: 10) {{ edges {{ node {{ {node} }} }} }} }}");
    let response = api.run("audrey", &[Role::Auditor], &small, json!({})).await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let heavy = format!(
        "{{ a: auditTrail(filter: {{}}, first: 500) {{ edges {{ node {{ {node} }} }} }}
            b: auditTrail(filter: {{}}, first: 500) {{ edges {{ node {{ {node} }} }} }}
            c: auditTrail(filter: {{}}, first: 500) {{ edges {{ node {{ {node} }} }} }} }}"
    );
    let response = api.run("audrey", &[Role::Auditor], &heavy, json!({})).await;
    assert_eq!(response.errors.len(), 1, "{:?}", response.errors);
    assert!(
        response.errors[0].message.contains("too complex"),
        "{}",
        response.errors[0].message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_share_access_log_commits_and_each_is_recorded() {
    let api = std::sync::Arc::new(TestApi::new().await);
    let (a, _, _) = seeded(&api).await;
    let reads = 64;
    let tasks: Vec<_> = (0..reads)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                api.data(
                    BALANCE_AS_OF,
                    json!({ "id": a, "asOf": "2026-03-02T11:00:00Z" }),
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        let data = task.await.expect("task");
        assert_eq!(data["balanceAsOf"]["balance"], json!("69.50"));
    }
    let (rows, commits): (i64, i64) = sqlx::query_as(
        "select count(*), count(distinct xmin::text) from reporting.access_log where query = 'balanceAsOf'",
    )
    .fetch_one(&api.db.pool)
    .await
    .expect("access log");
    assert_eq!(rows, reads, "one row per read");
    assert!(commits < reads, "{reads} reads in {commits} commits");
}
