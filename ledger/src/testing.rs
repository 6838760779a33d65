//! An in-memory ledger that writes hash-chained [`RecordedEvent`]s as the event store
//! would, for tests of consumers of the published language (projections, verification).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::json;

use crate::{
    AccountEvent, AccountId, CommandId, Currency, EventId, EventMetadata, Hash, HoldId,
    RecordedEvent, ReversalId, TransferId,
    events::{
        AccountOpened, HoldCaptured, HoldPlaced, Movement, MovementReversed, ReversedKind,
        StatusChange, TransferCredited, TransferDebited,
    },
    hashing::event_hash,
};

#[derive(Clone, Debug)]
struct Stream {
    currency: Currency,
    balance: Decimal,
    version: i64,
    head: Option<Hash>,
    recorded_at: Option<DateTime<Utc>>,
}

/// Accounts and their events, with positions assigned in the order events are made.
#[derive(Clone, Debug, Default)]
pub struct FakeLedger {
    next_position: i64,
    streams: HashMap<AccountId, Stream>,
    actor: Option<String>,
    correlation_id: Option<String>,
}

fn amount(value: &str) -> Decimal {
    value.parse().expect("a decimal amount")
}

impl FakeLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// The actor written into the metadata of events made from now on (default `teller-1`).
    pub fn acting_as(&mut self, actor: &str) -> &mut Self {
        self.actor = Some(actor.to_string());
        self
    }

    /// The correlation id written into events made from now on (default: a new one each).
    pub fn correlated(&mut self, correlation_id: Option<&str>) -> &mut Self {
        self.correlation_id = correlation_id.map(str::to_string);
        self
    }

    pub fn balance(&self, id: AccountId) -> Decimal {
        self.streams[&id].balance
    }

    pub fn open(&mut self, currency: &str, at: DateTime<Utc>) -> (AccountId, RecordedEvent) {
        let id = AccountId::generate();
        let currency = Currency::parse(currency).expect("a currency");
        self.streams.insert(
            id,
            Stream {
                currency,
                balance: currency.zero(),
                version: 0,
                head: None,
                recorded_at: None,
            },
        );
        let event = AccountEvent::AccountOpened(AccountOpened {
            account_id: id,
            holder: format!("Holder {}", &id.to_string()[..8]),
            currency,
            overdraft_limit: currency.zero(),
        });
        (id, self.record(id, &event, "openAccount", at))
    }

    pub fn deposit(&mut self, id: AccountId, value: &str, at: DateTime<Utc>) -> RecordedEvent {
        self.deposit_valued(id, value, at, at)
    }

    /// A deposit booked at `at` whose money moved at `value_date` (backdated when earlier).
    pub fn deposit_valued(
        &mut self,
        id: AccountId,
        value: &str,
        at: DateTime<Utc>,
        value_date: DateTime<Utc>,
    ) -> RecordedEvent {
        let event = AccountEvent::MoneyDeposited(self.movement(id, amount(value), value_date));
        self.record(id, &event, "deposit", at)
    }

    pub fn withdraw(&mut self, id: AccountId, value: &str, at: DateTime<Utc>) -> RecordedEvent {
        let event = AccountEvent::MoneyWithdrawn(self.movement(id, -amount(value), at));
        self.record(id, &event, "withdraw", at)
    }

    /// Both legs of a transfer, debit first.
    pub fn transfer(
        &mut self,
        from: AccountId,
        to: AccountId,
        value: &str,
        at: DateTime<Utc>,
    ) -> (RecordedEvent, RecordedEvent) {
        let transfer_id = TransferId::generate();
        let moved = amount(value);
        let currency = self.streams[&from].currency;
        let debit = {
            let stream = self.streams.get_mut(&from).expect("source account");
            stream.balance -= moved;
            AccountEvent::TransferDebited(TransferDebited {
                transfer_id,
                to_account_id: to,
                amount: moved,
                currency,
                balance_after: stream.balance,
                reference: Some("test transfer".into()),
                value_date: at,
            })
        };
        let credit = {
            let stream = self.streams.get_mut(&to).expect("destination account");
            stream.balance += moved;
            AccountEvent::TransferCredited(TransferCredited {
                transfer_id,
                from_account_id: from,
                amount: moved,
                currency,
                balance_after: stream.balance,
                reference: Some("test transfer".into()),
                value_date: at,
            })
        };
        (
            self.record(from, &debit, "transfer", at),
            self.record(to, &credit, "transfer", at),
        )
    }

    /// A hold of `value` placed at `at`, never expiring.
    pub fn place_hold(
        &mut self,
        id: AccountId,
        value: &str,
        at: DateTime<Utc>,
    ) -> (HoldId, RecordedEvent) {
        let hold_id = HoldId::generate();
        let event = AccountEvent::HoldPlaced(HoldPlaced {
            hold_id,
            amount: amount(value),
            currency: self.streams[&id].currency,
            expires_at: None,
            reference: None,
        });
        (hold_id, self.record(id, &event, "placeHold", at))
    }

    /// The capture of `value` of a hold of `held`, as a withdrawal at `at`.
    pub fn capture(
        &mut self,
        id: AccountId,
        hold_id: HoldId,
        value: &str,
        held: &str,
        at: DateTime<Utc>,
    ) -> RecordedEvent {
        let stream = self.streams.get_mut(&id).expect("an opened account");
        stream.balance -= amount(value);
        let event = AccountEvent::HoldCaptured(HoldCaptured {
            hold_id,
            amount: amount(value),
            released_amount: amount(held) - amount(value),
            currency: stream.currency,
            balance_after: stream.balance,
            value_date: at,
            to_account_id: None,
            transfer_id: None,
            reference: None,
        });
        self.record(id, &event, "captureHold", at)
    }

    /// The reversal, booked at `at`, of the deposit `deposit` of `value` on `id`.
    pub fn reverse_deposit(
        &mut self,
        id: AccountId,
        deposit: &RecordedEvent,
        value: &str,
        at: DateTime<Utc>,
    ) -> RecordedEvent {
        let stream = self.streams.get_mut(&id).expect("an opened account");
        stream.balance -= amount(value);
        let event = AccountEvent::MovementReversed(MovementReversed {
            reversal_id: ReversalId::generate(),
            reversed_event_id: deposit.event_id,
            reversed_kind: ReversedKind::Deposit,
            amount: -amount(value),
            currency: stream.currency,
            balance_after: stream.balance,
            value_date: at,
            transfer_id: None,
            counterparty_account_id: None,
            reason: "booked twice".into(),
        });
        self.record(id, &event, "reverse", at)
    }

    pub fn freeze(&mut self, id: AccountId, at: DateTime<Utc>) -> RecordedEvent {
        let event = AccountEvent::AccountFrozen(StatusChange {
            reason: "review".into(),
        });
        self.record(id, &event, "freezeAccount", at)
    }

    fn movement(&mut self, id: AccountId, signed: Decimal, value_date: DateTime<Utc>) -> Movement {
        let stream = self.streams.get_mut(&id).expect("an opened account");
        stream.balance += signed;
        Movement {
            amount: signed.abs(),
            currency: stream.currency,
            balance_after: stream.balance,
            reference: Some("test".into()),
            value_date,
        }
    }

    fn record(
        &mut self,
        id: AccountId,
        event: &AccountEvent,
        command_type: &str,
        at: DateTime<Utc>,
    ) -> RecordedEvent {
        self.next_position += 1;
        let command_id = CommandId::generate();
        let metadata = EventMetadata {
            actor: self.actor.clone().unwrap_or_else(|| "teller-1".into()),
            roles: vec!["teller".into()],
            correlation_id: self
                .correlation_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            causation_id: Some(command_id.to_string()),
            command_id,
            command_type: command_type.to_string(),
            idempotency_key: Some(format!("key-{}", self.next_position)),
            client_addr: Some("127.0.0.1".into()),
        };
        let stream = self.streams.get_mut(&id).expect("an opened account");
        let recorded_at = stream.recorded_at.map_or(at, |last| last.max(at));
        stream.version += 1;
        let mut recorded = RecordedEvent {
            position: self.next_position,
            event_id: EventId::generate(),
            stream_id: id,
            stream_version: stream.version,
            event_type: event.event_type().to_string(),
            event_version: event.event_version(),
            payload: event.to_payload(),
            metadata: serde_json::to_value(&metadata).unwrap_or_else(|_| json!({})),
            recorded_at,
            prev_hash: stream.head,
            hash: Hash::ZERO,
        };
        recorded.hash = event_hash(recorded.prev_hash.as_ref(), &recorded.hash_input());
        stream.head = Some(recorded.hash);
        stream.recorded_at = Some(recorded_at);
        recorded
    }
}
