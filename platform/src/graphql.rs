//! GraphQL plumbing shared by the services: error codes, role guards, limits and the HTTP handler.
//!
//! Every error a client sees carries `extensions.code` from the closed set in
//! [`ledger::ErrorCode`], and every error about one input carries `extensions.field`, the
//! path of that input as the client wrote it (`../shared/API.md`, "Errors that every
//! operation shares"). Both are set in one place, [`ApiError`]'s conversion.
//!
//! A request goes through, in order: authentication (401), the body (JSON only, at most
//! [`REQUEST_BODY_BYTES_MAX`], no repeated keys), the document's size and nesting
//! ([`crate::document`], before any parser recurses), parsing, the input checks of
//! [`crate::input_check`], async-graphql's validation and execution. Errors are coded by
//! where they come from, never by their text: our resolvers and checks return
//! [`ApiError`]s with their own code; anything async-graphql raises itself is about the
//! request (a selection it cannot validate, a value it cannot coerce) and is VALIDATION.

use std::{net::SocketAddr, sync::Arc};

use async_graphql::{
    Context, ErrorExtensionValues, Executor, Guard, SchemaBuilder, ServerError, Variables,
};
use axum::{
    Extension, Json,
    body::Bytes,
    extract::{ConnectInfo, FromRequestParts, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use ledger::ErrorCode;
use serde_json::{Value, json};

use crate::{
    Capability,
    access_log::{Access, AccessLog},
    auth::{Authenticated, Principal, Role},
    document,
    input_check::InputSchema,
};

/// The deepest selection a query may nest.
pub const QUERY_DEPTH_MAX: usize = 16;
/// The most a query may cost; a connection costs its page size times its selection.
pub const QUERY_COMPLEXITY_MAX: usize = 20_000;
/// Nesting of input values and fragments (checked again after parsing; the document
/// scanner has bounded all nesting before).
pub const QUERY_RECURSIVE_DEPTH_MAX: usize = 32;
/// The longest `X-Correlation-Id` accepted from a client.
pub const CORRELATION_ID_LEN_MAX: usize = 128;
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";
/// The largest request body accepted: a batch of 1,000 operations (about 120 KiB as
/// variables) fits, and every other request is bounded by it.
pub const REQUEST_BODY_BYTES_MAX: usize = 256 * 1024;

/// A failed operation, as the client sees it: a stable code, a message that says what
/// is wrong in words a client developer understands, and the input it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    /// The rule that was broken, without the field's name.
    pub message: String,
    /// The path of the input concerned, as the client wrote it (`input.amount`), if one is.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Bad input: `field` is the input's path, `rule` says what it must be.
    pub fn validation(field: &str, rule: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Validation, rule.to_string()).at(field)
    }

    /// An amount that cannot be booked as written: `field` is its path.
    pub fn invalid_amount(field: &str, rule: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidAmount, rule.to_string()).at(field)
    }

    /// The same refusal, about the input at `path`.
    pub fn at(mut self, path: &str) -> Self {
        self.field = Some(path.to_string());
        self
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

    /// The message as the client reads it: `field: rule`, or the rule alone.
    pub fn client_message(&self) -> String {
        match &self.field {
            Some(field) => format!("{field}: {}", self.message),
            None => self.message.clone(),
        }
    }

    fn extensions(&self) -> ErrorExtensionValues {
        let mut extensions = ErrorExtensionValues::default();
        extensions.set("code", self.code.as_str());
        if let Some(field) = &self.field {
            extensions.set("field", field.as_str());
        }
        extensions
    }

    /// The GraphQL error object (`{"message", "extensions": {"code", "field"}}`).
    pub fn to_json(&self) -> Value {
        let mut extensions = json!({ "code": self.code.as_str() });
        if let Some(field) = &self.field {
            extensions["field"] = json!(field);
        }
        json!({ "message": self.client_message(), "extensions": extensions })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        async_graphql::Error {
            message: error.client_message(),
            source: None,
            extensions: Some(error.extensions()),
        }
    }
}

