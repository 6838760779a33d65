//! The console over plain HTTP: sign-in and its cookie, CSRF, who sees which page, and the
//! metrics and request facts the console and the API share.

use platform::Role;
use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::{TOKEN_TTL, TestApp, spawn_app};

/// `pairs` as an `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let encoded: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={encoded}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// The `Set-Cookie` header for `name`, if the response set it.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn value(cookie: &str) -> &str {
    cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map_or("", |(_, v)| v)
}

/// Signs in with `token`; the cookies a browser would then send.
async fn signed_in(app: &TestApp, token: &str) -> String {
    let page = client()
        .get(app.url("/console/sign-in"))
        .send()
        .await
        .expect("the sign-in page");
    let csrf = set_cookie(&page, "folio_csrf").expect("a CSRF cookie");
    let csrf = value(&csrf).to_string();
    let answer = client()
        .post(app.url("/console/sign-in"))
        .header(header::COOKIE, format!("folio_csrf={csrf}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("token", token), ("csrf", &csrf)]))
        .send()
        .await
        .expect("sign-in answers");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&answer, "folio_session").expect("a session cookie");
    let csrf = set_cookie(&answer, "folio_csrf").expect("a new CSRF cookie");
    format!(
        "folio_session={}; folio_csrf={}",
        value(&session),
        value(&csrf)
    )
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_that_ends_with_the_token_and_needs_the_csrf_field()
{
    let app = spawn_app().await;
    let token = app.token("carol", &[Role::Auditor]);

    // Without the CSRF field matching the cookie, nothing is set.
    let forged = client()
        .post(app.url("/console/sign-in"))
        .header(header::COOKIE, "folio_csrf=aaaa")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("token", token.as_str()), ("csrf", "bbbb")]))
        .send()
        .await
        .expect("sign-in answers");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(set_cookie(&forged, "folio_session"), None);

    let page = client()
        .get(app.url("/console/sign-in"))
        .send()
        .await
        .expect("the sign-in page");
    let csrf = value(&set_cookie(&page, "folio_csrf").expect("a CSRF cookie")).to_string();
    assert_eq!(csrf.len(), 64, "256 random bits");
    let answer = client()
        .post(app.url("/console/sign-in"))
        .header(header::COOKIE, format!("folio_csrf={csrf}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("token", token.as_str()), ("csrf", csrf.as_str())]))
        .send()
        .await
        .expect("sign-in answers");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let location = answer.headers()[header::LOCATION].to_str().expect("text");
    assert_eq!(location, "/console/accounts");
    let cookie = set_cookie(&answer, "folio_session").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let max_age: u64 = cookie
        .split("Max-Age=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("a Max-Age");
    assert!(
        max_age > 0 && max_age <= TOKEN_TTL.as_secs(),
        "the session ends no later than the token: {max_age}s"
    );
    let new_csrf =
        value(&set_cookie(&answer, "folio_csrf").expect("a new CSRF cookie")).to_string();
    assert_ne!(new_csrf, csrf, "the CSRF token is replaced at sign-in");

    // A refused token sets nothing and says why.
    let refused = client()
        .post(app.url("/console/sign-in"))
        .header(header::COOKIE, format!("folio_csrf={csrf}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("token", "not-a-token"), ("csrf", csrf.as_str())]))
        .send()
        .await
        .expect("sign-in answers");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookie(&refused, "folio_session"), None);
    let body = refused.text().await.expect("a page");
    assert!(body.contains("That token is refused"), "{body}");
    // ...and the attempt is on the record, from where and why.
    let (actor, query, code, reason, from): (String, String, String, String, String) =
        sqlx::query_as(
            "select actor, query, refusal_code, refusal_reason, client_addr
             from reporting.access_log where outcome = 'REFUSED'",
        )
        .fetch_one(&app.pool)
        .await
        .expect("one refused sign-in");
    assert_eq!(
        (actor.as_str(), query.as_str(), code.as_str(), from.as_str()),
        (
            "(unauthenticated)",
            "POST /console/sign-in",
            "UNAUTHENTICATED",
            "127.0.0.1"
        )
    );
    assert!(reason.starts_with("That token is refused"), "{reason}");
}

#[tokio::test]
async fn pages_need_a_session_and_sign_out_needs_the_csrf_field() {
    let app = spawn_app().await;
    for cookie in ["", "folio_session=garbage"] {
        let answer = client()
            .get(app.url("/console/balances"))
            .header(header::COOKIE, cookie)
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "cookie {cookie:?}");
        let location = answer.headers()[header::LOCATION].to_str().expect("text");
        assert!(location.starts_with("/console/sign-in"), "{location}");
    }
    // No cookie is no attempt; a cookie that is not a valid token is a refused one.
    let refused: Vec<(String, String, String)> = sqlx::query_as(
        "select actor, query, refusal_reason from reporting.access_log where outcome = 'REFUSED'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("the refusals");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, "(unauthenticated)");
    assert_eq!(refused[0].1, "GET /console/balances");
    assert!(
        refused[0].2.starts_with("the session cookie is refused"),
        "{}",
        refused[0].2
    );

    let cookies = signed_in(&app, &app.token("carol", &[Role::Auditor])).await;
    let page = client()
        .get(app.url("/console/balances"))
        .header(header::COOKIE, &cookies)
        .send()
        .await
        .expect("the balances page");
    assert_eq!(page.status(), StatusCode::OK);
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(page.headers()[name], value, "{name}");
    }
    let html = page.text().await.expect("a page");
    assert!(html.contains("<caption>Totals per currency"), "{html}");

    let forged = client()
        .post(app.url("/console/sign-out"))
        .header(header::COOKIE, &cookies)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &"0".repeat(64))]))
        .send()
        .await
        .expect("an answer");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(set_cookie(&forged, "folio_session"), None);

    // The session's CSRF token, as the page's sign-out form carries it.
    let csrf = input_value(&html, "csrf").to_string();
    assert_ne!(
        Some(csrf.as_str()),
        cookies.split("folio_csrf=").nth(1),
        "a signed-in form's token is the session's, not the cookie's"
    );
    // A planted CSRF cookie with a matching field is not enough.
    let planted = client()
        .post(app.url("/console/sign-out"))
        .header(
            header::COOKIE,
            format!(
                "{}; folio_csrf=evil",
                cookies.split(';').next().expect("the session")
            ),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("csrf", "evil")]))
        .send()
        .await
        .expect("an answer");
    assert_eq!(planted.status(), StatusCode::FORBIDDEN);
    let out = client()
        .post(app.url("/console/sign-out"))
        .header(header::COOKIE, &cookies)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &csrf)]))
        .send()
        .await
        .expect("an answer");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = set_cookie(&out, "folio_session").expect("the session cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn a_teller_gets_no_audit_or_access_csv_and_sees_balances_with_totals() {
    let app = spawn_app().await;
    let account = app.open_usd("Zoë Brontë").await;
    let deposit = app.deposited(account.id, "10.00").await;
    let cookies = signed_in(&app, &app.token("alice", &[Role::Teller])).await;
    for path in [
        "/console/reports/audit.csv",
        "/console/reports/access.csv",
        "/console/audit",
        "/console/access",
    ] {
        let answer = client()
            .get(app.url(path))
            .header(header::COOKIE, &cookies)
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let mistyped = client()
        .get(app.url(&format!("/console/accounts/{}?from=2026-13-45", account.id)))
        .header(header::COOKIE, &cookies)
        .send()
        .await
        .expect("an answer");
    assert_eq!(mistyped.status(), StatusCode::BAD_REQUEST);
    let html = mistyped.text().await.expect("a page");
    assert!(
        html.contains("(<code>from</code>)"),
        "the refusal names the field: {html}"
    );
    assert!(
        html.contains("value=\"2026-13-45\""),
        "the form keeps what was typed: {html}"
    );
    let today = chrono::Utc::now().date_naive();
    let csv = client()
        .get(app.url(&format!(
            "/console/reports/balances.csv?asOf={today}&tz=Europe/Madrid&bom=true&atLeast={}",
            deposit.position
        )))
        .header(header::COOKIE, &cookies)
        .send()
        .await
        .expect("an answer");
    assert_eq!(csv.status(), StatusCode::OK);
    let text = csv.text().await.expect("a CSV");
    assert!(text.starts_with('\u{feff}'), "a byte-order mark first");
    assert!(text.contains("Zoë Brontë"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("Total USD (1 account)") && l.contains("10.00")),
        "a total row: {text}"
    );
}

#[tokio::test]
async fn metrics_describe_themselves_and_count_refusals_by_code() {
    let app = spawn_app().await;
    let refused = app
        .deposit(
            app.teller(),
            json!({ "accountId": uuid::Uuid::nil(), "amount": "5", "idempotencyKey": "k-1" }),
        )
        .await;
    assert_eq!(refused.code(), Some("ACCOUNT_NOT_FOUND"));
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "# HELP folio_graphql_requests_total",
        "# TYPE folio_graphql_request_duration_seconds histogram",
        "# TYPE folio_http_request_duration_seconds histogram",
        "# HELP folio_commands_total",
    ] {
        assert!(metrics.contains(line), "{line} missing from /metrics");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("folio_graphql_requests_total{")
                && l.contains("operation=\"deposit\"")
                && l.contains("outcome=\"ACCOUNT_NOT_FOUND\"")),
        "the refused deposit is counted by its code"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("folio_commands_total{") && l.contains("ACCOUNT_NOT_FOUND")),
        "commands by outcome include refusals"
    );
}

