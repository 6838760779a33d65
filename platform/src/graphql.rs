//! GraphQL plumbing shared by the services: error codes, role guards, limits and the HTTP handler.
//!
//! Every error a client sees carries `extensions.code` from the closed set in
//! [`ledger::ErrorCode`]. Resolvers return [`ApiError`]; errors raised by
//! async-graphql itself (a malformed query, a value that is not a `Decimal`, a
//! query over the depth or complexity limit) are given the code VALIDATION here,
//! and anything else is logged and answered as INTERNAL without details.

use std::net::SocketAddr;

use async_graphql::{
    Context, ErrorExtensionValues, Executor, Guard, Pos, SchemaBuilder, ServerError,
    http::GraphiQLSource,
};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::{
    Extension,
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, HeaderValue, request::Parts},
    response::{Html, IntoResponse, Response},
};
use ledger::ErrorCode;

use crate::auth::{Authenticated, Principal, Role};

/// The deepest selection a query may nest.
pub const QUERY_DEPTH_MAX: usize = 16;
/// The most a query may cost; a connection costs its page size times its selection.
pub const QUERY_COMPLEXITY_MAX: usize = 20_000;
/// Nesting of input values and fragments.
pub const QUERY_RECURSIVE_DEPTH_MAX: usize = 32;
/// The longest `X-Correlation-Id` accepted from a client.
pub const CORRELATION_ID_LEN_MAX: usize = 128;
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";

/// A failed operation, as the client sees it: a stable code and a message that names the field and rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Bad input: `field` names the input field, `rule` says what it must be.
    pub fn validation(field: &str, rule: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Validation, format!("{field}: {rule}"))
    }

    pub fn forbidden(needed: &[Role]) -> Self {
        let names: Vec<&str> = needed.iter().map(Role::as_str).collect();
        Self::new(
            ErrorCode::Forbidden,
            format!("this operation needs the role {}", names.join(" or ")),
        )
    }

    /// A dependency is down; `what` says which (never how it failed).
    pub fn unavailable(what: &str) -> Self {
        Self::new(
            ErrorCode::Unavailable,
            format!("{what} is unavailable; retry shortly"),
        )
    }

    /// Logs `error` and answers INTERNAL without details.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        let mut extensions = ErrorExtensionValues::default();
        extensions.set("code", error.code.as_str());
        async_graphql::Error {
            message: error.message,
            source: None,
            extensions: Some(extensions),
        }
    }
}

/// Who is asking and in which conversation; every GraphQL request carries one.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub principal: Principal,
    pub correlation_id: String,
    pub client_addr: Option<String>,
}

impl RequestContext {
    pub fn of<'a>(ctx: &Context<'a>) -> Result<&'a RequestContext, ApiError> {
        ctx.data::<RequestContext>()
            .map_err(|_| ApiError::internal("request context missing"))
    }
}

/// Lets a field run only for callers holding one of `roles`; others get FORBIDDEN.
pub struct RoleGuard {
    roles: &'static [Role],
}

impl RoleGuard {
    pub const fn new(roles: &'static [Role]) -> Self {
        Self { roles }
    }
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let request = RequestContext::of(ctx)?;
        if request.principal.has_any(self.roles) {
            Ok(())
        } else {
            Err(ApiError::forbidden(self.roles).into())
        }
    }
}

/// Applies the shared limits to a schema under construction.
pub fn with_limits<Q, M, S>(builder: SchemaBuilder<Q, M, S>) -> SchemaBuilder<Q, M, S> {
    builder
        .limit_depth(QUERY_DEPTH_MAX)
        .limit_complexity(QUERY_COMPLEXITY_MAX)
        .limit_recursive_depth(QUERY_RECURSIVE_DEPTH_MAX)
}

/// Extracts who is asking: the authenticated caller (or HTTP 401), the correlation id and
/// the client address. Needs an `Extension<Arc<TokenKeys>>` layer.
impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        let client_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(Self {
            principal,
            correlation_id: correlation_id(&parts.headers),
            client_addr,
        })
    }
}