impl From<ApiError> for ServerError {
    fn from(error: ApiError) -> Self {
        let mut server = ServerError::new(error.client_message(), None);
        server.extensions = Some(error.extensions());
        server
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

/// Lets a field run only for callers holding `capability` ([`crate::policy`]); others get
/// FORBIDDEN.
pub struct RoleGuard {
    capability: Capability,
}

impl RoleGuard {
    pub const fn new(capability: Capability) -> Self {
        Self { capability }
    }
}

impl Guard for RoleGuard {
    /// A refusal is written to the access log (schema data [`AccessLog`]) under the
    /// field's name, with the arguments as given, before FORBIDDEN is answered.
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let request = RequestContext::of(ctx)?;
        let Err(refused) = self.capability.check(&request.principal) else {
            return Ok(());
        };
        match ctx.data_opt::<AccessLog>() {
            Some(log) => {
                let field = ctx.field();
                log.record_refusal(Access::refused(
                    request,
                    field.name().to_string(),
                    arguments_json(&field),
                    &refused,
                ))
                .await;
            }
            None => tracing::error!("the schema has no access log; a refusal is not recorded"),
        }
        Err(refused.into())
    }
}

/// Records the read of `query` with `arguments` by the caller of `ctx` in the access log
/// (schema data [`AccessLog`]) and waits for its row to be committed: call it before the
/// read's data is fetched. UNAVAILABLE when the row cannot be written, INTERNAL when the
/// schema has no access log: a read that is not recorded does not happen.
pub async fn record_read(
    ctx: &Context<'_>,
    query: &'static str,
    arguments: Value,
) -> Result<(), ApiError> {
    let request = RequestContext::of(ctx)?;
    let log = ctx
        .data_opt::<AccessLog>()
        .ok_or_else(|| ApiError::internal("the schema has no access log"))?;
    log.record(Access::of(request, query, arguments)).await?;
    Ok(())
}

/// A field's arguments as a JSON object, as far as they can be resolved (an argument that
/// does not resolve is left out: the refusal is recorded all the same).
fn arguments_json(field: &async_graphql::SelectionField<'_>) -> Value {
    let arguments = field.arguments().unwrap_or_default();
    Value::Object(
        arguments
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.into_json().ok()?)))
            .collect(),
    )
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

/// A GraphQL-shaped error answer with an HTTP status, for refusals before GraphQL runs.
pub fn error_response(status: StatusCode, error: &ApiError) -> Response {
    (status, Json(json!({ "errors": [error.to_json()] }))).into_response()
}

/// A GraphQL request as read from the body.
struct GraphQLBody {
    query: String,
    operation_name: Option<String>,
    variables: Variables,
}

/// Reads the body: JSON (by content type), an object with a string `query`, optional
/// `operationName` and `variables`; refusals are HTTP 400 (413 when too large).
fn read_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<GraphQLBody, (StatusCode, ApiError)> {
    let bad =
        |field: &str, rule: String| (StatusCode::BAD_REQUEST, ApiError::validation(field, rule));
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::new(
                ErrorCode::Validation,
                format!(
                    "send the request as JSON with 'Content-Type: application/json' (got {:?})",
                    content_type.chars().take(100).collect::<String>()
                ),
            ),
        ));
    }
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the request body is larger than {REQUEST_BODY_BYTES_MAX} bytes")
        } else {
            "the request body could not be read".to_string()
        };
        (status, ApiError::new(ErrorCode::Validation, message))
    })?;
    if body.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            ApiError::new(
                ErrorCode::Validation,
                "the request body is empty; send {\"query\": \"...\", \"variables\": {...}}",
            ),
        ));
    }
    let value = crate::json::from_slice_unique(&body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            ApiError::new(
                ErrorCode::Validation,
                format!("the request body is not valid JSON: {e}"),
            ),
        )
    })?;
    let Value::Object(mut object) = value else {
        return Err((
            StatusCode::BAD_REQUEST,
            ApiError::new(
                ErrorCode::Validation,
                "the request body must be a JSON object with a \"query\"",
            ),
        ));
    };
    let query = match object.remove("query") {
        Some(Value::String(query)) => query,
        Some(_) => return Err(bad("query", "must be a string".into())),
        None => return Err(bad("query", "is required".into())),
    };
    let operation_name = match object.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name),
        Some(_) => return Err(bad("operationName", "must be a string".into())),
    };
    let variables = match object.remove("variables") {
        None | Some(Value::Null) => Variables::default(),
        Some(value @ Value::Object(_)) => Variables::from_json(value),
        Some(_) => return Err(bad("variables", "must be a JSON object".into())),
    };
    Ok(GraphQLBody {
        query,
        operation_name,
        variables,
    })
}

/// Everything decided before async-graphql executes: the body, the document's bounds,
/// parsing and the inputs. Returns the request to execute.
/// The request to run, and the bounded label of what it runs (for metrics and logs).
fn prepare(
    inputs: &InputSchema,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(async_graphql::Request, String), (StatusCode, ApiError)> {
    let body = read_body(headers, body)?;
    let refuse = |error: ApiError| (StatusCode::OK, error);
    document::scan(&body.query)
        .map_err(|e| refuse(ApiError::new(ErrorCode::Validation, e.to_string())))?;
    let parsed = async_graphql::parser::parse_query(&body.query).map_err(|e| {
        let position = e
            .positions()
            .next()
            .map(|p| format!(" (line {}, column {})", p.line, p.column))
            .unwrap_or_default();
        let detail = e.to_string();
        let detail = detail
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('=') || l.starts_with("expected"))
            .map(|l| l.trim_start_matches('=').trim().to_string())
            .next()
            .unwrap_or_else(|| detail.lines().next().unwrap_or("").to_string());
        refuse(ApiError::new(
            ErrorCode::Validation,
            format!("the query does not parse{position}: {detail}"),
        ))
    })?;
    inputs
        .check(&parsed, body.operation_name.as_deref(), &body.variables)
        .map_err(refuse)?;
    let operation = inputs.operation_label(&parsed, body.operation_name.as_deref());
    let mut request = async_graphql::Request::new(body.query).variables(body.variables);
    if let Some(name) = body.operation_name {
        request = request.operation_name(name);
    }
    request.set_parsed_query(parsed);
    Ok((request, operation))
}

