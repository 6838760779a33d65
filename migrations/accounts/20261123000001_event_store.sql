-- The event store of the accounts service: every account stream's events, immutable and
-- hash-chained, plus the idempotency keys and snapshots that commands use.

create table accounts.events (
    position        bigint generated always as identity primary key,
    -- The writing transaction; the relay publishes in (tx_id, position) order, see DESIGN.md.
    tx_id           xid8 not null default pg_current_xact_id(),
    event_id        uuid not null unique,
    stream_id       uuid not null,
    stream_version  bigint not null check (stream_version >= 1),
    event_type      text not null check (event_type <> ''),
    event_version   smallint not null check (event_version >= 1),
    payload         jsonb not null,
    metadata        jsonb not null,
    recorded_at     timestamptz not null default clock_timestamp(),
    prev_hash       bytea check (length(prev_hash) = 32),
    hash            bytea not null check (length(hash) = 32),
    unique (stream_id, stream_version),
    -- Only a stream's first event has no predecessor.
    check ((stream_version = 1) = (prev_hash is null))
);

create index events_commit_order on accounts.events (tx_id, position);

comment on table accounts.events is
    'Append-only. Corrections are new events (reversals), never edits; triggers reject UPDATE, DELETE and TRUNCATE.';

create function accounts.reject_event_mutation() returns trigger
language plpgsql as $$
begin
    raise exception '%.% is append-only: % is not allowed', tg_table_schema, tg_table_name, tg_op
        using errcode = 'restrict_violation',
              hint = 'record a correcting event instead';
end
$$;

create trigger events_are_immutable
    before update or delete on accounts.events
    for each row execute function accounts.reject_event_mutation();

create trigger events_cannot_be_truncated
    before truncate on accounts.events
    for each statement execute function accounts.reject_event_mutation();

-- Fire even for sessions in replica mode (session_replication_role = replica).
alter table accounts.events enable always trigger events_are_immutable;
alter table accounts.events enable always trigger events_cannot_be_truncated;

-- A command's idempotency key, written in the same transaction as its events. Keys are
-- scoped to the actor, so two clients can never answer each other's requests.
create table accounts.idempotency_keys (
    idempotency_key text not null,
    command_type    text not null,
    request_hash    bytea not null check (length(request_hash) = 32),
    response        jsonb not null,
    position        bigint not null,
    actor           text not null,
    created_at      timestamptz not null default now(),
    primary key (actor, idempotency_key)
);

-- The folded state of a stream at some version, so loading never replays a long history.
create table accounts.snapshots (
    stream_id       uuid primary key,
    stream_version  bigint not null check (stream_version >= 1),
    schema_version  smallint not null,
    state           jsonb not null,
    last_hash       bytea not null check (length(last_hash) = 32),
    taken_at        timestamptz not null default now()
);
