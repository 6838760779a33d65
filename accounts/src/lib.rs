//! Folio's command side: the Account aggregate, the PostgreSQL event store, the command
//! handlers that join them, and the GraphQL mutations.

pub mod domain;
