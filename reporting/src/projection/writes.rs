//! The rows one batch writes, gathered in memory and written with one set-based statement
//! per read model (`insert ... select from unnest(...)`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ledger::{AccountEvent, Currency, Hash, RecordedEvent};

use super::{Delivery, in_schema};
use crate::model::{AccountStatus, EntryKind};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

/// An account as projected, and whether the batch changed it.
#[derive(Clone, Debug)]
pub(crate) struct AccountRow {
    pub account_id: Uuid,
    pub holder: String,
    pub currency: Currency,
    pub balance: Decimal,
    /// What its active holds reserve.
    pub held: Decimal,
    pub overdraft_limit: Decimal,
    pub status: AccountStatus,
    /// The largest gap between a movement's booking and its value date, in microseconds.
    pub backdated_lag_max_us: i64,
    pub version: i64,
    pub last_hash: Hash,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub halted: bool,
    /// Opened in this batch: inserted rather than updated.
    pub is_new: bool,
    pub dirty: bool,
}

struct HistoryRow {
    account_id: Uuid,
    version: i64,
    recorded_at: DateTime<Utc>,
    balance: Decimal,
    event_id: Uuid,
    position: i64,
}

/// A statement line: a movement of money, signed (credits > 0, debits < 0).
struct Entry {
    event: RecordedEvent,
    kind: EntryKind,
    amount: Decimal,
    balance_after: Decimal,
    currency: Currency,
    reference: Option<String>,
    transfer_id: Option<Uuid>,
    counterparty: Option<Uuid>,
    value_date: DateTime<Utc>,
    /// The movement this one reverses.
    reverses: Option<Uuid>,
}

/// An original movement learning of its reversal.
struct ReversalLink {
    original: Uuid,
    reversal: Uuid,
    reversed_at: DateTime<Utc>,
}

/// An adjustment requested (a new row) or decided (its status), in event order.
enum AdjustmentChange {
    Requested {
        event: Box<RecordedEvent>,
        requested: Box<ledger::events::AdjustmentRequested>,
    },
    Decided {
        adjustment_id: Uuid,
        status: &'static str,
        value_date: Option<DateTime<Utc>>,
        decided_by: Option<String>,
        decided_at: DateTime<Utc>,
        comment: Option<String>,
    },
}

struct Alert {
    account_id: Uuid,
    event_id: Uuid,
    position: i64,
    stream_version: i64,
    reason: String,
}

struct Transfer {
    from: Uuid,
    to: Uuid,
    amount: Decimal,
    currency: String,
    reference: Option<String>,
    debit: Option<(Uuid, DateTime<Utc>)>,
    credit: Option<(Uuid, DateTime<Utc>)>,
}

/// An event waiting in `parked_events` for its predecessor.
#[derive(Clone, Debug)]
pub(crate) struct Parked {
    pub stream_sequence: u64,
    pub event: RecordedEvent,
}

