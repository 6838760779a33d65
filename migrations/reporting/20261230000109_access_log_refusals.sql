-- The access log records refused attempts too (401, FORBIDDEN, a report the role may not
-- see), with the code and the reason they were refused for (PCI DSS 10.2.1).
alter table reporting.access_log
    add column outcome text not null default 'GRANTED'
        constraint access_log_outcome check (outcome in ('GRANTED', 'REFUSED')),
    add column refusal_code text,
    add column refusal_reason text,
    add constraint access_log_refusal_reason check ((outcome = 'REFUSED') = (refusal_code is not null));

comment on table reporting.access_log is
    'Evidence: who read which account data or was refused, when, from where, why. Insert-only for the runtime role.';

-- Like the events, the access log is evidence: the runtime role may add rows and read
-- them, never change or remove them.
do $$
begin
    if exists (select from pg_roles where rolname = 'folio_app') then
        revoke update, delete, truncate on reporting.access_log from folio_app;
        grant select, insert on reporting.access_log to folio_app;
    end if;
end
$$;
