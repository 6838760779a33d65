-- Two time axes (DESIGN.md, "Two time axes"; ../shared/API.md, "Value dates").
--
-- Every movement has a value date (when the money moved for the business) besides its
-- booking instant (recorded_at). A balance at value date t as known at booking instant k
-- is the sum of the movements with value_date <= t booked at or before k:
--
--   B(t, k) = H(min(t, k)) + sum(backdated movements booked in (t, k] valued <= t)
--
-- where H(x) is the running balance in booking order (balance_history: one index seek),
-- and a backdated movement is one booked after its value date. The second term reads
-- ledger_entries_backdated over bookings in (t, t + the account's largest backdating
-- lag]: bounded by the backdating window, not by the size of the store, and empty for
-- accounts never backdated.

alter table reporting.ledger_entries add column value_date timestamptz;
update reporting.ledger_entries set value_date = recorded_at;
alter table reporting.ledger_entries alter column value_date set not null;

alter table reporting.ledger_entries drop constraint ledger_entries_kind_check;
alter table reporting.ledger_entries add constraint ledger_entries_kind_check check (
    kind in ('DEPOSIT', 'WITHDRAWAL', 'TRANSFER_IN', 'TRANSFER_OUT', 'REVERSAL', 'HOLD_CAPTURE', 'ADJUSTMENT'));

-- Reversal links, both ways. The original shows its reversal only to readers who know of
-- it: reversed_at is when the reversal was booked.
alter table reporting.ledger_entries add column reverses_event_id uuid;
alter table reporting.ledger_entries add column reversed_by_event_id uuid;
alter table reporting.ledger_entries add column reversed_at timestamptz;

-- Statements read by value date (statement(from, to) is on the value axis).
create index ledger_entries_value_axis on reporting.ledger_entries (account_id, value_date, version);
drop index if exists reporting.ledger_entries_statement;

-- The correction term of B(t, k).
create index ledger_entries_backdated on reporting.ledger_entries (account_id, recorded_at)
    include (value_date, amount) where value_date < recorded_at;

-- The largest gap between an account's booking and value date, in microseconds: bounds
-- the correction term's range. What its active holds reserve, as projected.
alter table reporting.account_balances add column backdated_lag_max_us bigint not null default 0;
alter table reporting.account_balances add column held numeric not null default 0;

-- Transfers include hold captures to another account: the debit leg is a HoldCaptured.
