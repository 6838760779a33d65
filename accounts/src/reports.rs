//! `GET /reports/period.json?periodEnd=...` (../shared/API.md, "Period close"): the signed
//! report of a closed period, byte for byte as it was signed, for `folio verify-report`.
//! Same authentication and roles as `periodClose` (auditor, supervisor); every download and
//! every refused attempt is written to the access log as `period.json`.

use axum::{
    Extension, Router,
    extract::Query,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use ledger::ErrorCode;
use platform::{
    ApiError, Capability, RequestContext,
    access_log::{Access, AccessLog, query_names},
    graphql::error_response,
};
use serde_json::Value;

use crate::{graphql::PeriodData, periods};

/// The report routes; needs an `Extension<PeriodData>` and the token keys' layers.
pub fn routes(periods: PeriodData) -> Router {
    Router::new()
        .route("/reports/period.json", get(period_json))
        .layer(Extension(periods))
}

fn refused(error: ApiError) -> Response {
    let status = match error.code {
        ErrorCode::Validation => StatusCode::BAD_REQUEST,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::AccountNotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(status, &error)
}

async fn period_json(
    request: RequestContext,
    Extension(data): Extension<PeriodData>,
    Extension(log): Extension<AccessLog>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let arguments = Value::Object(
        params
            .iter()
            .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
            .collect(),
    );
    if let Err(error) = Capability::ReadPeriodReports.check(&request.principal) {
        log.record_refusal(Access::refused(
            &request,
            query_names::PERIOD_JSON,
            arguments,
            &error,
        ))
        .await;
        return refused(error);
    }
    let period_end = match params.as_slice() {
        [(name, value)] if name == "periodEnd" => {
            match chrono::DateTime::parse_from_rfc3339(value) {
                Ok(end) => end.with_timezone(&chrono::Utc),
                Err(_) => {
                    return refused(ApiError::validation(
                        "periodEnd",
                        "must be an RFC 3339 instant, e.g. 2026-03-31T23:59:59.999999Z",
                    ));
                }
            }
        }
        _ => {
            return refused(ApiError::validation(
                "periodEnd",
                "give exactly one parameter, periodEnd",
            ));
        }
    };
    if let Err(error) = log
        .record(Access::of(&request, query_names::PERIOD_JSON, arguments))
        .await
    {
        return refused(error);
    }
    match periods::period_close(&data.pool, period_end).await {
        Ok(Some(close)) => {
            tracing::info!(actor = %request.principal.actor, %period_end, "period report read");
            let mut response = close.signed.to_file().into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Ok(None) => {
            let error = ApiError::new(
                ErrorCode::Validation,
                format!(
                    "no period closed at {}",
                    crate::domain::instant(&period_end)
                ),
            )
            .at("periodEnd");
            error_response(StatusCode::NOT_FOUND, &error)
        }
        Err(error) if error.is_unavailable() => refused(ApiError::unavailable("the event store")),
        Err(error) => refused(ApiError::internal(error)),
    }
}
