//! The demo's hands: every mutation goes through the accounts service's own GraphQL schema
//! (parsing, role guards, idempotency keys, the group-commit writer, decide and evolve), as
//! a teller's or supervisor's request would, only booked at the instant the story is at
//! ([`HistoricalClock`]). Nothing is written around the schema.

use std::collections::BTreeSet;

use accounts::{commands::AccountsService, graphql::AccountsSchema, store::HistoricalClock};
use anyhow::{Context as _, bail};
use async_graphql::{Request, Variables};
use chrono::{DateTime, Utc};
use platform::{Principal, RequestContext, Role};
use serde_json::Value;

/// Someone who works at the bank, as their token would name them.
#[derive(Clone, Copy, Debug)]
pub struct Actor {
    /// The token's `sub`, recorded in every event's metadata.
    pub name: &'static str,
    pub role: Role,
    /// The workstation the request comes from, if any.
    pub client_addr: Option<&'static str>,
}

/// Tellers and a supervisor at their desks, and the payroll run (a teller's token).
pub const ALICE: Actor = Actor {
    name: "alice",
    role: Role::Teller,
    client_addr: Some("10.20.1.11"),
};
pub const BOB: Actor = Actor {
    name: "bob",
    role: Role::Teller,
    client_addr: Some("10.20.1.12"),
};
pub const SAM: Actor = Actor {
    name: "sam",
    role: Role::Supervisor,
    client_addr: Some("10.20.1.20"),
};
pub const PAYROLL: Actor = Actor {
    name: "payroll",
    role: Role::Teller,
    client_addr: None,
};

/// A request the platform refused: its `extensions.code` and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub code: String,
    pub message: String,
}

/// Runs mutations against the accounts schema at the story's instant.
pub struct Seeder {
    schema: AccountsSchema,
    clock: HistoricalClock,
    service: AccountsService,
    /// Requests answered without a refusal.
    pub written: usize,
    next_key: u64,
    /// The latest instant booked: a later request is never booked before it.
    last: Option<DateTime<Utc>>,
}

impl Seeder {
    pub fn new(schema: AccountsSchema, clock: HistoricalClock, service: AccountsService) -> Self {
        Self {
            schema,
            clock,
            service,
            written: 0,
            next_key: 0,
            last: None,
        }
    }

    pub fn service(&self) -> &AccountsService {
        &self.service
    }

    /// A fresh idempotency key, `demo-000001` on: no README or usage example uses the prefix.
    pub fn key(&mut self) -> String {
        self.next_key += 1;
        format!("demo-{:06}", self.next_key)
    }

    /// Runs `query` with `variables` as `actor` at `at` (or at the latest instant booked,
    /// if that is later: a scene's follow-up may run past the next step's planned time):
    /// the `data`, or the refusal.
    pub async fn call(
        &mut self,
        at: DateTime<Utc>,
        actor: Actor,
        correlation_id: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Result<Value, Refused>> {
        let at = self.last.map_or(at, |last| last.max(at));
        self.last = Some(at);
        self.clock.set(at);
        let context = RequestContext {
            principal: Principal {
                actor: actor.name.to_string(),
                roles: BTreeSet::from([actor.role]),
            },
            correlation_id: correlation_id.to_string(),
            client_addr: actor.client_addr.map(str::to_string),
        };
        let request = Request::new(query)
            .variables(Variables::from_json(variables))
            .data(context);
        let response = serde_json::to_value(self.schema.execute(request).await)
            .context("serialising a GraphQL response")?;
        if let Some(error) = response["errors"].as_array().and_then(|e| e.first()) {
            let code = error["extensions"]["code"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let message = error["message"].as_str().unwrap_or("").to_string();
            if matches!(code.as_str(), "INTERNAL" | "UNAVAILABLE" | "") {
                bail!("{message} ({code}) at {at}");
            }
            return Ok(Err(Refused { code, message }));
        }
        self.written += 1;
        Ok(Ok(response["data"].clone()))
    }

    /// Like [`Seeder::call`], for a request the story expects to succeed.
    pub async fn ok(
        &mut self,
        at: DateTime<Utc>,
        actor: Actor,
        correlation_id: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        match self
            .call(at, actor, correlation_id, query, variables)
            .await?
        {
            Ok(data) => Ok(data),
            Err(refused) => bail!(
                "the demo's {correlation_id} was refused at {at}: {} {}",
                refused.code,
                refused.message
            ),
        }
    }
}
