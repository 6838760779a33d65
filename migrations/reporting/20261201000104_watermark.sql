-- An honest watermark (DESIGN.md, "An honest watermark"). The projection applies events in
-- publication order (JetStream stream sequence) and keeps its own place in the stream, so
-- after a crash it resumes from there instead of waiting for acknowledgement deadlines.
--
-- delivered_sequence: the last stream sequence the projection has processed.
-- watermark_sequence: every message at or below it has been applied (none is parked).
-- position:           the highest event-store position among events applied at or below the
--                     watermark; it never moves backwards.

alter table reporting.projection_checkpoints rename column stream_sequence to delivered_sequence;
alter table reporting.projection_checkpoints
    add column watermark_sequence bigint not null default 0;
update reporting.projection_checkpoints set watermark_sequence = delivered_sequence;

-- The stream sequence each event was applied from: `atLeast` compares it with the watermark.
-- Rows applied before this migration were applied under the old rules and count as settled.
alter table reporting.audit_log add column stream_sequence bigint not null default 0;

-- Events that arrived before their predecessor (the relay retried a batch and JetStream stored
-- it out of order). They are applied as soon as the missing version arrives, and hold the
-- watermark back until then.
create table reporting.parked_events (
    account_id       uuid not null,
    stream_version   bigint not null,
    stream_sequence  bigint not null,
    event            jsonb not null,
    parked_at        timestamptz not null default clock_timestamp(),
    primary key (account_id, stream_version)
);

do $$
begin
    if exists (select from pg_roles where rolname = 'folio_app') then
        grant select, insert, update, delete on reporting.parked_events to folio_app;
    end if;
end
$$;
