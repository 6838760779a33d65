-- The access log is also reviewed by query name (who ran which report), newest first.
create index access_log_query on reporting.access_log (query, id);
