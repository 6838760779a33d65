-- Four-eyes adjustments and period closes.
--
-- accounts.adjustments indexes the adjustment events of accounts.events, written in the
-- same transaction as they are: which account an adjustment is on (a decision names only
-- the adjustment) and the pending adjustments past their expiry (the sweep). Working
-- state like accounts.holds: the events remain the record.
create table accounts.adjustments (
    adjustment_id  uuid primary key,
    account_id     uuid not null,
    status         text not null check (status in ('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED')),
    expires_at     timestamptz not null,
    decided_at     timestamptz
);

create index adjustments_to_expire on accounts.adjustments (expires_at) where status = 'PENDING';

do $$
begin
    if exists (select from pg_roles where rolname = 'folio_app') then
        grant select, insert, update on accounts.adjustments to folio_app;
    end if;
end
$$;

-- Period closes: one row per closed period, with the signed report of the period (every
-- account's balance at its end, totals, the events covered and their global digest). The
-- row is never changed or removed, like the events and the checkpoints; an append reads the
-- latest period_end under the shared advisory lock a close takes exclusively.
create table accounts.period_closes (
    period_end        timestamptz primary key,
    closed_at         timestamptz not null,
    closed_by         text not null,
    idempotency_key   text not null,
    -- The last event the close covers, in publication order.
    through_tx_id     xid8 not null,
    through_position  bigint not null,
    report            jsonb not null,
    key_id            text not null,
    signature         bytea not null check (length(signature) = 64),
    unique (closed_by, idempotency_key)
);

create trigger period_closes_are_immutable
    before update or delete on accounts.period_closes
    for each row execute function accounts.reject_event_mutation();

create trigger period_closes_cannot_be_truncated
    before truncate on accounts.period_closes
    for each statement execute function accounts.reject_event_mutation();

alter table accounts.period_closes enable always trigger period_closes_are_immutable;
alter table accounts.period_closes enable always trigger period_closes_cannot_be_truncated;

do $$
begin
    if exists (select from pg_roles where rolname = 'folio_app') then
        grant select, insert on accounts.period_closes to folio_app;
    end if;
end
$$;
