-- The reporting service's read models. Everything here was learnt from events received
-- over NATS; the reporting service never reads the accounts schema.

-- Where the projection has got to in the JetStream stream.
create table reporting.projection_checkpoints (
    stream           text primary key,
    -- JetStream stream sequence of the last message applied or skipped.
    stream_sequence  bigint not null default 0,
    -- Event-store position of the last event applied.
    position         bigint,
    applied_events   bigint not null default 0,
    updated_at       timestamptz
);

-- Every account's current state, and the tip of its hash chain as applied.
create table reporting.account_balances (
    account_id       uuid primary key,
    holder           text not null,
    currency         text not null,
    balance          numeric not null,
    overdraft_limit  numeric not null,
    status           text not null check (status in ('OPEN', 'FROZEN', 'CLOSED')),
    version          bigint not null check (version >= 1),
    last_hash        bytea not null,
    opened_at        timestamptz not null,
    updated_at       timestamptz not null,
    -- Set when an event failed the hash-chain check; nothing more is applied to the account.
    halted           boolean not null default false
);

create index account_balances_currency on reporting.account_balances (currency, account_id);

-- One row per balance change (and one at opening, at zero): balance-as-of is one index seek.
create table reporting.balance_history (
    account_id   uuid not null,
    version      bigint not null,
    recorded_at  timestamptz not null,
    balance      numeric not null,
    event_id     uuid not null,
    position     bigint not null,
    primary key (account_id, version)
);

create index balance_history_as_of on reporting.balance_history (account_id, recorded_at desc, version desc);

-- Statement lines: every movement of money, signed (credits > 0, debits < 0).
create table reporting.ledger_entries (
    event_id                 uuid primary key,
    account_id               uuid not null,
    version                  bigint not null,
    position                 bigint not null,
    recorded_at              timestamptz not null,
    kind                     text not null check (kind in ('DEPOSIT', 'WITHDRAWAL', 'TRANSFER_IN', 'TRANSFER_OUT')),
    amount                   numeric not null,
    balance_after            numeric not null,
    currency                 text not null,
    reference                text,
    transfer_id              uuid,
    counterparty_account_id  uuid,
    unique (account_id, version)
);

create index ledger_entries_statement on reporting.ledger_entries (account_id, recorded_at, version);

-- Every event with its metadata and hashes, for compliance review.
create table reporting.audit_log (
    position         bigint primary key,
    event_id         uuid not null unique,
    event_type       text not null,
    event_version    smallint not null,
    account_id       uuid not null,
    stream_version   bigint not null,
    recorded_at      timestamptz not null,
    actor            text not null,
    roles            text[] not null default '{}',
    correlation_id   text,
    causation_id     text,
    command_id       text,
    command_type     text,
    idempotency_key  text,
    client_addr      text,
    payload          jsonb not null,
    metadata         jsonb not null,
    prev_hash        bytea,
    hash             bytea not null,
    unique (account_id, stream_version)
);

create index audit_log_account on reporting.audit_log (account_id, position);
create index audit_log_actor on reporting.audit_log (actor, position);
create index audit_log_event_type on reporting.audit_log (event_type, position);
create index audit_log_correlation on reporting.audit_log (correlation_id, position);
create index audit_log_recorded_at on reporting.audit_log (recorded_at, position);

-- Transfers, joined from their two legs.
create table reporting.transfers (
    transfer_id      uuid primary key,
    from_account_id  uuid not null,
    to_account_id    uuid not null,
    amount           numeric not null,
    currency         text not null,
    reference        text,
    debit_event_id   uuid,
    credit_event_id  uuid,
    debited_at       timestamptz,
    credited_at      timestamptz
);

create index transfers_from on reporting.transfers (from_account_id, debited_at);
create index transfers_to on reporting.transfers (to_account_id, credited_at);

-- Who looked at what, when: every audit-trail, statement and report query.
create table reporting.access_log (
    id              bigint generated always as identity primary key,
    accessed_at     timestamptz not null default clock_timestamp(),
    actor           text not null,
    roles           text[] not null,
    query           text not null,
    arguments       jsonb not null,
    correlation_id  text,
    client_addr     text
);

create index access_log_actor on reporting.access_log (actor, id);
create index access_log_accessed_at on reporting.access_log (accessed_at, id);

-- Events the projection refused because their hash chain did not match what it had applied.
create table reporting.integrity_alerts (
    id               bigint generated always as identity primary key,
    detected_at      timestamptz not null default clock_timestamp(),
    account_id       uuid not null,
    event_id         uuid not null,
    position         bigint not null,
    stream_version   bigint not null,
    reason           text not null
);

create index integrity_alerts_account on reporting.integrity_alerts (account_id, id);
