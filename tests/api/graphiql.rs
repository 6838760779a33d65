//! GraphiQL served entirely by Folio: the page and every file it loads come from the
//! platform itself, nothing names another host the browser would fetch at start-up, and
//! the examples the page opens with run as they stand with one teller token.

use std::collections::BTreeSet;

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, eventually, spawn_app};

/// Hosts named in the embedded scripts that nothing fetches: XML namespaces, and links in
/// error messages and comments. A new host after an upgrade of GraphiQL or React fails
/// `no_embedded_file_names_a_host_it_would_fetch` until someone has looked at what it is.
const HOSTS_NAMED_NOT_FETCHED: &[&str] = &[
    "www.w3.org",
    "github.com",
    "radix-ui.com",
    "codemirror.net",
    "commonmark.org",
    "en.wikipedia.org",
    "reactjs.org",
];
/// Where GraphiQL's own examples load their files from.
const CDN_HOSTS: &[&str] = &[
    "unpkg.com",
    "cdn.jsdelivr.net",
    "esm.sh",
    "cdnjs.cloudflare.com",
    "fonts.googleapis.com",
    "fonts.gstatic.com",
];
/// Fewer bytes than this is no real script or style sheet.
const ASSET_BYTES_MIN: usize = 100;

/// The page at `path`, checked to be HTML, as text.
async fn page(app: &TestApp, path: &str) -> (reqwest::header::HeaderMap, String) {
    let response = app
        .client
        .get(app.url(path))
        .send()
        .await
        .expect("the platform answers");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(
        content_type(&headers).starts_with("text/html"),
        "{headers:?}"
    );
    (headers, response.text().await.expect("a body"))
}

fn content_type(headers: &reqwest::header::HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Every value of `attribute="..."` in `html`.
fn attribute_values<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let marker = format!(" {attribute}=\"");
    html.match_indices(&marker)
        .filter_map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// The hosts of every `http://` and `https://` URL in `text`.
fn hosts(text: &str) -> BTreeSet<String> {
    ["http://", "https://"]
        .iter()
        .flat_map(|scheme| text.match_indices(scheme).map(|(at, s)| at + s.len()))
        .map(|start| {
            text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect::<String>()
        })
        .filter(|host| !host.is_empty())
        .collect()
}

/// The configuration the page hands its start-up script.
fn page_config(html: &str) -> Value {
    let open = "<script id=\"folio-graphiql-config\" type=\"application/json\">";
    let start = html.find(open).expect("the page carries its configuration") + open.len();
    let end = start + html[start..].find("</script>").expect("a closed script");
    serde_json::from_str(&html[start..end]).expect("the configuration is JSON")
}

/// Every file the page at `/` references, fetched: (address, content type, bytes).
async fn referenced_files(app: &TestApp) -> Vec<(String, String, Vec<u8>)> {
    let (_, html) = page(app, "/").await;
    let mut files = Vec::new();
    for url in attribute_values(&html, "src")
        .into_iter()
        .chain(attribute_values(&html, "href"))
    {
        let response = app
            .client
            .get(app.url(url))
            .send()
            .await
            .expect("the platform answers");
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let cache = response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(cache.contains("immutable"), "{url}: cache-control {cache}");
        let content_type = content_type(response.headers()).to_string();
        let bytes = response.bytes().await.expect("a body").to_vec();
        files.push((url.to_string(), content_type, bytes));
    }
    files
}

#[tokio::test]
async fn the_page_loads_everything_from_its_own_origin() {
    let app = spawn_app().await;
    let (headers, html) = page(&app, "/").await;

    let urls: Vec<&str> = attribute_values(&html, "src")
        .into_iter()
        .chain(attribute_values(&html, "href"))
        .collect();
    assert!(urls.len() >= 6, "scripts, style sheets and icon: {urls:?}");
    for url in &urls {
        assert!(
            url.starts_with('/') && !url.starts_with("//"),
            "{url} is not on this origin"
        );
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );

    let policy = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }

    let (_, from_graphql) = page(&app, "/graphql").await;
    assert!(
        from_graphql.contains("folio-graphiql.js"),
        "GET /graphql is the same page"
    );
}

#[tokio::test]
async fn every_file_the_page_references_answers_with_its_type() {
    let app = spawn_app().await;
    let files = referenced_files(&app).await;
    for (url, content_type, bytes) in &files {
        let expected = if url.ends_with(".js") {
            "text/javascript"
        } else if url.ends_with(".css") {
            "text/css"
        } else if url.ends_with(".svg") {
            "image/svg+xml"
        } else {
            panic!("{url}: a file the test does not know")
        };
        assert!(content_type.starts_with(expected), "{url}: {content_type}");
        assert!(
            bytes.len() >= ASSET_BYTES_MIN,
            "{url}: {} bytes",
            bytes.len()
        );
    }
    let size_of = |name: &str| {
        files
            .iter()
            .find(|(url, _, _)| url.ends_with(name))
            .map_or(0, |(_, _, bytes)| bytes.len())
    };
    assert!(size_of("/graphiql.min.js") > 500_000, "GraphiQL's bundle");
    assert!(
        size_of("/react-dom.production.min.js") > 100_000,
        "React DOM"
    );
    assert!(size_of("/graphiql.min.css") > 100_000, "GraphiQL's styles");
}

