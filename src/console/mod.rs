//! The web console at `/console`: finance and compliance staff find accounts, read balances
//! and statements, review the audit trail and the access log, and check integrity in a
//! browser, with every asset served by Folio itself (nothing is fetched from another host).
//!
//! Pages are rendered on the server with maud (docs/architecture.md, "The console"). Every
//! read goes through the same schema as `POST /graphql`, so the same role guards, the same
//! reporting gate and the same access-log rows apply; CSV downloads call the same report
//! functions as `/reports/*.csv`.
//!
//! Sign-in takes a bearer token (minted with `folio token`) in a form and keeps it in an
//! HttpOnly, SameSite=Strict cookie scoped to `/console` that ends no later than the token
//! does. Forms that change state (sign-in, sign-out) carry a CSRF token that must equal the
//! `folio_csrf` cookie (double submit). Tokens travel only in POST bodies and cookies, never
//! in URLs, so they reach neither the request log nor browser history.

mod controls;
mod pages;
mod session;
mod views;

use std::sync::Arc;

use axum::{
    Extension, Router,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use futures::future::BoxFuture;
use ledger::ErrorCode;
use platform::{ApiError, RequestContext, access_log::Access};
use reporting::state::ReportingState;
use serde_json::Value;

use session::Session;
pub use session::{CSRF_COOKIE, SESSION_COOKIE};
use views::Section;

/// Runs one GraphQL request against the process's schema (the merged one in `folio up`,
/// the reporting one in `folio reporting`).
type Execute = Arc<
    dyn Fn(async_graphql::Request) -> BoxFuture<'static, async_graphql::Response> + Send + Sync,
>;

/// What the console's pages read through.
#[derive(Clone)]
pub struct Console {
    execute: Execute,
    reporting: ReportingState,
    /// Whether this process runs the accounts service: an account's holds and available
    /// balance, the latest signed checkpoint, verification and audit proofs come from it.
    accounts: bool,
}

impl Console {
    /// A console over `executor` (a GraphQL schema), reading CSV reports from `reporting`;
    /// `accounts` says whether the schema has the accounts service's queries.
    pub fn new<E>(executor: E, reporting: ReportingState, accounts: bool) -> Self
    where
        E: async_graphql::Executor + Clone,
    {
        let execute: Execute = Arc::new(move |request| {
            let executor = executor.clone();
            Box::pin(async move { executor.execute(request).await })
        });
        Self {
            execute,
            reporting,
            accounts,
        }
    }

    /// The page of `section` refused to the signed-in caller for `error` (their roles do not
    /// allow it): the attempt is written to the access log under the page's route
    /// (`GET /console/audit`), then the page says why.
    async fn refuse(
        &self,
        session: &Session,
        route: &'static str,
        section: Section,
        title: &str,
        error: ApiError,
    ) -> Response {
        self.reporting
            .access_log
            .record_refusal(Access::refused(
                &session.request,
                route,
                Value::Object(Default::default()),
                &error,
            ))
            .await;
        views::refused(session, section, title, &error.into())
    }

    /// Runs `query` with `variables` as the signed-in caller. The answer's data, or the
    /// first error as a [`Refusal`] (codes assigned as `POST /graphql` assigns them).
    async fn query(
        &self,
        request: &RequestContext,
        query: &str,
        variables: Value,
    ) -> Result<Value, Refusal> {
        let graphql = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables))
            .data(request.clone());
        let mut response = (self.execute)(graphql).await;
        if let Some(error) = response.errors.first_mut() {
            platform::graphql::assign_code(error);
            let extension = |name: &str| {
                error
                    .extensions
                    .as_ref()
                    .and_then(|e| e.get(name))
                    .map(|v| v.to_string().trim_matches('"').to_string())
            };
            let code = extension("code").unwrap_or_else(|| "INTERNAL".into());
            return Err(Refusal {
                code: ErrorCode::ALL
                    .into_iter()
                    .find(|c| c.as_str() == code)
                    .unwrap_or(ErrorCode::Internal),
                message: error.message.clone(),
                field: extension("field"),
            });
        }
        response.data.into_json().map_err(|e| Refusal {
            code: ErrorCode::Internal,
            message: e.to_string(),
            field: None,
        })
    }
}

/// Why a page could not be shown: the API's error, as the page explains it.
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self.code {
            ErrorCode::Validation => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::AccountNotFound
            | ErrorCode::AdjustmentNotFound
            | ErrorCode::HoldNotFound
            | ErrorCode::MovementNotFound => StatusCode::NOT_FOUND,
            ErrorCode::StaleRead | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            // A rule of the ledger said no (SELF_APPROVAL, INSUFFICIENT_FUNDS...).
            _ => StatusCode::CONFLICT,
        }
    }

    pub(crate) fn validation(field: &str, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::Validation,
            message: message.into(),
            field: Some(field.to_string()),
        }
    }
}

impl From<platform::ApiError> for Refusal {
    fn from(error: platform::ApiError) -> Self {
        Self {
            code: error.code,
            message: error.client_message(),
            field: error.field,
        }
    }
}

/// The console's routes; needs `Extension<Arc<TokenKeys>>` (as every service router has).
pub fn routes(console: Console) -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/accounts") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/accounts") }),
        )
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/accounts", get(pages::accounts))
        .route("/console/accounts/{id}", get(pages::account))
        .route("/console/balances", get(pages::balances))
        .route("/console/audit", get(pages::audit))
        .route("/console/access", get(pages::access))
        .route("/console/adjustments", get(controls::adjustments))
        .route("/console/adjustments/{id}/decision", post(controls::decide))
        .route("/console/periods", get(controls::periods))
        .route("/console/periods/report", get(controls::period_report))
        .route("/console/integrity", get(pages::integrity))
        .route("/console/integrity/proof", get(pages::proof))
        .route("/console/reports/{name}", get(pages::report))
        .route("/console/console.css", get(stylesheet))
        .layer(Extension(console))
        .layer(axum::middleware::map_response(protect))
}

/// Headers every console answer carries: pages are not cached (they show balances and the
/// audit trail), not framed, and may load nothing but this server's own files.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The console's stylesheet, embedded in the binary.
async fn stylesheet() -> Response {
    let mut response = include_str!("console.css").into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}
