//! The plain HTTP surface and the request limits: health, readiness, GraphiQL, metrics,
//! the request body limit and the query depth limit.

use platform::graphql::{QUERY_DEPTH_MAX, REQUEST_BODY_BYTES_MAX};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{Gql, assert_message_names, error_code, spawn_app};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("the platform answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("a body"), "ok");
}

#[tokio::test]
async fn readyz_reports_postgres_up() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("the platform answers");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["ready"], json!(true), "{body}");
    assert_eq!(body["checks"]["postgres"]["ok"], json!(true), "{body}");
    assert_eq!(body["checks"]["nats"]["ok"], json!(true), "{body}");
}

#[tokio::test]
async fn graphiql_is_served_at_the_root() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .expect("the platform answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.expect("a body");
    assert!(html.to_lowercase().contains("graphiql"), "{html}");
    assert!(html.contains("/graphql"), "GraphiQL points at /graphql");
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_refused() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let before = app.written().await;
    let body = json!({
        "query": "mutation($input: DepositInput!) { deposit(input: $input) { position } }",
        "variables": {
            "input": { "accountId": account.id, "amount": "1.00", "idempotencyKey": "k" },
            "padding": "x".repeat(REQUEST_BODY_BYTES_MAX),
        },
    });
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(app.teller())
        .json(&body)
        .send()
        .await
        .expect("the platform answers");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.written().await, before);

    // Just under the limit is fine.
    let small = app
        .post_graphql(
            Some(app.teller()),
            &[],
            &json!({ "query": "{ __typename }", "variables": { "padding": "x".repeat(60 * 1024) } }),
        )
        .await;
    assert_eq!(small.status, StatusCode::OK, "{}", small.body);
    assert_eq!(small.data("__typename"), &json!("Query"));
}

/// `{ __schema { types { fields { type { ofType { ... { name } } } } } } }`, `depth` fields deep.
fn introspection_of_depth(depth: usize) -> String {
    let fixed = ["__schema", "types", "fields", "type"];
    let nested = depth - fixed.len() - 1;
    let mut query = String::from("{");
    for field in fixed {
        query.push_str(&format!(" {field} {{"));
    }
    for _ in 0..nested {
        query.push_str(" ofType {");
    }
    query.push_str(" name");
    query.push_str(&" }".repeat(fixed.len() + nested));
    query.push_str(" }");
    query
}

#[tokio::test]
async fn a_query_deeper_than_the_limit_is_a_validation_error() {
    let app = spawn_app().await;
    let allowed: Gql = app
        .execute(
            Some(app.teller()),
            &[],
            &introspection_of_depth(QUERY_DEPTH_MAX),
            json!({}),
        )
        .await;
    assert!(allowed.body.get("errors").is_none(), "{}", allowed.body);

    let too_deep = app
        .execute(
            Some(app.teller()),
            &[],
            &introspection_of_depth(QUERY_DEPTH_MAX + 1),
            json!({}),
        )
        .await;
    assert_eq!(too_deep.code(), Some("VALIDATION"), "{}", too_deep.body);
    assert_message_names(&too_deep, "deep");
    assert!(too_deep.body["data"].is_null(), "{}", too_deep.body);
}

#[tokio::test]
async fn a_misspelt_field_is_a_validation_error_naming_it() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let (status, body) = app
        .graphql(
            Some(app.teller()),
            "query($id: UUID!) { account(id: $id) { balanse } }",
            json!({ "id": account.id }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("balanse")),
        "{body}"
    );
}

/// The sum of a Prometheus counter's samples whose labels include every one of `labels`.
fn counter(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let matches = (series == name || series.starts_with(&format!("{name}{{")))
                && labels.iter().all(|label| series.contains(label));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[tokio::test]
async fn metrics_count_the_commands_served() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await;
    let scrape = || async {
        let response = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("the platform answers");
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("a body")
    };
    let labels = ["command=\"deposit\"", "outcome=\"ok\""];
    let before = counter(&scrape().await, "folio_commands_total", &labels);
    app.deposited(account.id, "1.00").await;
    let after = counter(&scrape().await, "folio_commands_total", &labels);
    // The recorder is shared by every app in this process: other tests may add to it too.
    assert!(after >= before + 1.0, "before {before}, after {after}");
}