/// The value of the hidden or text input `name` in the first form of `html` that has it.
fn input_value<'a>(html: &'a str, name: &str) -> &'a str {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name} in the page"));
    let rest = &html[at..];
    let value = rest.find("value=\"").expect("a value") + 7;
    let end = rest[value..].find('"').expect("the value's end");
    &rest[value..value + end]
}

#[tokio::test]
async fn a_second_supervisor_approves_in_the_console_and_the_requester_cannot() {
    let app = spawn_app().await;
    let account = app.open_usd("Grace Hopper").await;
    app.deposited(account.id, "100.00").await;
    let maker = app.token("sup-maya", &[Role::Supervisor]);
    let requested = app
        .execute(
            Some(&maker),
            &[],
            "mutation($input: RequestAdjustmentInput!) { requestAdjustment(input: $input) { adjustment { id } } }",
            json!({ "input": {
                "accountId": account.id, "amount": "-12.50", "reason": "bank fee charged twice",
                "evidence": "ticket 4711", "idempotencyKey": crate::helpers::key(),
            } }),
        )
        .await;
    assert!(requested.code().is_none(), "{:?}", requested.body);
    let id = requested.data("requestAdjustment")["adjustment"]["id"]
        .as_str()
        .expect("an id")
        .to_string();

    let decide = |cookies: String| {
        let app = &app;
        let id = id.clone();
        async move {
            // Listed once the reporting side has projected the request.
            let html = crate::helpers::eventually("the pending request is listed", || {
                let cookies = cookies.clone();
                async move {
                    let page = client()
                        .get(app.url("/console/adjustments"))
                        .header(header::COOKIE, &cookies)
                        .send()
                        .await
                        .ok()?;
                    let html = page.text().await.ok()?;
                    html.contains("bank fee charged twice").then_some(html)
                }
            })
            .await;
            let csrf = input_value(&html, "csrf").to_string();
            // The maker's page offers no decision form (so no key): the request is forged
            // by hand, as a script would, and the server still refuses it.
            let key = if html.contains("name=\"idempotencyKey\"") {
                input_value(&html, "idempotencyKey").to_string()
            } else {
                assert!(html.contains("Your request: another supervisor decides it."));
                crate::helpers::key()
            };
            client()
                .post(app.url(&format!("/console/adjustments/{id}/decision")))
                .header(header::COOKIE, &cookies)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form(&[
                    ("decision", "approve"),
                    ("comment", "checked against the ticket"),
                    ("csrf", &csrf),
                    ("idempotencyKey", &key),
                ]))
                .send()
                .await
                .expect("a decision")
        }
    };

    let own = decide(signed_in(&app, &maker).await).await;
    assert!(own.status().is_client_error(), "refused: {}", own.status());
    let html = own.text().await.expect("a page");
    assert!(
        html.contains("SELF_APPROVAL"),
        "the maker cannot check: {html}"
    );

    let checker = app.token("sup-omar", &[Role::Supervisor]);
    let approved = decide(signed_in(&app, &checker).await).await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let account_now = app.read_account(account.id).await.expect("the account");
    assert_eq!(
        account_now.balance, "87.50",
        "the approval posted the adjustment"
    );
}

