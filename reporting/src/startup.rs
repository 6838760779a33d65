//! Assembling the reporting service: its router and readiness checks.

use std::sync::Arc;

use axum::{Extension, Router};
use platform::{
    TokenKeys,
    http::{Readiness, service_routes, with_common_layers},
};

use crate::state::ReportingState;

/// The reporting service's router, as `folio reporting` serves it, with `extra` routes
/// (the console) behind the same layers; `schema` is [`crate::graphql::schema`] of `state`.
pub fn app(
    state: ReportingState,
    schema: crate::graphql::ReportingSchema,
    keys: Arc<TokenKeys>,
    extra: Router,
) -> Router {
    let access_log = state.access_log.clone();
    let checks = state.clone();
    let readiness: Readiness = Arc::new(move || {
        let state = checks.clone();
        Box::pin(async move { state.checks().await })
    });
    with_common_layers(
        service_routes(schema.clone(), &schema.sdl(), readiness)
            .merge(extra_routes(state))
            .merge(extra),
        keys,
        access_log,
    )
}

/// The reporting routes beside GraphQL (CSV reports), for merging into a router.
pub fn extra_routes(state: ReportingState) -> Router {
    crate::reports::routes().layer(Extension(state))
}
