//! The CSV reports over HTTP against real PostgreSQL: headers, quoting, filters, the same
//! authentication and roles as GraphQL, parameter errors, streaming across batches and
//! truncation at the row limit, and the access log.

mod support;

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use axum::Extension;
use platform::Role;
use reporting::reports::{
    ACCESS_HEADER, AUDIT_HEADER, BALANCES_HEADER, REPORT_BATCH_ROWS, STATEMENT_HEADER,
    balances_report,
};
use serde_json::Value;
use support::{
    HttpResponse, TestApi, at, context, distinct, http_get, ledger, parse_csv, token, token_keys,
};
use tokio::net::TcpListener;
use uuid::Uuid;

/// Serves the report routes of `api` on a random local port, as the platform wires them.
async fn serve(api: &TestApi) -> SocketAddr {
    let app = reporting::reports::routes()
        .layer(Extension(api.state.clone()))
        .layer(Extension(Arc::new(token_keys())));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    addr
}

fn error_body(response: &HttpResponse) -> (String, String) {
    let body: Value = serde_json::from_str(&response.body).expect("a JSON error body");
    let error = &body["errors"][0];
    (
        error["extensions"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        error["message"].as_str().unwrap_or("").to_string(),
    )
}

fn header_fields(header: &str) -> Vec<String> {
    header.trim_end().split(',').map(str::to_string).collect()
}

#[tokio::test]
async fn balances_csv_lists_every_account_as_of_an_instant_under_a_header_row() {
    let api = TestApi::new().await;
    let mut ledger = ledger();
    let mut events = Vec::new();
    let mut expected = BTreeMap::new();
    for (n, currency) in ["USD", "EUR", "JPY"].into_iter().enumerate() {
        let (id, opened) = ledger.open(currency, at(9, n as u32, 0));
        events.push(opened);
        let amount = if currency == "JPY" { "1500" } else { "20.50" };
        let deposited = ledger.deposit(id, amount, at(10, 0, 0));
        expected.insert(
            id.as_uuid(),
            (
                currency,
                ledger.balance(id).to_string(),
                deposited.stream_version,
            ),
        );
        events.push(deposited);
        events.push(ledger.withdraw(id, "1", at(12, 0, 0)));
    }
    api.db.apply(events).await;
    let addr = serve(&api).await;

    let response = http_get(
        addr,
        "/reports/balances.csv?asOf=2026-03-02T11:00:00Z",
        Some(&token("finn", &[Role::Auditor])),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        response.header("content-disposition"),
        Some("attachment; filename=\"balances-as-of-20260302T110000Z.csv\"")
    );
    let rows = parse_csv(&response.body);
    assert_eq!(rows[0], header_fields(BALANCES_HEADER));
    let (body_rows, totals): (Vec<_>, Vec<_>) = rows[1..].iter().partition(|r| !r[0].is_empty());
    assert_eq!(body_rows.len(), 3);
    let totals: Vec<(&str, &str, &str)> = totals
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str(), r[3].as_str()))
        .collect();
    assert_eq!(
        totals,
        vec![
            ("Total EUR (1 account)", "EUR", "20.50"),
            ("Total JPY (1 account)", "JPY", "1500"),
            ("Total USD (1 account)", "USD", "20.50"),
        ],
        "one total row per currency, after the accounts"
    );
    for row in &body_rows {
        let id: Uuid = row[0].parse().expect("an account id");
        let (currency, balance, version) = &expected[&id];
        assert!(row[1].starts_with("Holder "), "{row:?}");
        assert_eq!(row[2], *currency);
        assert_eq!(
            &row[3], balance,
            "the balance at 11:00, before the withdrawals"
        );
        assert_eq!(row[4], version.to_string());
        assert_eq!(row[5], "2026-03-02T10:00:00.000000Z");
    }
    let ids: Vec<&String> = body_rows.iter().map(|r| &r[0]).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered by account id");

    let euros = http_get(
        addr,
        "/reports/balances.csv?asOf=2026-03-02T11:00:00Z&currency=eur",
        Some(&token("finn", &[Role::Teller])),
    )
    .await;
    assert_eq!(euros.status, 200, "{}", euros.body);
    let euro_rows = parse_csv(&euros.body);
    assert_eq!(
        euro_rows.len(),
        3,
        "the header, the one EUR account and its total"
    );
    assert_eq!(euro_rows[1][2], "EUR");

    // A day read in a time zone: its end there, 2026-03-02T22:59:59.999999Z in Madrid;
    // every withdrawal at 12:00Z counts. And a byte-order mark for Excel.
    let madrid = http_get(
        addr,
        "/reports/balances.csv?asOf=2026-03-02&tz=Europe/Madrid&bom=true",
        Some(&token("finn", &[Role::Auditor])),
    )
    .await;
    assert_eq!(madrid.status, 200, "{}", madrid.body);
    assert!(
        madrid.body.starts_with('\u{feff}'),
        "a UTF-8 byte-order mark first"
    );
    assert_eq!(
        madrid.header("content-disposition"),
        Some("attachment; filename=\"balances-as-of-20260302T225959Z.csv\"")
    );
    let madrid_rows = parse_csv(madrid.body.trim_start_matches('\u{feff}'));
    let usd = madrid_rows
        .iter()
        .find(|r| r[2] == "USD" && !r[0].is_empty())
        .expect("the USD account");
    assert_eq!(usd[3], "19.50", "after the withdrawal at noon UTC");

    let logged: Vec<(String, Value, Option<String>)> =
        sqlx::query_as("select actor, arguments, client_addr from reporting.access_log where query = 'balances.csv' order by id")
            .fetch_all(&api.db.pool)
            .await
            .expect("access log");
    assert_eq!(logged.len(), 3, "one row per download");
    assert_eq!(logged[0].0, "finn");
    assert_eq!(
        logged[0].1["asOf"],
        Value::String("2026-03-02T11:00:00Z".into())
    );
    assert_eq!(logged[1].1["currency"], Value::String("EUR".into()));
    assert_eq!(logged[0].2.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn audit_csv_filters_events_and_quotes_their_json_payloads() {
    let api = TestApi::new().await;
    let mut ledger = ledger();
    ledger.acting_as("=cmd|' /C calc'!A0");
    let (a, opened_a) = ledger.open("USD", at(9, 0, 0));
    let (b, opened_b) = ledger.open("USD", at(9, 0, 0));
    ledger
        .acting_as("teller-2")
        .correlated(Some("corr,with,commas"));
    let deposited = ledger.deposit(a, "75.00", at(9, 10, 0));
    let (debit, credit) = ledger.transfer(a, b, "25.00", at(9, 20, 0));
    let withdrawn = ledger.withdraw(a, "5.00", at(9, 30, 0));
    let events = vec![
        opened_a,
        opened_b,
        deposited.clone(),
        debit.clone(),
        credit,
        withdrawn,
    ];
    api.db.apply(events.clone()).await;
    let addr = serve(&api).await;
    let auditor = token("ida", &[Role::Auditor]);

    let path = format!(
        "/reports/audit.csv?accountId={}&eventType=MoneyDeposited,TransferDebited&eventType=AccountOpened",
        a.as_uuid()
    );
    let response = http_get(addr, &path, Some(&auditor)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response.header("content-disposition").is_some_and(|d| d
            .starts_with("attachment; filename=\"audit-trail-")
            && d.ends_with(".csv\"")),
        "{:?}",
        response.header("content-disposition")
    );
    assert!(
        response.body.contains(",\"{\"\""),
        "JSON payloads are quoted with doubled quotes"
    );
    let rows = parse_csv(&response.body);
    assert_eq!(rows[0], header_fields(AUDIT_HEADER));
    let expected = [&events[0], &deposited, &debit];
    assert_eq!(rows.len(), 1 + expected.len());
    for (row, event) in rows[1..].iter().zip(expected) {
        assert_eq!(row[0], event.position.to_string());
        assert_eq!(
            row[1],
            event
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        assert_eq!(row[2], event.event_id.to_string());
        assert_eq!(row[3], a.as_uuid().to_string());
        assert_eq!(row[4], event.event_type);
        assert_eq!(row[5], event.event_version.to_string());
        assert_eq!(row[6], event.stream_version.to_string());
        assert_eq!(
            Some(row[9].as_str()),
            event.metadata["idempotencyKey"].as_str()
        );
        let payload: Value = serde_json::from_str(&row[12]).expect("the payload column is JSON");
        assert_eq!(payload, event.payload);
        assert_eq!(row[13], event.hash.to_hex());
        assert_eq!(
            row[14],
            event.prev_hash.map(|h| h.to_hex()).unwrap_or_default()
        );
    }
    let amounts: Vec<(&str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[10].as_str(), r[11].as_str()))
        .collect();
    assert_eq!(
        amounts,
        vec![("", ""), ("75.00", "USD"), ("-25.00", "USD")],
        "the amount as it moved the balance, in a column of its own"
    );
    assert_eq!(
        rows[1][7], "'=cmd|' /C calc'!A0",
        "a formula-like actor is defused"
    );
    assert_eq!(rows[2][7], "teller-2");
    assert_eq!(
        rows[2][8], "corr,with,commas",
        "a field with commas survives quoting"
    );

    let by_actor = http_get(
        addr,
        "/reports/audit.csv?actor=teller-2&from=2026-03-02T09:15:00Z&to=2026-03-02T09:25:00Z",
        Some(&auditor),
    )
    .await;
    let positions: Vec<String> = parse_csv(&by_actor.body)[1..]
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(
        positions,
        vec![
            events[3].position.to_string(),
            events[4].position.to_string()
        ]
    );

    let logged: Vec<Value> = sqlx::query_scalar(
        "select arguments from reporting.access_log where query = 'audit.csv' order by id",
    )
    .fetch_all(&api.db.pool)
    .await
    .expect("access log");
    assert_eq!(logged.len(), 2);
    assert_eq!(
        logged[0]["eventTypes"],
        serde_json::json!(["MoneyDeposited", "TransferDebited", "AccountOpened"])
    );
    assert_eq!(logged[1]["actor"], Value::String("teller-2".into()));
}

#[tokio::test]
async fn reports_need_a_token_and_a_reporting_role() {
    let api = TestApi::new().await;
    let addr = serve(&api).await;
    for path in [
        "/reports/balances.csv",
        "/reports/audit.csv",
        "/reports/access.csv",
    ] {
        let anonymous = http_get(addr, path, None).await;
        assert_eq!(anonymous.status, 401, "{path}");
        assert_eq!(error_body(&anonymous).0, "UNAUTHENTICATED");

        let roleless = http_get(addr, path, Some(&token("visitor", &[]))).await;
        assert_eq!(roleless.status, 403, "{path}");
        let (code, message) = error_body(&roleless);
        assert_eq!(code, "FORBIDDEN");
        assert!(message.contains("auditor"), "{message}");

        let auditor = http_get(addr, path, Some(&token("ida", &[Role::Auditor]))).await;
        assert_eq!(auditor.status, 200, "{path}: {}", auditor.body);
    }
    for path in ["/reports/balances.csv", "/reports/audit.csv"] {
        let supervisor = http_get(addr, path, Some(&token("sam", &[Role::Supervisor]))).await;
        assert_eq!(supervisor.status, 200, "{path}: {}", supervisor.body);
    }
    let teller = http_get(
        addr,
        "/reports/access.csv",
        Some(&token("ted", &[Role::Teller])),
    )
    .await;
    assert_eq!(teller.status, 403, "the access log is for auditors");
    let visitor: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "select query, outcome, refusal_code from reporting.access_log
         where actor = 'visitor' order by id",
    )
    .fetch_all(&api.db.pool)
    .await
    .expect("the visitor's rows");
    let refused = |query: &str| {
        (
            query.to_string(),
            "REFUSED".to_string(),
            Some("FORBIDDEN".to_string()),
        )
    };
    assert_eq!(
        visitor,
        vec![
            refused("balances.csv"),
            refused("audit.csv"),
            refused("access.csv")
        ],
        "a refused download reads nothing and is recorded as refused"
    );
    let ted: Vec<(String, String)> =
        sqlx::query_as("select query, outcome from reporting.access_log where actor = 'ted'")
            .fetch_all(&api.db.pool)
            .await
            .expect("the teller's rows");
    assert_eq!(ted, vec![("access.csv".to_string(), "REFUSED".to_string())]);
}

