-- Finding accounts by part of the holder's name (`accounts(filter: {holder})`, the
-- console's search): a trigram index serves `holder ilike '%...%'` at any number of
-- accounts. pg_trgm is a trusted extension: the schema owner may create it.
create extension if not exists pg_trgm;

create index account_balances_holder_trgm on reporting.account_balances
    using gin (holder gin_trgm_ops);
