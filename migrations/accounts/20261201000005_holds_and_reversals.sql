-- Holds and reversals (the second round's money movements).
--
-- accounts.holds indexes the hold events of accounts.events, written in the same
-- transaction as they are: which account a hold belongs to (a capture names only the
-- hold), every hold of an account with its status (the Account's `holds` field), and the
-- active holds that have passed their expiry (the sweep). It is working state like the
-- snapshots, not history: the events remain the record, and `folio verify` checks them.
create table accounts.holds (
    hold_id          uuid primary key,
    account_id       uuid not null,
    amount           numeric not null check (amount > 0),
    currency         text not null,
    expires_at       timestamptz,
    reference        text,
    placed_at        timestamptz not null,
    status           text not null check (status in ('ACTIVE', 'CAPTURED', 'RELEASED', 'EXPIRED')),
    captured_amount  numeric,
    to_account_id    uuid,
    settled_at       timestamptz
);

create index holds_account on accounts.holds (account_id, placed_at);
create index holds_to_expire on accounts.holds (expires_at) where status = 'ACTIVE';

-- A reversal names a transfer by its id: find both legs without scanning the store.
create index events_transfer on accounts.events ((payload->>'transferId'))
    where event_type in ('TransferDebited', 'TransferCredited', 'HoldCaptured');

do $$
begin
    if exists (select from pg_roles where rolname = 'folio_app') then
        grant select, insert, update on accounts.holds to folio_app;
    end if;
end
$$;
