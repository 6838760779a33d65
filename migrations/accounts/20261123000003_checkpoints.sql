-- Signed global checkpoints: the relay folds every event, in its fixed publication order
-- (tx_id, position), into a running digest and periodically signs it. See ledger::integrity.

-- The running digest: how far the relay has folded, and the digest so far.
create table accounts.digest_cursor (
    singleton    boolean primary key default true check (singleton),
    tx_id        xid8 not null default '0',
    position     bigint not null default 0,
    event_count  bigint not null default 0,
    digest       bytea not null check (length(digest) = 32)
);

insert into accounts.digest_cursor (digest) values ('\x0000000000000000000000000000000000000000000000000000000000000000');

create table accounts.checkpoints (
    sequence         bigint primary key check (sequence >= 1),
    -- The last event covered, in (tx_id, position) order.
    tx_id            xid8 not null,
    position         bigint not null,
    event_count      bigint not null check (event_count >= 1),
    digest           bytea not null check (length(digest) = 32),
    previous_digest  bytea not null check (length(previous_digest) = 32),
    signed_at        timestamptz not null,
    key_id           text not null,
    signature        bytea not null check (length(signature) = 64),
    unique (tx_id, position)
);

create trigger checkpoints_are_immutable
    before update or delete on accounts.checkpoints
    for each row execute function accounts.reject_event_mutation();

create trigger checkpoints_cannot_be_truncated
    before truncate on accounts.checkpoints
    for each statement execute function accounts.reject_event_mutation();

alter table accounts.checkpoints enable always trigger checkpoints_are_immutable;
alter table accounts.checkpoints enable always trigger checkpoints_cannot_be_truncated;