#[tokio::test]
async fn bad_parameters_are_refused_with_400_naming_them() {
    let api = TestApi::new().await;
    let addr = serve(&api).await;
    let auditor = token("ida", &[Role::Auditor]);
    let cases = [
        ("/reports/balances.csv?asOf=yesterday", "asOf: "),
        ("/reports/balances.csv?currency=XYZ", "currency: "),
        ("/reports/balances.csv?asof=2026-03-02T11:00:00Z", "asof: "),
        (
            "/reports/balances.csv?currency=USD&currency=EUR",
            "currency: ",
        ),
        ("/reports/balances.csv?atLeast=-4", "atLeast: "),
        ("/reports/audit.csv?accountId=42", "accountId: "),
        ("/reports/audit.csv?eventType=MoneyPrinted", "eventType: "),
        (
            "/reports/audit.csv?from=2026-03-03T00:00:00Z&to=2026-03-02T00:00:00Z",
            "from: ",
        ),
        ("/reports/audit.csv?to=2026-03-32", "to: "),
        ("/reports/balances.csv?tz=Mars/Olympus", "tz: "),
        ("/reports/balances.csv?bom=yes", "bom: "),
        (
            "/reports/statement.csv?from=2026-03-01&to=2026-03-31",
            "accountId: ",
        ),
        (
            "/reports/statement.csv?accountId=01a22a9e-de5e-74d5-acfe-d8c3237cd236&to=2026-03-31",
            "from: ",
        ),
        ("/reports/access.csv?from=soon", "from: "),
    ];
    for (path, prefix) in cases {
        let response = http_get(addr, path, Some(&auditor)).await;
        assert_eq!(response.status, 400, "{path}: {}", response.body);
        let (code, message) = error_body(&response);
        assert_eq!(code, "VALIDATION", "{path}");
        assert!(message.starts_with(prefix), "{path}: {message}");
    }

    let stale = http_get(addr, "/reports/audit.csv?atLeast=99", Some(&auditor)).await;
    assert_eq!(stale.status, 503, "{}", stale.body);
    assert_eq!(stale.header("retry-after"), Some("1"));
    assert_eq!(error_body(&stale).0, "STALE_READ");
}