#[tokio::test]
async fn no_embedded_file_names_a_host_it_would_fetch() {
    let app = spawn_app().await;
    let mut named = BTreeSet::new();
    for (url, _, bytes) in referenced_files(&app).await {
        let text = String::from_utf8_lossy(&bytes);
        for cdn in CDN_HOSTS {
            assert!(!text.contains(cdn), "{url} names {cdn}");
        }
        if url.ends_with(".css") {
            for (at, _) in text.match_indices("url(") {
                let target = text[at + 4..].trim_start_matches(['"', '\'']);
                assert!(
                    target.starts_with("data:"),
                    "{url} loads {}",
                    &text[at..at + 40]
                );
            }
        }
        if url.ends_with(".js") || url.ends_with(".css") {
            named.extend(hosts(&text));
        }
    }
    let unexpected: Vec<&String> = named
        .iter()
        .filter(|host| !HOSTS_NAMED_NOT_FETCHED.contains(&host.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "hosts in the embedded files that nobody has checked: {unexpected:?}"
    );
}

#[tokio::test]
async fn an_unknown_or_stale_file_is_not_found() {
    let app = spawn_app().await;
    for path in [
        "/graphiql/0000000000000000/graphiql.min.js",
        "/graphiql/0000000000000000/passwd",
        "/graphiql/graphiql.min.js",
    ] {
        let response = app
            .client
            .get(app.url(path))
            .send()
            .await
            .expect("the platform answers");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn introspection_needs_the_token_the_headers_pane_carries() {
    let app = spawn_app().await;
    let (_, html) = page(&app, "/").await;
    let config = page_config(&html);
    let headers: Value =
        serde_json::from_str(config["headers"].as_str().expect("a header template"))
            .expect("the template is JSON");
    assert_eq!(
        headers,
        json!({ "Authorization": platform::graphiql::TOKEN_PLACEHOLDER })
    );

    let introspection = json!({ "query": "{ __schema { queryType { name } } }" });
    let anonymous = app.post_graphql(None, &[], &introspection).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&anonymous.body), Some("UNAUTHENTICATED"));

    let with_token = app
        .post_graphql(Some(app.teller()), &[], &introspection)
        .await;
    assert_eq!(
        with_token.body["data"]["__schema"]["queryType"]["name"],
        json!("Query"),
        "{}",
        with_token.body
    );
}

#[tokio::test]
async fn the_examples_run_in_order_with_one_teller_token() {
    let app = spawn_app().await;
    let (_, html) = page(&app, "/").await;
    let config = page_config(&html);
    let tabs = config["tabs"].as_array().expect("example tabs");
    assert_eq!(tabs.len(), 3, "{config}");
    let run = |tab: usize, operation: &'static str| {
        let query = tabs[tab]["query"].as_str().expect("a query").to_string();
        let variables: Value = tabs[tab]["variables"].as_str().map_or(json!({}), |text| {
            serde_json::from_str(text).expect("the variables are JSON")
        });
        let body = json!({ "query": query, "variables": variables, "operationName": operation });
        let app = &app;
        async move {
            let answer = app.post_graphql(Some(app.teller()), &[], &body).await;
            assert!(
                answer.body.get("errors").is_none(),
                "{operation}: {}",
                answer.body
            );
            answer.body["data"].clone()
        }
    };

    let opened = run(0, "OpenAccount").await;
    let account_id = opened["openAccount"]["account"]["id"].clone();
    let deposited = run(0, "Deposit").await;
    assert_eq!(deposited["deposit"]["account"]["balance"], json!("250.00"));

    let balance = eventually("the deposit reaches the reporting side", || async {
        let data = run(1, "BalanceAsOf").await;
        (data["balanceAsOf"]["balance"] == json!("250.00")).then_some(data)
    })
    .await;
    assert_eq!(balance["balanceAsOf"]["accountId"], account_id);

    let events = eventually("both events reach the audit trail", || async {
        let data = run(2, "AuditTrail").await;
        let edges = data["auditTrail"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (edges.len() == 2).then_some(edges)
    })
    .await;
    let types: Vec<&Value> = events.iter().map(|e| &e["node"]["eventType"]).collect();
    assert_eq!(types, [&json!("AccountOpened"), &json!("MoneyDeposited")]);
}