impl Parked {
    pub fn delivery(&self) -> Delivery {
        Delivery {
            stream_sequence: self.stream_sequence,
            event: self.event.clone(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Writes {
    pub accounts: Vec<AccountRow>,
    /// Applied events with the stream sequence they came from.
    audit: Vec<(RecordedEvent, i64)>,
    park: Vec<Delivery>,
    unpark: Vec<(Uuid, i64)>,
    history: Vec<HistoryRow>,
    entries: Vec<Entry>,
    reversal_links: Vec<ReversalLink>,
    transfers: BTreeMap<Uuid, Transfer>,
    adjustments: Vec<AdjustmentChange>,
    alerts: Vec<Alert>,
}

impl Writes {
    pub fn audit(&mut self, delivery: &Delivery) {
        self.audit
            .push((delivery.event.clone(), delivery.stream_sequence as i64));
    }

    /// How many events this batch applies.
    pub fn applied_events(&self) -> usize {
        self.audit.len()
    }

    /// `(position, stream sequence)` of every event this batch applies.
    pub fn applied_positions(&self) -> Vec<(i64, i64)> {
        self.audit
            .iter()
            .map(|(event, sequence)| (event.position, *sequence))
            .collect()
    }

    pub fn park(&mut self, delivery: &Delivery) {
        self.park.push(delivery.clone());
    }

    pub fn unpark(&mut self, account_id: Uuid, stream_version: i64) {
        self.unpark.push((account_id, stream_version));
    }

    pub fn history(&mut self, event: &RecordedEvent, balance: Decimal) {
        self.history.push(HistoryRow {
            account_id: event.stream_id.as_uuid(),
            version: event.stream_version,
            recorded_at: event.recorded_at,
            balance,
            event_id: event.event_id.as_uuid(),
            position: event.position,
        });
    }

    pub fn alert(&mut self, event: &RecordedEvent, reason: &str) {
        self.alerts.push(Alert {
            account_id: event.stream_id.as_uuid(),
            event_id: event.event_id.as_uuid(),
            position: event.position,
            stream_version: event.stream_version,
            reason: reason.to_string(),
        });
    }

    /// The adjustment row an adjustment event inserts or updates.
    pub fn adjustment(&mut self, event: &RecordedEvent, decoded: &AccountEvent) {
        let decided = |adjustment_id: ledger::AdjustmentId,
                       status,
                       value_date,
                       decided_by: Option<&String>,
                       comment: &Option<String>| AdjustmentChange::Decided {
            adjustment_id: adjustment_id.as_uuid(),
            status,
            value_date,
            decided_by: decided_by.cloned(),
            decided_at: event.recorded_at,
            comment: comment.clone(),
        };
        let change = match decoded {
            AccountEvent::AdjustmentRequested(requested) => AdjustmentChange::Requested {
                event: Box::new(event.clone()),
                requested: Box::new(requested.clone()),
            },
            AccountEvent::AdjustmentPosted(p) => decided(
                p.adjustment_id,
                "APPROVED",
                Some(p.value_date),
                Some(&p.approved_by),
                &p.comment,
            ),
            AccountEvent::AdjustmentRejected(r) => decided(
                r.adjustment_id,
                "REJECTED",
                None,
                Some(&r.rejected_by),
                &r.comment,
            ),
            AccountEvent::AdjustmentExpired(x) => {
                decided(x.adjustment_id, "EXPIRED", None, None, &None)
            }
            _ => return,
        };
        self.adjustments.push(change);
    }

    /// The statement line (and transfer row, and reversal link) of an event that moves money.
    pub fn movement(&mut self, event: &RecordedEvent, decoded: &AccountEvent) {
        let line = |kind, amount, balance_after, currency, value_date| Entry {
            event: event.clone(),
            kind,
            amount,
            balance_after,
            currency,
            reference: None,
            transfer_id: None,
            counterparty: None,
            value_date,
            reverses: None,
        };
        let entry = match decoded {
            AccountEvent::MoneyDeposited(m) => Entry {
                reference: m.reference.clone(),
                ..line(
                    EntryKind::Deposit,
                    m.amount,
                    m.balance_after,
                    m.currency,
                    m.value_date,
                )
            },
            AccountEvent::MoneyWithdrawn(m) => Entry {
                reference: m.reference.clone(),
                ..line(
                    EntryKind::Withdrawal,
                    -m.amount,
                    m.balance_after,
                    m.currency,
                    m.value_date,
                )
            },
            AccountEvent::TransferDebited(t) => Entry {
                reference: t.reference.clone(),
                transfer_id: Some(t.transfer_id.as_uuid()),
                counterparty: Some(t.to_account_id.as_uuid()),
                ..line(
                    EntryKind::TransferOut,
                    -t.amount,
                    t.balance_after,
                    t.currency,
                    t.value_date,
                )
            },
            AccountEvent::TransferCredited(t) => Entry {
                reference: t.reference.clone(),
                transfer_id: Some(t.transfer_id.as_uuid()),
                counterparty: Some(t.from_account_id.as_uuid()),
                ..line(
                    EntryKind::TransferIn,
                    t.amount,
                    t.balance_after,
                    t.currency,
                    t.value_date,
                )
            },
            AccountEvent::HoldCaptured(c) => Entry {
                reference: c.reference.clone(),
                transfer_id: c.transfer_id.map(|t| t.as_uuid()),
                counterparty: c.to_account_id.map(|a| a.as_uuid()),
                ..line(
                    EntryKind::HoldCapture,
                    -c.amount,
                    c.balance_after,
                    c.currency,
                    c.value_date,
                )
            },
            AccountEvent::MovementReversed(r) => {
                self.reversal_links.push(ReversalLink {
                    original: r.reversed_event_id.as_uuid(),
                    reversal: event.event_id.as_uuid(),
                    reversed_at: event.recorded_at,
                });
                Entry {
                    reference: Some(r.reason.clone()),
                    transfer_id: r.transfer_id.map(|t| t.as_uuid()),
                    counterparty: r.counterparty_account_id.map(|a| a.as_uuid()),
                    reverses: Some(r.reversed_event_id.as_uuid()),
                    ..line(
                        EntryKind::Reversal,
                        r.amount,
                        r.balance_after,
                        r.currency,
                        r.value_date,
                    )
                }
            }
            AccountEvent::AdjustmentPosted(a) => Entry {
                reference: Some(a.reason.clone()),
                ..line(
                    EntryKind::Adjustment,
                    a.amount,
                    a.balance_after,
                    a.currency,
                    a.value_date,
                )
            },
            _ => return,
        };
        let is_transfer_leg = matches!(
            decoded,
            AccountEvent::TransferDebited(_)
                | AccountEvent::TransferCredited(_)
                | AccountEvent::HoldCaptured(_)
        );
        if let (true, Some(transfer_id), Some(counterparty)) =
            (is_transfer_leg, entry.transfer_id, entry.counterparty)
        {
            let own = event.stream_id.as_uuid();
            let outgoing = entry.amount.is_sign_negative();
            let leg = Some((event.event_id.as_uuid(), event.recorded_at));
            let row = self
                .transfers
                .entry(transfer_id)
                .or_insert_with(|| Transfer {
                    from: if outgoing { own } else { counterparty },
                    to: if outgoing { counterparty } else { own },
                    amount: entry.amount.abs(),
                    currency: entry.currency.code().to_string(),
                    reference: entry.reference.clone(),
                    debit: None,
                    credit: None,
                });
            if outgoing {
                row.debit = leg;
            } else {
                row.credit = leg;
            }
        }
        self.entries.push(entry);
    }

    /// Writes every row, one statement per read model, into the tables of `schema`.
    pub async fn flush(
        self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
    ) -> Result<(), sqlx::Error> {
        self.flush_parked(tx, schema).await?;
        self.flush_audit(tx, schema).await?;
        self.flush_accounts(tx, schema).await?;
        self.flush_history(tx, schema).await?;
        self.flush_entries(tx, schema).await?;
        self.flush_reversal_links(tx, schema).await?;
        self.flush_adjustments(tx, schema).await?;
        self.flush_transfers(tx, schema).await?;
        self.flush_alerts(tx, schema).await
    }

    async fn flush_parked(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
    ) -> Result<(), sqlx::Error> {
        if !self.unpark.is_empty() {
            sqlx::query(sqlx::AssertSqlSafe(in_schema(
                schema,
                "delete from reporting.parked_events p
                 using unnest($1::uuid[], $2::int8[]) as u(account_id, stream_version)
                 where p.account_id = u.account_id and p.stream_version = u.stream_version",
            )))
            .bind(self.unpark.iter().map(|(a, _)| *a).collect::<Vec<_>>())
            .bind(self.unpark.iter().map(|(_, v)| *v).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        if !self.park.is_empty() {
            // A republished copy of an event parked before replaces it: it arrived later.
            let mut rows: BTreeMap<(Uuid, i64), &Delivery> = BTreeMap::new();
            for delivery in &self.park {
                rows.insert(
                    (
                        delivery.event.stream_id.as_uuid(),
                        delivery.event.stream_version,
                    ),
                    delivery,
                );
            }
            let rows: Vec<&Delivery> = rows.into_values().collect();
            sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
                "insert into reporting.parked_events (account_id, stream_version, stream_sequence, event)
                 select * from unnest($1::uuid[], $2::int8[], $3::int8[], $4::jsonb[])
                 on conflict (account_id, stream_version) do nothing")),
            )
            .bind(rows.iter().map(|d| d.event.stream_id.as_uuid()).collect::<Vec<_>>())
            .bind(rows.iter().map(|d| d.event.stream_version).collect::<Vec<_>>())
            .bind(rows.iter().map(|d| d.stream_sequence as i64).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|d| serde_json::to_value(&d.event).expect("recorded events serialise to JSON"))
                    .collect::<Vec<Value>>(),
            )
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn flush_audit(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
    ) -> Result<(), sqlx::Error> {
        if self.audit.is_empty() {
            return Ok(());
        }
        let sequences: Vec<i64> = self.audit.iter().map(|(_, s)| *s).collect();
        let events: Vec<&RecordedEvent> = self.audit.iter().map(|(e, _)| e).collect();
        sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
            "insert into reporting.audit_log
                 (position, event_id, event_type, event_version, account_id, stream_version, recorded_at, actor, roles,
                  correlation_id, causation_id, command_id, command_type, idempotency_key, client_addr,
                  payload, metadata, prev_hash, hash, stream_sequence)
             select u.position, u.event_id, u.event_type, u.event_version, u.account_id, u.stream_version,
                    u.recorded_at, coalesce(u.metadata->>'actor', 'unknown'),
                    coalesce(array(select jsonb_array_elements_text(
                        case when jsonb_typeof(u.metadata->'roles') = 'array' then u.metadata->'roles' else '[]' end)), '{}'),
                    u.metadata->>'correlationId', u.metadata->>'causationId', u.metadata->>'commandId',
                    u.metadata->>'commandType', u.metadata->>'idempotencyKey', u.metadata->>'clientAddr',
                    u.payload, u.metadata, u.prev_hash, u.hash, u.stream_sequence
             from unnest($1::int8[], $2::uuid[], $3::text[], $4::int2[], $5::uuid[], $6::int8[], $7::timestamptz[],
                         $8::jsonb[], $9::jsonb[], $10::bytea[], $11::bytea[], $12::int8[])
                  as u(position, event_id, event_type, event_version, account_id, stream_version, recorded_at,
                       payload, metadata, prev_hash, hash, stream_sequence)
             on conflict (position) do nothing")),
        )
        .bind(events.iter().map(|e| e.position).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event_id.as_uuid()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event_version).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.stream_id.as_uuid()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.stream_version).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<Value>>())
        .bind(events.iter().map(|e| e.metadata.clone()).collect::<Vec<Value>>())
        .bind(
            events
                .iter()
                .map(|e| e.prev_hash.map(|h| h.as_bytes().to_vec()))
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.hash.as_bytes().to_vec()).collect::<Vec<_>>())
        .bind(sequences)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn flush_accounts(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
    ) -> Result<(), sqlx::Error> {
        let (new, changed): (Vec<&AccountRow>, Vec<&AccountRow>) =
            self.accounts.iter().partition(|a| a.is_new);
        if !new.is_empty() {
            sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
                "insert into reporting.account_balances
                     (account_id, holder, currency, balance, overdraft_limit, status, version, last_hash, opened_at,
                      updated_at, halted, held, backdated_lag_max_us)
                 select * from unnest($1::uuid[], $2::text[], $3::text[], $4::numeric[], $5::numeric[], $6::text[],
                                      $7::int8[], $8::bytea[], $9::timestamptz[], $10::timestamptz[], $11::bool[],
                                      $12::numeric[], $13::int8[])")),
            )
            .bind(new.iter().map(|a| a.account_id).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.holder.clone()).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.currency.code()).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.balance).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.overdraft_limit).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.status.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.version).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.last_hash.as_bytes().to_vec()).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.opened_at).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.updated_at).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.halted).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.held).collect::<Vec<_>>())
            .bind(new.iter().map(|a| a.backdated_lag_max_us).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        if !changed.is_empty() {
            sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
                "update reporting.account_balances a
                 set balance = u.balance, status = u.status, version = u.version, last_hash = u.last_hash,
                     updated_at = u.updated_at, halted = u.halted, held = u.held,
                     backdated_lag_max_us = u.lag
                 from unnest($1::uuid[], $2::numeric[], $3::text[], $4::int8[], $5::bytea[], $6::timestamptz[],
                             $7::bool[], $8::numeric[], $9::int8[])
                      as u(account_id, balance, status, version, last_hash, updated_at, halted, held, lag)
                 where a.account_id = u.account_id")),
            )
            .bind(changed.iter().map(|a| a.account_id).collect::<Vec<_>>())
            .bind(changed.iter().map(|a| a.balance).collect::<Vec<_>>())
            .bind(changed.iter().map(|a| a.status.as_str()).collect::<Vec<_>>())
            .bind(changed.iter().map(|a| a.version).collect::<Vec<_>>())
            .bind(changed.iter().map(|a| a.last_hash.as_bytes().to_vec()).collect::<Vec<_>>())
            .bind(changed.iter().map(|a| a.updated_at).collect::<Vec<_>>())
            .bind(changed.iter().map(|a| a.halted).collect::<Vec<_>>())
            .bind(changed.iter().map(|a| a.held).collect::<Vec<_>>())
            .bind(changed.iter().map(|a| a.backdated_lag_max_us).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn flush_history(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
    ) -> Result<(), sqlx::Error> {
        if self.history.is_empty() {
            return Ok(());
        }
        let rows = &self.history;
        sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
            "insert into reporting.balance_history (account_id, version, recorded_at, balance, event_id, position)
             select * from unnest($1::uuid[], $2::int8[], $3::timestamptz[], $4::numeric[], $5::uuid[], $6::int8[])")),
        )
        .bind(rows.iter().map(|r| r.account_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.recorded_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.balance).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn flush_entries(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
    ) -> Result<(), sqlx::Error> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let rows = &self.entries;
        sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
            "insert into reporting.ledger_entries
                 (event_id, account_id, version, position, recorded_at, kind, amount, balance_after, currency,
                  reference, transfer_id, counterparty_account_id, value_date, reverses_event_id)
             select * from unnest($1::uuid[], $2::uuid[], $3::int8[], $4::int8[], $5::timestamptz[], $6::text[],
                                  $7::numeric[], $8::numeric[], $9::text[], $10::text[], $11::uuid[], $12::uuid[],
                                  $13::timestamptz[], $14::uuid[])")),
        )
        .bind(rows.iter().map(|r| r.event.event_id.as_uuid()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event.stream_id.as_uuid()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event.stream_version).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event.position).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event.recorded_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.amount).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.balance_after).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.currency.code()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.reference.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.transfer_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.counterparty).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.value_date).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.reverses).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Marks every movement reversed in this batch with its reversal (after the entries, so
    /// an original written by the same batch is there).
    async fn flush_reversal_links(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
    ) -> Result<(), sqlx::Error> {
        if self.reversal_links.is_empty() {
            return Ok(());
        }
        let rows = &self.reversal_links;
        sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
            "update reporting.ledger_entries e
             set reversed_by_event_id = u.reversal, reversed_at = u.reversed_at
             from unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) as u(original, reversal, reversed_at)
             where e.event_id = u.original")),
        )
        .bind(rows.iter().map(|r| r.original).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.reversal).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.reversed_at).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Inserts the adjustments requested in this batch, then applies the decisions (one
    /// statement each; a decision of a request in the same batch finds its row).
    async fn flush_adjustments(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
    ) -> Result<(), sqlx::Error> {
        let requested: Vec<(&RecordedEvent, &ledger::events::AdjustmentRequested)> = self
            .adjustments
            .iter()
            .filter_map(|c| match c {
                AdjustmentChange::Requested { event, requested } => {
                    Some((event.as_ref(), requested.as_ref()))
                }
                AdjustmentChange::Decided { .. } => None,
            })
            .collect();
        if !requested.is_empty() {
            sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
                "insert into reporting.adjustments (adjustment_id, position, account_id, currency, amount,
                     reason, value_date, evidence, status, requested_by, requested_at, expires_at)
                 select a, p, s, c, m, r, v, e, 'PENDING', b, t, x
                 from unnest($1::uuid[], $2::int8[], $3::uuid[], $4::text[], $5::numeric[], $6::text[],
                             $7::timestamptz[], $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[])
                      as u(a, p, s, c, m, r, v, e, b, t, x)
                 on conflict (adjustment_id) do nothing")),
            )
            .bind(requested.iter().map(|(_, r)| r.adjustment_id.as_uuid()).collect::<Vec<_>>())
            .bind(requested.iter().map(|(e, _)| e.position).collect::<Vec<_>>())
            .bind(requested.iter().map(|(e, _)| e.stream_id.as_uuid()).collect::<Vec<_>>())
            .bind(requested.iter().map(|(_, r)| r.currency.code()).collect::<Vec<_>>())
            .bind(requested.iter().map(|(_, r)| r.amount).collect::<Vec<_>>())
            .bind(requested.iter().map(|(_, r)| r.reason.clone()).collect::<Vec<_>>())
            .bind(requested.iter().map(|(_, r)| r.value_date).collect::<Vec<_>>())
            .bind(requested.iter().map(|(_, r)| r.evidence.clone()).collect::<Vec<_>>())
            .bind(requested.iter().map(|(_, r)| r.requested_by.clone()).collect::<Vec<_>>())
            .bind(requested.iter().map(|(e, _)| e.recorded_at).collect::<Vec<_>>())
            .bind(requested.iter().map(|(_, r)| r.expires_at).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        type Decision<'a> = (
            Uuid,
            &'static str,
            Option<DateTime<Utc>>,
            Option<&'a String>,
            DateTime<Utc>,
            Option<&'a String>,
        );
        let decided: Vec<Decision<'_>> = self
            .adjustments
            .iter()
            .filter_map(|c| match c {
                AdjustmentChange::Decided {
                    adjustment_id,
                    status,
                    value_date,
                    decided_by,
                    decided_at,
                    comment,
                } => Some((
                    *adjustment_id,
                    *status,
                    *value_date,
                    decided_by.as_ref(),
                    *decided_at,
                    comment.as_ref(),
                )),
                AdjustmentChange::Requested { .. } => None,
            })
            .collect();
        if decided.is_empty() {
            return Ok(());
        }
        sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
            "update reporting.adjustments a
             set status = u.status, value_date = coalesce(u.value_date, a.value_date),
                 decided_by = u.decided_by, decided_at = u.decided_at, comment = u.comment
             from unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[], $6::text[])
                  as u(adjustment_id, status, value_date, decided_by, decided_at, comment)
             where a.adjustment_id = u.adjustment_id")),
        )
        .bind(decided.iter().map(|d| d.0).collect::<Vec<_>>())
        .bind(decided.iter().map(|d| d.1).collect::<Vec<_>>())
        .bind(decided.iter().map(|d| d.2).collect::<Vec<_>>())
        .bind(decided.iter().map(|d| d.3.cloned()).collect::<Vec<_>>())
        .bind(decided.iter().map(|d| d.4).collect::<Vec<_>>())
        .bind(decided.iter().map(|d| d.5.cloned()).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn flush_transfers(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
    ) -> Result<(), sqlx::Error> {
        if self.transfers.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&Uuid, &Transfer)> = self.transfers.iter().collect();
        sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
            "insert into reporting.transfers
                 (transfer_id, from_account_id, to_account_id, amount, currency, reference,
                  debit_event_id, credit_event_id, debited_at, credited_at)
             select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::numeric[], $5::text[], $6::text[],
                                  $7::uuid[], $8::uuid[], $9::timestamptz[], $10::timestamptz[])
             on conflict (transfer_id) do update set
                 debit_event_id = coalesce(reporting.transfers.debit_event_id, excluded.debit_event_id),
                 credit_event_id = coalesce(reporting.transfers.credit_event_id, excluded.credit_event_id),
                 debited_at = coalesce(reporting.transfers.debited_at, excluded.debited_at),
                 credited_at = coalesce(reporting.transfers.credited_at, excluded.credited_at)")),
        )
        .bind(rows.iter().map(|(id, _)| **id).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, t)| t.from).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, t)| t.to).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, t)| t.amount).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, t)| t.currency.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, t)| t.reference.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, t)| t.debit.map(|d| d.0)).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, t)| t.credit.map(|c| c.0)).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, t)| t.debit.map(|d| d.1)).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, t)| t.credit.map(|c| c.1)).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn flush_alerts(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
    ) -> Result<(), sqlx::Error> {
        for alert in &self.alerts {
            sqlx::query(sqlx::AssertSqlSafe(in_schema(schema,
                "insert into reporting.integrity_alerts (account_id, event_id, position, stream_version, reason)
                 values ($1, $2, $3, $4, $5)")),
            )
            .bind(alert.account_id)
            .bind(alert.event_id)
            .bind(alert.position)
            .bind(alert.stream_version)
            .bind(&alert.reason)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}
