//! What operators watch: every metric Folio exports, described once (Prometheus `HELP`
//! and `TYPE` lines), histograms with buckets, and one log line per HTTP request.
//!
//! Metrics are recorded where things happen (`metrics::counter!` and friends); this module
//! only names them, so `/metrics` explains itself. A metric recorded but not listed here
//! has no `HELP` line: [`METRICS`] is checked against the code by a test.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};
use metrics::Unit;

use crate::graphql::CORRELATION_ID_HEADER;

/// What a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric: its name, kind, unit and what it says.
pub const METRICS: &[(&str, Kind, Option<Unit>, &str)] = &[
    (
        "folio_http_request_duration_seconds",
        Kind::Histogram,
        Some(Unit::Seconds),
        "HTTP requests by method, route and status class, from the first byte read to the response",
    ),
    (
        "folio_graphql_requests_total",
        Kind::Counter,
        None,
        "GraphQL requests by operation (the root field run) and outcome (ok, or the first error code), refusals at the edge included",
    ),
    (
        "folio_graphql_request_duration_seconds",
        Kind::Histogram,
        Some(Unit::Seconds),
        "GraphQL requests by operation, from the parsed request to the answer",
    ),
    (
        "folio_commands_total",
        Kind::Counter,
        None,
        "Commands the accounts service decided, by command and outcome (ok, or the refusal's error code)",
    ),
    (
        "folio_events_appended_total",
        Kind::Counter,
        None,
        "Events appended to the event store",
    ),
    (
        "folio_group_commit_operations",
        Kind::Histogram,
        None,
        "Commands decided and appended together in one transaction (group commit)",
    ),
    (
        "folio_writer_streams_caught_up_total",
        Kind::Counter,
        None,
        "Account streams the writer read again because another process had written to them",
    ),
    (
        "folio_holds_expired_total",
        Kind::Counter,
        None,
        "Holds the sweep recorded as expired",
    ),
    (
        "folio_relay_published_events_total",
        Kind::Counter,
        None,
        "Events the relay published to JetStream",
    ),
    (
        "folio_relay_lag_events",
        Kind::Gauge,
        None,
        "Committed events the relay has not published yet",
    ),
    (
        "folio_relay_lag_seconds",
        Kind::Gauge,
        Some(Unit::Seconds),
        "Age of the oldest event the relay has not published yet",
    ),
    (
        "folio_relay_horizon_held_seconds",
        Kind::Gauge,
        Some(Unit::Seconds),
        "How long the transaction holding publication back has been open (0: none past the threshold)",
    ),
    (
        "folio_checkpoints_signed_total",
        Kind::Counter,
        None,
        "Checkpoints of the global digest signed",
    ),
    (
        "folio_projection_applied_events_total",
        Kind::Counter,
        None,
        "Events the projection applied to the read models",
    ),
    (
        "folio_projection_parked_events",
        Kind::Gauge,
        None,
        "Events waiting for their predecessor before the projection applies them",
    ),
    (
        "folio_projection_unreadable_messages_total",
        Kind::Counter,
        None,
        "Messages the projection could not read (an event version from a newer release)",
    ),
    (
        "folio_projection_integrity_alerts_total",
        Kind::Counter,
        None,
        "Events the projection refused because their hash chain did not match",
    ),
    (
        "folio_projection_lag_events",
        Kind::Gauge,
        None,
        "Messages in the stream the projection has not applied yet",
    ),
    (
        "folio_projection_lag_seconds",
        Kind::Gauge,
        Some(Unit::Seconds),
        "Age of the oldest message the projection has not applied yet",
    ),
    (
        "folio_access_log_rows_total",
        Kind::Counter,
        None,
        "Rows recorded in the access log, by outcome (GRANTED reads, REFUSED attempts)",
    ),
    (
        "folio_access_log_batch_rows",
        Kind::Histogram,
        None,
        "Access-log rows written together in one transaction",
    ),
];

/// Histogram buckets for durations in seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Histogram buckets for batch sizes.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
];

/// Gives every metric of [`METRICS`] its `HELP` line (the exporter adds `TYPE`).
pub fn describe_metrics() {
    for &(name, kind, unit, help) in METRICS {
        match (kind, unit) {
            (Kind::Counter, Some(unit)) => metrics::describe_counter!(name, unit, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(name, unit, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(name, unit, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

/// What a handler tells the request log about the request it served: who asked and which
/// operation ran. Put in the response's extensions.
#[derive(Clone, Debug, Default)]
pub struct RequestFacts {
    pub actor: Option<String>,
    pub operation: Option<String>,
}

/// Times every request (`folio_http_request_duration_seconds`) and logs one line for it at
/// INFO: method, route, operation, status, duration, actor and correlation id. Never the
/// query string, headers or body (they may carry tokens and personal data).
pub async fn log_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    metrics::histogram!(
        "folio_http_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route.clone(),
        "status" => format!("{}xx", status.as_u16() / 100),
    )
    .record(elapsed.as_secs_f64());
    let facts = response.extensions().get::<RequestFacts>();
    let correlation_id = response
        .headers()
        .get(CORRELATION_ID_HEADER)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .unwrap_or("");
    tracing::info!(
        target: "folio::request",
        method = %method,
        route = %route,
        operation = facts.and_then(|f| f.operation.as_deref()).unwrap_or(""),
        status = status.as_u16(),
        duration_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        actor = facts.and_then(|f| f.actor.as_deref()).unwrap_or(""),
        correlation_id,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, fs, path::Path};

    use super::*;

    /// Every `metrics::counter!("…")`, `gauge!` and `histogram!` name in the crates' sources.
    fn recorded_names() -> BTreeSet<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut names = BTreeSet::new();
        let mut dirs = vec![
            root.join("accounts/src"),
            root.join("reporting/src"),
            root.join("platform/src"),
            root.join("src"),
        ];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir).expect("a source directory") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = fs::read_to_string(&path).expect("a source file");
                    for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                        for (index, _) in text.match_indices(macro_name) {
                            let rest = text[index + macro_name.len()..].trim_start();
                            if let Some(quoted) = rest.strip_prefix('"')
                                && quoted.starts_with("folio_")
                                && let Some(end) = quoted.find('"')
                            {
                                names.insert(quoted[..end].to_string());
                            }
                        }
                    }
                }
            }
        }
        names
    }

    #[test]
    fn every_recorded_metric_is_described() {
        let described: BTreeSet<String> = METRICS.iter().map(|m| m.0.to_string()).collect();
        let recorded = recorded_names();
        assert!(
            recorded.len() > 10,
            "the scan found the metrics: {recorded:?}"
        );
        let undescribed: Vec<&String> = recorded.difference(&described).collect();
        assert!(undescribed.is_empty(), "no HELP line for {undescribed:?}");
    }
}