/// `POST /graphql`: authenticates, reads and checks the request, runs it with a
/// [`RequestContext`], and makes sure every error carries a code. Needs `Extension<E>`
/// with the schema and `Extension<Arc<InputSchema>>` with its inputs.
pub async fn graphql_handler<E>(
    Extension(executor): Extension<E>,
    Extension(inputs): Extension<Arc<InputSchema>>,
    context: RequestContext,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response
where
    E: Executor + Clone,
{
    let correlation_id = context.correlation_id.clone();
    let actor = context.principal.actor.clone();
    let started = std::time::Instant::now();
    let (mut http, operation, outcome) = match prepare(&inputs, &headers, body) {
        Err((StatusCode::OK, error)) => {
            let outcome = error.code.as_str().to_string();
            let response = async_graphql::Response::from_errors(vec![error.into()]);
            let http = async_graphql_axum::GraphQLResponse::from(response).into_response();
            (http, "unparsed".to_string(), outcome)
        }
        Err((status, error)) => (
            error_response(status, &error),
            "unparsed".to_string(),
            error.code.as_str().to_string(),
        ),
        Ok((request, operation)) => {
            let mut response = executor.execute(request.data(context)).await;
            for error in &mut response.errors {
                assign_code(error);
            }
            let outcome = response
                .errors
                .first()
                .and_then(|e| e.extensions.as_ref())
                .and_then(|e| e.get("code"))
                .map_or_else(
                    || "ok".to_string(),
                    |code| code.to_string().trim_matches('"').to_string(),
                );
            let http = async_graphql_axum::GraphQLResponse::from(response).into_response();
            (http, operation, outcome)
        }
    };
    metrics::counter!(
        "folio_graphql_requests_total",
        "operation" => operation.clone(),
        "outcome" => outcome,
    )
    .increment(1);
    metrics::histogram!("folio_graphql_request_duration_seconds", "operation" => operation.clone())
        .record(started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        http.headers_mut().insert(CORRELATION_ID_HEADER, value);
    }
    http.extensions_mut()
        .insert(crate::observability::RequestFacts {
            actor: Some(actor),
            operation: Some(operation),
        });
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

/// Gives an error from async-graphql itself the code VALIDATION. Ours all carry a code
/// already (resolvers return [`ApiError`]); one that does not was raised by the engine
/// while validating or coercing the request, so it is about the request.
pub fn assign_code(error: &mut ServerError) {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if has_code {
        return;
    }
    tracing::debug!(message = %error.message, "request refused by the GraphQL engine");
    error
        .extensions
        .get_or_insert_with(ErrorExtensionValues::default)
        .set("code", ErrorCode::Validation.as_str());
    add_scalar_form(error);
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

/// `GET /` (and `GET /graphql`): GraphiQL, pointed at `/graphql`, with every file it loads
/// served by Folio itself ([`crate::graphiql`]). Paste a token into its headers pane.
pub async fn graphiql() -> Response {
    crate::graphiql::page_handler().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_carry_their_code_and_field_into_graphql() {
        let error: async_graphql::Error =
            ApiError::validation("input.amount", "must be greater than zero").into();
        assert_eq!(error.message, "input.amount: must be greater than zero");
        let extensions = error.extensions.expect("extensions");
        assert_eq!(
            extensions.get("code").cloned(),
            Some(async_graphql::Value::from("VALIDATION"))
        );
        assert_eq!(
            extensions.get("field").cloned(),
            Some(async_graphql::Value::from("input.amount"))
        );
        let plain: async_graphql::Error = ApiError::unavailable("the event store").into();
        assert!(plain.extensions.expect("extensions").get("field").is_none());
    }

    #[test]
    fn engine_errors_are_validation_and_ours_keep_their_code() {
        let mut engine = ServerError::new("Variable i is not defined.", None);
        engine.path = vec![async_graphql::PathSegment::Field("deposit".into())];
        assign_code(&mut engine);
        assert_eq!(
            engine
                .extensions
                .as_ref()
                .and_then(|e| e.get("code").cloned()),
            Some(async_graphql::Value::from("VALIDATION"))
        );

        let mut ours: ServerError = ApiError::internal("boom").into();
        assign_code(&mut ours);
        assert_eq!(ours.message, "internal error");
        assert_eq!(
            ours.extensions
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
