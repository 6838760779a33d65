-- Every read-model index is justified by a query that uses it; the others cost every
-- projected event an index update for nothing. Kept on reporting.audit_log:
--   audit_log_pkey (position)                  atLeast (queries/consistency.rs), paging
--   audit_log_account (account_id, position)   auditTrail(filter: {accountId})
--   audit_log_actor (actor, position)          auditTrail(filter: {actor})
--   audit_log_event_type (event_type, position) auditTrail(filter: {eventTypes})
--   audit_log_correlation (correlation_id, position) auditTrail(filter: {correlationId})
--   audit_log_recorded_at (recorded_at, position)    auditTrail(filter: {from, to})
-- Dropped: uniqueness of event_id and of (account_id, stream_version), which no query
-- reads (the projection applies each version once by account_balances.version), and the
-- indexes of reporting.transfers, which no query reads by account.

alter table reporting.audit_log drop constraint if exists audit_log_event_id_key;
alter table reporting.audit_log drop constraint if exists audit_log_account_id_stream_version_key;
drop index if exists reporting.transfers_from;
drop index if exists reporting.transfers_to;
