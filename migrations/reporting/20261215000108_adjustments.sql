-- Four-eyes adjustments as the projection sees them (`adjustments(status, accountId)`):
-- one row per adjustment, inserted at its request and updated by its decision or expiry.
-- Keyed by the position of the request, which is also the listing order.
create table reporting.adjustments (
    adjustment_id  uuid primary key,
    position       bigint not null unique,
    account_id     uuid not null,
    currency       text not null,
    amount         numeric not null,
    reason         text not null,
    value_date     timestamptz,
    evidence       text,
    status         text not null check (status in ('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED')),
    requested_by   text not null,
    requested_at   timestamptz not null,
    expires_at     timestamptz not null,
    decided_by     text,
    decided_at     timestamptz,
    comment        text
);

-- A supervisor's queue (status PENDING) and an account's adjustments, in request order.
create index adjustments_by_status on reporting.adjustments (status, position);
create index adjustments_by_account on reporting.adjustments (account_id, position);

do $$
begin
    if exists (select from pg_roles where rolname = 'folio_app') then
        grant select, insert, update, delete on reporting.adjustments to folio_app;
    end if;
end
$$;