#[tokio::test]
async fn a_report_streams_across_batches_and_says_when_it_was_truncated() {
    let api = TestApi::new().await;
    let accounts = REPORT_BATCH_ROWS + 5;
    let mut ledger = ledger();
    let events: Vec<_> = (0..accounts)
        .map(|_| ledger.open("USD", at(9, 0, 0)).1)
        .collect();
    api.db.apply(events).await;
    let addr = serve(&api).await;

    let whole = http_get(
        addr,
        "/reports/balances.csv",
        Some(&token("ida", &[Role::Auditor])),
    )
    .await;
    assert_eq!(whole.status, 200);
    assert_eq!(
        whole.header("transfer-encoding"),
        Some("chunked"),
        "streamed, not buffered"
    );
    let rows = parse_csv(&whole.body);
    assert_eq!(
        rows.len(),
        1 + accounts + 1,
        "every account, across batches, and the total"
    );
    let ids: Vec<&String> = rows[1..=accounts].iter().map(|r| &r[0]).collect();
    distinct(&ids);
    assert!(
        !whole.body.contains('#'),
        "a complete report has no truncation line"
    );

    let request = context("ida", &[Role::Auditor], "corr-truncated");
    for (rows_max, truncated) in [(REPORT_BATCH_ROWS + 2, true), (accounts, false), (3, true)] {
        let response = balances_report(&api.state, &request, &[], rows_max)
            .await
            .expect("a report");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body");
        let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        let account_lines = lines
            .iter()
            .skip(1)
            .filter(|l| !l.starts_with('#') && !l.starts_with(','))
            .count();
        assert_eq!(account_lines, rows_max, "at most {rows_max} rows");
        assert_eq!(
            lines.iter().any(|l| l.starts_with(",Total USD")),
            !truncated,
            "the total closes a complete report only"
        );
        let last = lines.last().copied().unwrap_or("");
        assert_eq!(
            last.starts_with(&format!(
                "# truncated: this report stops at {rows_max} rows"
            )),
            truncated,
            "{rows_max}: last line {last:?}"
        );
    }
}

