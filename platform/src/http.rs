//! HTTP plumbing shared by the services: common layers, health, readiness, metrics, serving.

use std::{sync::Arc, sync::OnceLock, time::Duration};

use async_graphql::Executor;
use axum::{
    Extension, Json, Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures::future::BoxFuture;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::{
    ApiError,
    access_log::AccessLog,
    auth::TokenKeys,
    graphql::{REQUEST_BODY_BYTES_MAX, error_response, graphiql, graphql_handler},
    input_check::InputSchema,
};
/// How long a readiness probe waits for a dependency before calling it down.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Computes the dependency checks `/readyz` reports.
pub type Readiness = Arc<dyn Fn() -> BoxFuture<'static, Vec<Check>> + Send + Sync>;

/// The routes every service serves: `POST /graphql`, GraphiQL at `/`, `/healthz`,
/// `/readyz` and `/metrics`. `sdl` is the schema's SDL, from which the input checks are
/// built. Add service-specific routes, then [`with_common_layers`].
pub fn service_routes<E>(executor: E, sdl: &str, readiness: Readiness) -> Router
where
    E: Executor + Clone,
{
    let inputs = Arc::new(InputSchema::from_sdl(sdl));
    let ready = move || {
        let readiness = readiness.clone();
        async move { readiness_response(&readiness().await) }
    };
    Router::new()
        .route("/graphql", post(graphql_handler::<E>).get(graphiql))
        .route("/", get(graphiql))
        .merge(crate::graphiql::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .layer(Extension(executor))
        .layer(Extension(inputs))
}

/// Adds what every service's router needs: the token keys, the body limit, an answer in
/// the contract's shape for a handler that panics (the process carries on), and request
/// tracing (outermost), and the access log that records refused credentials (HTTP 401).
pub fn with_common_layers(router: Router, keys: Arc<TokenKeys>, access_log: AccessLog) -> Router {
    router
        .layer(Extension(keys))
        .layer(Extension(access_log))
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn(
            crate::observability::log_requests,
        ))
}

/// HTTP 500 with a GraphQL-shaped INTERNAL error; the panic is logged, never sent.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &ApiError::internal(format!("a request handler panicked: {detail}")),
    )
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> &'static str {
    "ok"
}

/// One dependency's state, as `/readyz` reports it.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn up(name: &'static str) -> Self {
        Self {
            name,
            ok: true,
            detail: "ok".into(),
        }
    }

    pub fn down(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok: false,
            detail: detail.into(),
        }
    }
}

/// `GET /readyz` body: 200 when every check is up, else 503, with each check named.
pub fn readiness_response(checks: &[Check]) -> Response {
    let ready = checks.iter().all(|c| c.ok);
    let body = json!({
        "ready": ready,
        "checks": checks
            .iter()
            .map(|c| (c.name.to_string(), json!({ "ok": c.ok, "detail": c.detail })))
            .collect::<serde_json::Map<_, _>>(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Checks that PostgreSQL answers a trivial query within [`READINESS_TIMEOUT`].
pub async fn check_postgres(pool: &sqlx::PgPool) -> Check {
    match tokio::time::timeout(READINESS_TIMEOUT, sqlx::query("select 1").execute(pool)).await {
        Ok(Ok(_)) => Check::up("postgres"),
        Ok(Err(e)) => Check::down("postgres", e.to_string()),
        Err(_) => Check::down("postgres", "no answer within 2s"),
    }
}

/// The `publication` readiness check from a relay status: down, naming the transaction,
/// while one holds committed events back; up (still naming it) while one has been open
/// that long but nothing waits behind it yet; `None` when no status is known.
pub fn publication_check(status: Option<&ledger::status::RelayStatus>) -> Option<Check> {
    let status = status?;
    Some(match &status.blocker {
        None => Check::up("publication"),
        Some(blocker) => {
            let who = format!(
                "the open transaction of backend pid {} (database {}, state {}, open {:.0}s)",
                blocker.pid,
                blocker.database.as_deref().unwrap_or("?"),
                blocker.state.as_deref().unwrap_or("?"),
                blocker.open_for_secs,
            );
            if blocker.events_waiting {
                Check::down(
                    "publication",
                    format!(
                        "held back by {who}; events committed after it are not published until it ends"
                    ),
                )
            } else {
                Check {
                    name: "publication",
                    ok: true,
                    detail: format!(
                        "{who} will hold publication back; nothing is waiting behind it yet"
                    ),
                }
            }
        }
    })
}

/// Checks that the NATS connection is established.
pub fn check_nats(client: &async_nats::Client) -> Check {
    match client.connection_state() {
        async_nats::connection::State::Connected => Check::up("nats"),
        state => Check::down("nats", format!("{state}")),
    }
}

/// The process-wide Prometheus recorder; installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(crate::observability::DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("folio_group_commit_operations".into()),
                    crate::observability::BATCH_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("folio_access_log_batch_rows".into()),
                    crate::observability::BATCH_BUCKETS,
                )
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; metrics then go there.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        crate::observability::describe_metrics();
        handle
    })
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics() -> String {
    metrics_handle().render()
}

/// The most connections one process serves at once; further clients wait in the
/// listen backlog (a client cannot exhaust the process's file descriptors).
pub const CONNECTIONS_MAX: usize = 2_048;
/// How long a client has to send a request's headers, from its first byte (or from
/// opening the connection): a client that never finishes is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections still serving a request get to finish at shutdown.
pub const SHUTDOWN_CONNECTIONS_WAIT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, giving every request its
/// client's address (`ConnectInfo<SocketAddr>`). At most [`CONNECTIONS_MAX`] connections
/// at once, each given [`HEADER_READ_TIMEOUT`] to send a request's headers; then in-flight
/// requests get [`SHUTDOWN_CONNECTIONS_WAIT`] to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::{conn::auto::Builder, graceful::GracefulShutdown},
        service::TowerToHyperService,
    };
    use tower::ServiceExt;

    let permits = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a client gone before accept: pause, then go on.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(
            move |request: axum::http::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo(address));
                request
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = watched.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_CONNECTIONS_WAIT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at shutdown were closed");
    }
    Ok(())
}