#[tokio::test]
async fn the_period_page_lists_closes_and_downloads_the_signed_report_as_served() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada Byron").await;
    app.deposited(account.id, "42.00").await;
    // The deposit is committed before it answers: the period ends after it, before the close.
    let period_end = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let closed = app
        .execute(
            Some(app.supervisor()),
            &[],
            "mutation($input: ClosePeriodInput!) { closePeriod(input: $input) { periodClose { report } } }",
            json!({ "input": { "periodEnd": period_end, "idempotencyKey": crate::helpers::key() } }),
        )
        .await;
    assert!(closed.code().is_none(), "{:?}", closed.body);
    let signed = closed.data("closePeriod")["periodClose"]["report"]
        .as_str()
        .expect("the signed report")
        .to_string();

    let cookies = signed_in(&app, &app.token("carol", &[Role::Auditor])).await;
    let page = client()
        .get(app.url("/console/periods"))
        .header(header::COOKIE, &cookies)
        .send()
        .await
        .expect("the periods page")
        .text()
        .await
        .expect("a page");
    assert!(page.contains("<caption>Closed periods"), "{page}");
    assert!(page.contains("42.00 USD"), "the close's totals: {page}");
    let link = page
        .split("href=\"/console/periods/report?")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a download link")
        .replace("&amp;", "&");
    let file = client()
        .get(app.url(&format!("/console/periods/report?{link}")))
        .header(header::COOKIE, &cookies)
        .send()
        .await
        .expect("the report");
    assert_eq!(file.status(), StatusCode::OK);
    assert!(
        file.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("text")
            .starts_with("attachment; filename=\"period-"),
    );
    assert_eq!(
        file.text().await.expect("the file"),
        signed,
        "the download is the signed report, byte for byte"
    );
}