#[tokio::test]
async fn statement_csv_runs_from_the_opening_to_the_closing_balance() {
    let api = TestApi::new().await;
    let mut ledger = ledger();
    let (a, opened_a) = ledger.open("EUR", at(8, 0, 0));
    let (b, opened_b) = ledger.open("EUR", at(8, 0, 0));
    let before = ledger.deposit(a, "100.00", at(9, 0, 0));
    let in_range = ledger.deposit(a, "40.00", at(10, 0, 0));
    let (debit, credit) = ledger.transfer(a, b, "15.50", at(11, 0, 0));
    let reversal = ledger.reverse_deposit(a, &in_range, "40.00", at(12, 0, 0));
    let after = ledger.withdraw(a, "1.00", at(14, 0, 0));
    api.db
        .apply([
            opened_a,
            opened_b,
            before,
            in_range.clone(),
            debit.clone(),
            credit,
            reversal.clone(),
            after,
        ])
        .await;
    let addr = serve(&api).await;
    let path = format!(
        "/reports/statement.csv?accountId={}&from=2026-03-02T09:30:00Z&to=2026-03-02T13:00:00Z",
        a.as_uuid()
    );
    let response = http_get(addr, &path, Some(&token("fran", &[Role::Teller]))).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let rows = parse_csv(&response.body);
    assert_eq!(rows[0], header_fields(STATEMENT_HEADER));
    let lines: Vec<(&str, &str, &str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[2].as_str(), r[3].as_str(), r[4].as_str(), r[5].as_str()))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("OPENING_BALANCE", "", "EUR", "100.00"),
            ("DEPOSIT", "40.00", "EUR", "140.00"),
            ("TRANSFER_OUT", "-15.50", "EUR", "124.50"),
            ("REVERSAL", "-40.00", "EUR", "84.50"),
            ("CLOSING_BALANCE", "", "EUR", "84.50"),
        ]
    );
    assert_eq!(rows[2][9], in_range.event_id.to_string());
    assert_eq!(rows[2][11], reversal.event_id.to_string(), "reversed by");
    assert_eq!(rows[4][10], in_range.event_id.to_string(), "reverses");
    assert_eq!(rows[3][7], b.as_uuid().to_string(), "the counterparty");
    assert_eq!(rows[3][9], debit.event_id.to_string());
    let logged: i64 = sqlx::query_scalar(
        "select count(*) from reporting.access_log where query = 'statement.csv' and actor = 'fran'",
    )
    .fetch_one(&api.db.pool)
    .await
    .expect("access log");
    assert_eq!(logged, 1);
}

