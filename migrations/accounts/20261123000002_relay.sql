-- Where the relay has got to in publishing accounts.events to each JetStream stream.
-- The checkpoint is a (tx_id, position) pair: events are published in that order, and
-- only once their transaction is older than every transaction still running.

create table accounts.relay_checkpoints (
    stream            text primary key,
    tx_id             xid8 not null default '0',
    position          bigint not null default 0,
    published_events  bigint not null default 0,
    updated_at        timestamptz not null default now()
);
