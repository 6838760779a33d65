-- The role the platform runs as owns nothing here but may maintain every read model.
-- The role itself is created by the accounts migrations (20261123000004_runtime_role.sql).

do $$
begin
    if not exists (select from pg_roles where rolname = 'folio_app') then
        raise notice 'role folio_app does not exist; skipping its grants on the reporting schema';
        return;
    end if;
    grant usage on schema reporting to folio_app;
    grant select, insert, update, delete on all tables in schema reporting to folio_app;
    grant usage on all sequences in schema reporting to folio_app;
end
$$;