#[tokio::test]
async fn access_csv_lists_who_looked_at_what_newest_first() {
    let api = TestApi::new().await;
    let addr = serve(&api).await;
    let auditor = token("ida", &[Role::Auditor]);
    for _ in 0..2 {
        let response = http_get(
            addr,
            "/reports/balances.csv",
            Some(&token("finn", &[Role::Teller])),
        )
        .await;
        assert_eq!(response.status, 200);
    }
    let response = http_get(
        addr,
        "/reports/access.csv?actor=finn&bom=true",
        Some(&auditor),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let rows = parse_csv(response.body.trim_start_matches('\u{feff}'));
    assert_eq!(rows[0], header_fields(ACCESS_HEADER));
    assert_eq!(rows.len(), 3, "the teller's two downloads");
    assert!(
        rows[1..]
            .iter()
            .all(|r| r[2] == "finn" && r[3] == "teller" && r[4] == "balances.csv")
    );
    let ids: Vec<i64> = rows[1..]
        .iter()
        .map(|r| r[0].parse().expect("an id"))
        .collect();
    assert!(ids[0] > ids[1], "newest first: {ids:?}");
    let own: i64 = sqlx::query_scalar(
        "select count(*) from reporting.access_log where query = 'access.csv' and actor = 'ida'",
    )
    .fetch_one(&api.db.pool)
    .await
    .expect("access log");
    assert_eq!(own, 1, "reading the access log is itself recorded");
}
