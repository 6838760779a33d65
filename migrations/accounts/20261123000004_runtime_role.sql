-- The role the platform runs as: it may append events and read them, never change or
-- remove them. Migrations run as the schema owner; `folio up` runs as folio_app with
-- FOLIO_MIGRATE=false (docs/operations.md). Roles are cluster-wide: it is created once.

do $$
begin
    if not exists (select from pg_roles where rolname = 'folio_app') then
        begin
            create role folio_app login;
        exception when insufficient_privilege then
            raise notice 'cannot create role folio_app; a database administrator must create it and re-run the grants of this migration';
            return;
        end;
    end if;

    grant usage on schema accounts to folio_app;
    -- History: append and read only.
    grant select, insert on accounts.events, accounts.checkpoints to folio_app;
    -- Working state of commands and the relay.
    grant select, insert on accounts.idempotency_keys to folio_app;
    grant select, insert, update on accounts.snapshots, accounts.relay_checkpoints, accounts.digest_cursor to folio_app;
    grant usage on all sequences in schema accounts to folio_app;
    -- Lets the migrator see that nothing is pending.
    grant select on accounts._sqlx_migrations to folio_app;
end
$$;
