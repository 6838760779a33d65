//! Assembling the accounts service: its state, its router and its readiness checks.

use std::sync::Arc;

use axum::Router;
use platform::{
    TokenKeys,
    http::{Check, Readiness, check_nats, check_postgres, service_routes, with_common_layers},
};
use sqlx::PgPool;

use crate::{
    commands::AccountsService,
    graphql::{self, AccountsSchema},
    store::EventStore,
};

/// Everything the accounts service's handlers need.
#[derive(Clone, Debug)]
pub struct AccountsState {
    pub service: AccountsService,
    pub pool: PgPool,
    pub nats: async_nats::Client,
}

impl AccountsState {
    pub fn new(pool: PgPool, nats: async_nats::Client) -> Self {
        Self {
            service: AccountsService::new(EventStore::new(pool.clone())),
            pool,
            nats,
        }
    }

    pub fn schema(&self) -> AccountsSchema {
        graphql::schema(self.service.clone())
    }

    /// PostgreSQL must answer; NATS being down is reported but commands still work.
    pub async fn checks(&self) -> Vec<Check> {
        vec![check_postgres(&self.pool).await, check_nats(&self.nats)]
    }
}

/// The accounts service's router, as `folio accounts` serves it.
pub fn app(state: AccountsState, keys: Arc<TokenKeys>) -> Router {
    let schema = state.schema();
    let readiness: Readiness = Arc::new(move || {
        let state = state.clone();
        Box::pin(async move { state.checks().await })
    });
    with_common_layers(service_routes(schema, readiness), keys)
}