/// `POST /graphql`: authenticates, runs the operation with a [`RequestContext`], and
/// makes sure every error carries a code. Needs `Extension<E>` with the schema.
pub async fn graphql_handler<E>(
    Extension(executor): Extension<E>,
    context: RequestContext,
    request: GraphQLRequest,
) -> Response
where
    E: Executor + Clone,
{
    let correlation_id = context.correlation_id.clone();
    let mut response = executor.execute(request.into_inner().data(context)).await;
    for error in &mut response.errors {
        assign_code(error);
    }
    let mut http = GraphQLResponse::from(response).into_response();
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        http.headers_mut().insert(CORRELATION_ID_HEADER, value);
    }
    http
}

/// The client's correlation id if it sent a usable one, else a new one.
pub fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get(CORRELATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= CORRELATION_ID_LEN_MAX
                && v.chars().all(|c| c.is_ascii_graphic())
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn has_code(error: &ServerError) -> bool {
    error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some())
}

fn set_code(error: &mut ServerError, code: ErrorCode) {
    error
        .extensions
        .get_or_insert_with(ErrorExtensionValues::default)
        .set("code", code.as_str());
}

fn assign_code(error: &mut ServerError) {
    if has_code(error) {
        return;
    }
    let from_input = error.path.is_empty()
        || error.message.starts_with("Failed to parse")
        || error.message.starts_with("Invalid value");
    if from_input {
        add_scalar_form(error);
        set_code(error, ErrorCode::Validation);
    } else {
        tracing::error!(message = %error.message, path = ?error.path, "resolver error without a code");
        error.message = "internal error".to_string();
        error.locations = Vec::<Pos>::new();
        set_code(error, ErrorCode::Internal);
    }
}

/// Says how a scalar is written when a validation error names it.
fn add_scalar_form(error: &mut ServerError) {
    for (name, form) in crate::scalars::SCALAR_FORMS {
        if error.message.contains(&format!("expected type \"{name}\"")) {
            error.message.push_str(&format!(" ({form})"));
            return;
        }
    }
}

/// `GET /`: GraphiQL, pointed at `/graphql`. Set the `Authorization` header in its headers tab.
pub async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .title("Folio")
            .finish(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_carry_their_code_into_graphql() {
        let error: async_graphql::Error =
            ApiError::validation("amount", "must be greater than zero").into();
        assert_eq!(error.message, "amount: must be greater than zero");
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code").cloned());
        assert_eq!(code, Some(async_graphql::Value::from("VALIDATION")));
    }

    #[test]
    fn errors_from_parsing_are_validation_and_others_are_internal_without_details() {
        let mut parse = ServerError::new("Unknown field \"balanse\"", None);
        assign_code(&mut parse);
        assert_eq!(
            parse
                .extensions
                .as_ref()
                .and_then(|e| e.get("code").cloned()),
            Some(async_graphql::Value::from("VALIDATION"))
        );

        let mut leaked = ServerError::new("connection reset by peer at 10.0.0.3", None);
        leaked.path = vec![async_graphql::PathSegment::Field("deposit".into())];
        assign_code(&mut leaked);
        assert_eq!(leaked.message, "internal error");
        assert_eq!(
            leaked
                .extensions
                .as_ref()
                .and_then(|e| e.get("code").cloned()),
            Some(async_graphql::Value::from("INTERNAL"))
        );
    }

    #[test]
    fn correlation_ids_are_taken_from_the_client_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert(CORRELATION_ID_HEADER, HeaderValue::from_static("batch-42"));
        assert_eq!(correlation_id(&headers), "batch-42");
        headers.insert(CORRELATION_ID_HEADER, HeaderValue::from_static("has space"));
        assert_ne!(correlation_id(&headers), "has space");
    }
}
