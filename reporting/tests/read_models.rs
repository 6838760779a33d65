//! The query functions against real PostgreSQL, over read models filled by the projection:
//! balances as of an instant, statements, the audit trail and the projection's status.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use ledger::{AccountId, Currency};
use ledger::{ErrorCode, RecordedEvent, events::EVENT_TYPES};
use reporting::queries::{
    self, AuditFilter, EntryKind, PAGE_SIZE_MAX, QueryError, TwoAxes, audit_trail, balance_as_of,
    balances_as_of, projection_status, statement,
};
use rust_decimal::Decimal;
use support::{TestDb, at, distinct, ledger, positions};
use uuid::Uuid;

/// Read at value date `as_of` as known now.
fn known_now(as_of: chrono::DateTime<chrono::Utc>) -> TwoAxes {
    TwoAxes {
        as_of,
        known_at: chrono::Utc::now(),
    }
}

fn usd() -> Currency {
    Currency::parse("USD").expect("USD")
}

#[tokio::test]
async fn balance_as_of_is_null_before_opening_and_follows_each_change_inclusively() {
    let db = TestDb::new().await;
    let mut ledger = ledger();
    let (t1, t2, t3) = (at(9, 0, 0), at(10, 0, 0), at(11, 0, 0));
    let (id, opened) = ledger.open("USD", t1);
    let deposited = ledger.deposit(id, "100.00", t2);
    let withdrawn = ledger.withdraw(id, "30.25", t3);
    // Another account's activity at the same instants must not leak in.
    let (other, other_opened) = ledger.open("USD", t1);
    let other_deposited = ledger.deposit(other, "999.00", t2);
    db.apply([opened, other_opened, deposited, other_deposited, withdrawn])
        .await;

    let account = id;
    let seconds = Duration::seconds;
    let before_t1 = balance_as_of(&db.pool, account, known_now(t1 - seconds(1)))
        .await
        .expect("query");
    assert_eq!(before_t1, None, "no balance before the account was opened");

    let expected = [
        (t1, "0.00", 1, t1),
        (t1 + seconds(1), "0.00", 1, t1),
        (t2 - seconds(1), "0.00", 1, t1),
        (t2, "100.00", 2, t2),
        (t2 + seconds(1800), "100.00", 2, t2),
        (t3 - Duration::microseconds(1), "100.00", 2, t2),
        (t3, "69.75", 3, t3),
        (t3 + seconds(86_400 * 365), "69.75", 3, t3),
    ];
    for (as_of, balance, version, last_change_at) in expected {
        let found = balance_as_of(&db.pool, account, known_now(as_of))
            .await
            .expect("query")
            .unwrap_or_else(|| panic!("no balance at {as_of}"));
        assert_eq!(found.balance.to_string(), balance, "balance at {as_of}");
        assert_eq!(found.version, version, "version at {as_of}");
        assert_eq!(
            found.last_change_at, last_change_at,
            "last change at {as_of}"
        );
        assert_eq!(found.currency, usd());
        assert_eq!(found.account_id, account);
    }

    let unknown = balance_as_of(&db.pool, AccountId::generate(), known_now(t3))
        .await
        .expect("query");
    assert_eq!(unknown, None, "an unknown account has no balance");
}

#[tokio::test]
async fn balances_as_of_pages_every_account_once_and_totals_the_matching_accounts() {
    let db = TestDb::new().await;
    let mut ledger = ledger();
    let as_of = at(12, 0, 0);
    let mut events = Vec::new();
    // Expected balance at `as_of` of every account that existed then.
    let mut expected: BTreeMap<AccountId, (Currency, Decimal)> = BTreeMap::new();
    for (n, currency) in [
        "USD", "USD", "EUR", "USD", "JPY", "EUR", "USD", "USD", "EUR", "USD", "JPY",
    ]
    .into_iter()
    .enumerate()
    {
        let n = n as u32;
        let (id, opened) = ledger.open(currency, at(8, n, 0));
        events.push(opened);
        let amount = if currency == "JPY" {
            format!("{}", 1000 + n)
        } else {
            format!("{}.{:02}", 10 + n, n)
        };
        events.push(ledger.deposit(id, &amount, at(9, n, 0)));
        if n.is_multiple_of(3) {
            events.push(ledger.withdraw(id, "1", at(10, n, 0)));
        }
        let at_as_of = ledger.balance(id);
        // Changes after `as_of` must not count.
        events.push(ledger.deposit(id, "500", at(13, n, 0)));
        expected.insert(id, (Currency::parse(currency).expect("currency"), at_as_of));
    }
    // Opened after `as_of`: not part of the report.
    let (late, late_opened) = ledger.open("USD", at(12, 0, 1));
    events.push(late_opened);
    events.push(ledger.deposit(late, "5.00", at(12, 30, 0)));
    db.apply(events).await;

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    let totals = loop {
        let found = balances_as_of(&db.pool, known_now(as_of), None, 4, after, true)
            .await
            .expect("query");
        pages += 1;
        assert!(found.page.items.len() <= 4);
        for balance in &found.page.items {
            let (currency, amount) = &expected[&balance.account_id];
            assert_eq!(&balance.currency, currency);
            assert_eq!(
                balance.balance, *amount,
                "balance of {}",
                balance.account_id
            );
            assert!(balance.last_change_at <= as_of);
        }
        seen.extend(found.page.items.iter().map(|b| b.account_id));
        if !found.page.has_next_page {
            break found.totals.expect("totals asked for");
        }
        after = found.page.items.last().map(|b| b.key());
    };
    assert_eq!(pages, 3, "11 accounts in pages of 4");
    assert_eq!(
        distinct(&seen),
        expected.keys().copied().collect::<BTreeSet<_>>()
    );
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "ordered by account id"
    );

    let mut sums: BTreeMap<String, (Decimal, i64)> = BTreeMap::new();
    for (currency, amount) in expected.values() {
        let entry = sums.entry(currency.code().to_string()).or_default();
        entry.0 += *amount;
        entry.1 += 1;
    }
    let totals: BTreeMap<String, (Decimal, i64)> = totals
        .into_iter()
        .map(|t| (t.currency.code().to_string(), (t.total, t.accounts)))
        .collect();
    assert_eq!(
        totals, sums,
        "totals over every account, not just the last page"
    );
    assert_eq!(
        totals["USD"].0.to_string().split('.').nth(1).map(str::len),
        Some(2),
        "USD totals have cents"
    );

    let euro = ledger::Currency::parse("eur").expect("EUR");
    let euros = balances_as_of(
        &db.pool,
        known_now(as_of),
        Some(euro),
        PAGE_SIZE_MAX,
        None,
        true,
    )
    .await
    .expect("query");
    assert!(!euros.page.has_next_page);
    assert_eq!(euros.page.items.len(), 3);
    assert!(euros.page.items.iter().all(|b| b.currency == euro));
    let euro_totals = euros.totals.expect("totals");
    assert_eq!(euro_totals.len(), 1);
    assert_eq!(euro_totals[0].total, sums["EUR"].0);
    assert_eq!(euro_totals[0].accounts, 3);

    let before_any = balances_as_of(&db.pool, known_now(at(7, 0, 0)), None, 10, None, true)
        .await
        .expect("query");
    assert!(before_any.page.items.is_empty());
    assert_eq!(before_any.totals, Some(vec![]));
}

/// An account with movements before, at the edges of, inside and after a statement's range.
struct StatementFixture {
    db: TestDb,
    account: AccountId,
    counterparty: AccountId,
    in_range: Vec<RecordedEvent>,
}

async fn statement_fixture() -> StatementFixture {
    let db = TestDb::new().await;
    let mut ledger = ledger();
    let (id, opened) = ledger.open("USD", at(8, 0, 0));
    let (other, other_opened) = ledger.open("USD", at(8, 0, 0));
    let funded = ledger.deposit(other, "1000.00", at(8, 30, 0));
    let before = ledger.deposit(id, "200.00", at(9, 0, 0));
    let at_from = ledger.withdraw(id, "20.00", at(10, 0, 0));
    let d1 = ledger.deposit(id, "5.55", at(10, 15, 0));
    let (out_debit, out_credit) = ledger.transfer(id, other, "50.00", at(10, 30, 0));
    let (in_debit, in_credit) = ledger.transfer(other, id, "125.10", at(11, 0, 0));
    let frozen = ledger.freeze(other, at(11, 10, 0));
    let w1 = ledger.withdraw(id, "0.65", at(11, 30, 0));
    let at_to = ledger.deposit(id, "40.00", at(12, 0, 0));
    let after = ledger.withdraw(id, "1.00", at(12, 0, 1));
    let in_range = vec![
        at_from.clone(),
        d1.clone(),
        out_debit.clone(),
        in_credit.clone(),
        w1.clone(),
        at_to.clone(),
    ];
    db.apply([
        opened,
        other_opened,
        funded,
        before,
        at_from,
        d1,
        out_debit,
        out_credit,
        in_debit,
        in_credit,
        frozen,
        w1,
        at_to,
        after,
    ])
    .await;
    StatementFixture {
        db,
        account: id,
        counterparty: other,
        in_range,
    }
}

#[tokio::test]
async fn a_statement_opens_where_the_range_starts_and_its_lines_add_up_to_the_close() {
    let fixture = statement_fixture().await;
    let (from, to) = (at(10, 0, 0), at(12, 0, 0));
    let whole = statement(
        &fixture.db.pool,
        fixture.account,
        from,
        to,
        chrono::Utc::now(),
        PAGE_SIZE_MAX,
        None,
    )
    .await
    .expect("statement");
    assert_eq!(whole.currency, usd());
    assert_eq!(
        whole.opening_balance.to_string(),
        "200.00",
        "the balance just before from"
    );
    // 200 - 20 + 5.55 - 50 + 125.10 - 0.65 + 40 = 300.00
    assert_eq!(whole.closing_balance.to_string(), "300.00");
    assert_eq!(
        whole.total_credits.to_string(),
        "170.65",
        "5.55 + 125.10 + 40.00"
    );
    assert_eq!(
        whole.total_debits.to_string(),
        "70.65",
        "20.00 + 50.00 + 0.65, as a positive number"
    );
    assert_eq!(whole.entry_count, 6);
    let lines = &whole.entries.items;
    let sum: Decimal = lines.iter().map(|l| l.amount).sum();
    assert_eq!(whole.opening_balance + sum, whole.closing_balance);
    assert_eq!(
        lines.iter().map(|l| l.event_id).collect::<Vec<_>>(),
        fixture
            .in_range
            .iter()
            .map(|e| e.event_id)
            .collect::<Vec<_>>(),
        "both ends of the range are included, in version order"
    );
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.kind, l.amount.to_string()))
            .collect::<Vec<_>>(),
        vec![
            (EntryKind::Withdrawal, "-20.00".to_string()),
            (EntryKind::Deposit, "5.55".to_string()),
            (EntryKind::TransferOut, "-50.00".to_string()),
            (EntryKind::TransferIn, "125.10".to_string()),
            (EntryKind::Withdrawal, "-0.65".to_string()),
            (EntryKind::Deposit, "40.00".to_string()),
        ]
    );
    assert_eq!(lines[2].counterparty_account_id, Some(fixture.counterparty));
    assert_eq!(lines[3].counterparty_account_id, Some(fixture.counterparty));
    assert!(lines[2].transfer_id.is_some() && lines[2].transfer_id != lines[3].transfer_id);
    assert_eq!(lines[5].balance_after.to_string(), "300.00");

    let closing = balance_as_of(&fixture.db.pool, fixture.account, known_now(to))
        .await
        .expect("query")
        .expect("balance");
    assert_eq!(
        whole.closing_balance, closing.balance,
        "closing = balanceAsOf(to)"
    );
}

#[tokio::test]
async fn statement_pages_return_every_line_exactly_once() {
    let fixture = statement_fixture().await;
    let (from, to) = (at(10, 0, 0), at(12, 0, 0));
    let known_at = chrono::Utc::now();
    for size in [1, 2, 4, 5, 6] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = statement(
                &fixture.db.pool,
                fixture.account,
                from,
                to,
                known_at,
                size,
                after,
            )
            .await
            .expect("statement");
            assert_eq!(
                page.opening_balance.to_string(),
                "200.00",
                "every page carries the whole range's figures"
            );
            assert_eq!(page.closing_balance.to_string(), "300.00");
            assert!(page.entries.items.len() <= size);
            seen.extend(page.entries.items.iter().map(|l| l.event_id));
            if !page.entries.has_next_page {
                break;
            }
            after = page.entries.items.last().map(|l| l.key_in(&page.scope()));
        }
        assert_eq!(
            seen,
            fixture
                .in_range
                .iter()
                .map(|e| e.event_id)
                .collect::<Vec<_>>(),
            "pages of {size}"
        );
    }
}

#[tokio::test]
async fn a_statement_before_the_account_existed_is_empty_at_zero_and_bad_requests_are_refused() {
    let fixture = statement_fixture().await;
    let pool = &fixture.db.pool;
    let early = statement(
        pool,
        fixture.account,
        at(1, 0, 0),
        at(2, 0, 0),
        chrono::Utc::now(),
        10,
        None,
    )
    .await
    .expect("statement");
    assert_eq!(early.opening_balance.to_string(), "0.00");
    assert_eq!(early.closing_balance.to_string(), "0.00");
    assert_eq!(early.total_credits.to_string(), "0.00");
    assert_eq!(early.total_debits.to_string(), "0.00");
    assert!(early.entries.items.is_empty() && !early.entries.has_next_page);

    let Err(inverted) = statement(
        pool,
        fixture.account,
        at(12, 0, 0),
        at(10, 0, 0),
        chrono::Utc::now(),
        10,
        None,
    )
    .await
    else {
        panic!("from > to was accepted");
    };
    assert_eq!(inverted.code(), ErrorCode::Validation);
    assert!(inverted.to_string().starts_with("from: "), "{inverted}");

    let Err(unknown) = statement(
        pool,
        AccountId::generate(),
        at(10, 0, 0),
        at(12, 0, 0),
        chrono::Utc::now(),
        10,
        None,
    )
    .await
    else {
        panic!("a statement of an unknown account was answered");
    };
    assert_eq!(unknown.code(), ErrorCode::AccountNotFound);
    let api: platform::ApiError = unknown.into();
    assert_eq!(api.field.as_deref(), Some("accountId"));
}

#[tokio::test]
async fn a_statement_whose_sources_disagree_is_refused_as_internal() {
    let fixture = statement_fixture().await;
    // Corrupt one line behind the projection's back: the lines no longer add up to the history.
    sqlx::query("update reporting.ledger_entries set amount = amount + 1 where event_id = $1")
        .bind(fixture.in_range[1].event_id.as_uuid())
        .execute(&fixture.db.pool)
        .await
        .expect("corrupt a line");
    let result = statement(
        &fixture.db.pool,
        fixture.account,
        at(10, 0, 0),
        at(12, 0, 0),
        chrono::Utc::now(),
        10,
        None,
    )
    .await;
    let Err(error) = result else {
        panic!("a statement that does not add up was answered");
    };
    assert!(matches!(error, QueryError::Invariant(_)), "{error:?}");
    assert_eq!(error.code(), ErrorCode::Internal);
}

/// Events by two actors in two conversations, of every kind that moves money, over a morning.
struct AuditFixture {
    db: TestDb,
    events: Vec<RecordedEvent>,
    accounts: Vec<Uuid>,
}

async fn audit_fixture() -> AuditFixture {
    let db = TestDb::new().await;
    let mut ledger = ledger();
    let mut events = Vec::new();
    ledger.acting_as("alice").correlated(Some("batch-1"));
    let (a, opened_a) = ledger.open("EUR", at(9, 0, 0));
    let (b, opened_b) = ledger.open("EUR", at(9, 1, 0));
    events.extend([opened_a, opened_b]);
    events.push(ledger.deposit(a, "100.00", at(9, 5, 0)));
    ledger.acting_as("bob").correlated(Some("batch-2"));
    events.push(ledger.deposit(b, "40.00", at(9, 10, 0)));
    let (debit, credit) = ledger.transfer(a, b, "25.00", at(9, 20, 0));
    events.extend([debit, credit]);
    events.push(ledger.withdraw(b, "5.00", at(9, 30, 0)));
    ledger.acting_as("alice").correlated(None);
    events.push(ledger.deposit(a, "1.00", at(9, 40, 0)));
    events.push(ledger.freeze(b, at(9, 50, 0)));
    db.apply(events.clone()).await;
    AuditFixture {
        db,
        events,
        accounts: vec![a.as_uuid(), b.as_uuid()],
    }
}

fn metadata_text(event: &RecordedEvent, key: &str) -> Option<String> {
    event
        .metadata
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// Every entry matching `filter`, following the pages of `size`.
async fn whole_trail(db: &TestDb, filter: &AuditFilter, size: usize) -> Vec<queries::AuditEntry> {
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let page = audit_trail(&db.pool, filter, size, after)
            .await
            .expect("audit trail");
        assert!(page.items.len() <= size);
        entries.extend(page.items.iter().cloned());
        if !page.has_next_page {
            return entries;
        }
        after = page.items.last().map(|e| e.key());
    }
}

#[tokio::test]
async fn the_audit_trail_holds_every_event_with_its_actor_correlation_key_and_hashes() {
    let fixture = audit_fixture().await;
    let trail = whole_trail(&fixture.db, &AuditFilter::default(), PAGE_SIZE_MAX).await;
    assert_eq!(trail.len(), fixture.events.len());
    for (entry, event) in trail.iter().zip(&fixture.events) {
        assert_eq!(entry.position, event.position);
        assert_eq!(entry.event_id, event.event_id.as_uuid());
        assert_eq!(entry.event_type, event.event_type);
        assert_eq!(entry.event_version, event.event_version);
        assert_eq!(entry.account_id, event.stream_id.as_uuid());
        assert_eq!(entry.stream_version, event.stream_version);
        assert_eq!(entry.recorded_at, event.recorded_at);
        assert_eq!(Some(entry.actor.clone()), metadata_text(event, "actor"));
        assert_eq!(entry.correlation_id, metadata_text(event, "correlationId"));
        assert_eq!(
            entry.idempotency_key,
            metadata_text(event, "idempotencyKey")
        );
        assert!(
            entry.idempotency_key.is_some(),
            "every command carried a key"
        );
        assert_eq!(entry.payload, event.payload);
        assert_eq!(entry.hash, event.hash);
        assert_eq!(entry.previous_hash, event.prev_hash);
    }
}

#[tokio::test]
async fn each_audit_filter_returns_exactly_the_matching_events() {
    let fixture = audit_fixture().await;
    let events = &fixture.events;
    let matching = |keep: &dyn Fn(&RecordedEvent) -> bool| -> Vec<i64> {
        events
            .iter()
            .filter(|e| keep(e))
            .map(|e| e.position)
            .collect()
    };
    let (a, b) = (fixture.accounts[0], fixture.accounts[1]);
    let types = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let cases: Vec<(&str, AuditFilter, Vec<i64>)> = vec![
        (
            "account",
            AuditFilter::parse(Some(b), None, None, None, None, None).expect("filter"),
            matching(&|e| e.stream_id.as_uuid() == b),
        ),
        (
            "actor",
            AuditFilter::parse(None, Some("bob"), None, None, None, None).expect("filter"),
            matching(&|e| metadata_text(e, "actor").as_deref() == Some("bob")),
        ),
        (
            "event types",
            AuditFilter::parse(
                None,
                None,
                Some(&types(&["MoneyDeposited", "AccountFrozen"])),
                None,
                None,
                None,
            )
            .expect("filter"),
            matching(&|e| e.event_type == "MoneyDeposited" || e.event_type == "AccountFrozen"),
        ),
        (
            "one event type",
            AuditFilter::parse(
                None,
                None,
                Some(&types(&["TransferCredited"])),
                None,
                None,
                None,
            )
            .expect("filter"),
            matching(&|e| e.event_type == "TransferCredited"),
        ),
        (
            "correlation id",
            AuditFilter::parse(None, None, None, Some("batch-1"), None, None).expect("filter"),
            matching(&|e| metadata_text(e, "correlationId").as_deref() == Some("batch-1")),
        ),
        (
            "time range, both ends inclusive",
            AuditFilter::parse(
                None,
                None,
                None,
                None,
                Some(at(9, 10, 0)),
                Some(at(9, 40, 0)),
            )
            .expect("filter"),
            matching(&|e| e.recorded_at >= at(9, 10, 0) && e.recorded_at <= at(9, 40, 0)),
        ),
        (
            "from only",
            AuditFilter::parse(None, None, None, None, Some(at(9, 30, 0)), None).expect("filter"),
            matching(&|e| e.recorded_at >= at(9, 30, 0)),
        ),
        (
            "account and actor and type",
            AuditFilter::parse(
                Some(a),
                Some("alice"),
                Some(&types(&["MoneyDeposited"])),
                None,
                None,
                None,
            )
            .expect("filter"),
            matching(&|e| {
                e.stream_id.as_uuid() == a
                    && metadata_text(e, "actor").as_deref() == Some("alice")
                    && e.event_type == "MoneyDeposited"
            }),
        ),
        (
            "nothing matches",
            AuditFilter::parse(
                Some(a),
                Some("bob"),
                Some(&types(&["MoneyWithdrawn"])),
                None,
                None,
                None,
            )
            .expect("filter"),
            vec![],
        ),
    ];
    for (name, filter, expected) in cases {
        let found: Vec<i64> = whole_trail(&fixture.db, &filter, PAGE_SIZE_MAX)
            .await
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(found, expected, "filter by {name}");
    }
    // The fixture exercises each filter meaningfully: none of them is all or nothing.
    assert!(
        matching(&|e| metadata_text(e, "actor").as_deref() == Some("bob")).len() < events.len()
    );

    let unknown = types(&["MoneyDeposited", "MoneyPrinted"]);
    let Err(error) = AuditFilter::parse(None, None, Some(&unknown), None, None, None) else {
        panic!("an unknown event type was accepted");
    };
    assert_eq!(error.code(), ErrorCode::Validation);
    assert!(
        error.to_string().contains(EVENT_TYPES[0]),
        "names the known types: {error}"
    );
}

#[tokio::test]
async fn audit_trail_pages_return_each_entry_exactly_once() {
    let fixture = audit_fixture().await;
    let all = positions(&fixture.events);
    for size in [1, 2, 3, 9, 10] {
        let found: Vec<i64> = whole_trail(&fixture.db, &AuditFilter::default(), size)
            .await
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(found, all, "pages of {size}");
        distinct(&found);
    }
    let bob = AuditFilter::parse(None, Some("bob"), None, None, None, None).expect("filter");
    let found: Vec<i64> = whole_trail(&fixture.db, &bob, 2)
        .await
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(
        found.len(),
        4,
        "bob's deposit, both transfer legs and a withdrawal"
    );
    distinct(&found);

    let empty = audit_trail(&fixture.db.pool, &AuditFilter::default(), 0, None)
        .await
        .expect("audit trail");
    assert!(
        empty.items.is_empty() && empty.has_next_page,
        "a page of 0 still says more follow"
    );
}

#[tokio::test]
async fn projection_status_reports_the_checkpoint_and_integrity_failures() {
    let db = TestDb::new().await;
    let empty = projection_status(&db.pool, &db.stream)
        .await
        .expect("status");
    assert_eq!(empty.position, None);
    assert_eq!(empty.applied_events, 0);

    let mut ledger = ledger();
    let (id, opened) = ledger.open("GBP", at(9, 0, 0));
    let deposited = ledger.deposit(id, "10.00", at(9, 1, 0));
    let last_position = deposited.position;
    db.apply([opened, deposited]).await;
    let (victim, victim_opened) = ledger.open("GBP", at(9, 2, 0));
    let mut tampered = ledger.deposit(victim, "10.00", at(9, 3, 0));
    db.apply([victim_opened]).await;
    tampered.payload["amount"] = serde_json::json!("10000.00");
    db.deliver([tampered]).await;

    let status = projection_status(&db.pool, &db.stream)
        .await
        .expect("status");
    assert_eq!(
        status.position,
        Some(last_position + 1),
        "the last event applied: the victim's opening"
    );
    assert_eq!(status.applied_events, 3);
    assert_eq!(
        (status.delivered_sequence, status.watermark_sequence),
        (4, 4),
        "the refused message is settled too"
    );
    assert_eq!(status.parked_events, 0);
    assert!(status.updated_at.is_some());
    assert_eq!(status.integrity_alerts, 1);
    assert_eq!(status.halted_accounts, vec![victim.as_uuid()]);
}

/// An instant of March or April 2026.
fn on(month: u32, day: u32, hour: u32, minute: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2026, month, day, hour, minute, 0)
        .single()
        .expect("an instant")
}

#[tokio::test]
async fn balances_and_statements_read_on_two_axes_and_a_past_answer_stays_put() {
    let db = TestDb::new().await;
    let mut ledger = ledger();
    let (id, opened) = ledger.open("USD", on(3, 1, 9, 0));
    let march = ledger.deposit(id, "100.00", on(3, 10, 9, 0));
    let april = ledger.withdraw(id, "30.00", on(4, 1, 10, 0));
    db.apply([opened, march.clone(), april.clone()]).await;
    let month_end = on(3, 31, 23, 59);
    let known_before = on(4, 2, 8, 0);
    let at = |as_of, known_at| TwoAxes { as_of, known_at };
    let balance = |axes: TwoAxes| {
        let pool = db.pool.clone();
        async move {
            balance_as_of(&pool, id, axes)
                .await
                .expect("query")
                .expect("a balance")
                .balance
                .to_string()
        }
    };
    assert_eq!(balance(at(month_end, known_before)).await, "100.00");

    // Booked on 2 April, valued 31 March at noon: it belongs to March.
    let backdated = ledger.deposit_valued(id, "50.00", on(4, 2, 9, 0), on(3, 31, 12, 0));
    let (hold, placed) = ledger.place_hold(id, "20.00", on(4, 2, 10, 0));
    let captured = ledger.capture(id, hold, "15.00", "20.00", on(4, 2, 11, 0));
    let reversal = ledger.reverse_deposit(id, &march, "100.00", on(4, 3, 9, 0));
    db.apply([
        backdated.clone(),
        placed,
        captured.clone(),
        reversal.clone(),
    ])
    .await;

    let now = chrono::Utc::now();
    assert_eq!(
        balance(at(month_end, known_before)).await,
        "100.00",
        "asked as known before the backdating: the same answer as before"
    );
    assert_eq!(balance(at(month_end, now)).await, "150.00");
    assert_eq!(
        balance(at(month_end, on(4, 2, 9, 0))).await,
        "150.00",
        "known at the booking instant itself"
    );
    assert_eq!(
        balance(at(on(3, 31, 11, 0), now)).await,
        "100.00",
        "valued before the backdated movement's value date"
    );
    assert_eq!(balance(at(on(4, 1, 12, 0), known_before)).await, "70.00");
    assert_eq!(balance(at(on(4, 1, 12, 0), now)).await, "120.00");
    assert_eq!(balance(at(now, now)).await, "5.00");

    let totals = balances_as_of(&db.pool, at(month_end, known_before), None, 10, None, true)
        .await
        .expect("query")
        .totals
        .expect("totals");
    assert_eq!(totals[0].total.to_string(), "100.00");
    let totals = balances_as_of(&db.pool, at(month_end, now), None, 10, None, true)
        .await
        .expect("query")
        .totals
        .expect("totals");
    assert_eq!(totals[0].total.to_string(), "150.00");

    let (march_1, march_end) = (on(3, 1, 0, 0), month_end);
    let before = statement(&db.pool, id, march_1, march_end, known_before, 50, None)
        .await
        .expect("statement");
    assert_eq!(before.closing_balance.to_string(), "100.00");
    assert_eq!(before.entries.items.len(), 1);
    assert_eq!(
        before.entries.items[0].reversed_by_event_id, None,
        "the reversal was not known yet"
    );
    let after = statement(&db.pool, id, march_1, march_end, now, 50, None)
        .await
        .expect("statement");
    assert_eq!(after.opening_balance.to_string(), "0.00");
    assert_eq!(after.closing_balance.to_string(), "150.00");
    let lines: Vec<(EntryKind, String, String)> = after
        .entries
        .items
        .iter()
        .map(|l| (l.kind, l.amount.to_string(), l.balance_after.to_string()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (EntryKind::Deposit, "100.00".into(), "100.00".into()),
            (EntryKind::Deposit, "50.00".into(), "150.00".into()),
        ],
        "in value-date order, with the running balance on that axis"
    );
    assert_eq!(
        after.entries.items[0].reversed_by_event_id,
        Some(reversal.event_id)
    );
    assert_eq!(after.entries.items[1].value_date, on(3, 31, 12, 0));
    assert_eq!(after.entries.items[1].recorded_at, on(4, 2, 9, 0));

    let april_statement = statement(&db.pool, id, on(4, 1, 0, 0), on(4, 30, 0, 0), now, 50, None)
        .await
        .expect("statement");
    assert_eq!(april_statement.opening_balance.to_string(), "150.00");
    let lines: Vec<(EntryKind, String, String)> = april_statement
        .entries
        .items
        .iter()
        .map(|l| (l.kind, l.amount.to_string(), l.balance_after.to_string()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (EntryKind::Withdrawal, "-30.00".into(), "120.00".into()),
            (EntryKind::HoldCapture, "-15.00".into(), "105.00".into()),
            (EntryKind::Reversal, "-100.00".into(), "5.00".into()),
        ]
    );
    assert_eq!(
        april_statement.entries.items[2].reverses_event_id,
        Some(march.event_id)
    );
    assert_eq!(april_statement.closing_balance.to_string(), "5.00");
    let held: Decimal =
        sqlx::query_scalar("select held from reporting.account_balances where account_id = $1")
            .bind(id.as_uuid())
            .fetch_one(&db.pool)
            .await
            .expect("held");
    assert!(held.is_zero(), "the capture settled the whole hold: {held}");

    // Opened in April, with money that moved for it on 31 March.
    let (late, late_opened) = ledger.open("USD", on(4, 2, 12, 0));
    let valued_in_march = ledger.deposit_valued(late, "7.00", on(4, 2, 12, 5), on(3, 31, 9, 0));
    db.apply([late_opened, valued_in_march.clone()]).await;
    let late_balance = balance_as_of(&db.pool, late, at(month_end, now))
        .await
        .expect("query")
        .expect("money valued in March");
    assert_eq!(late_balance.balance.to_string(), "7.00");
    assert_eq!(late_balance.version, 2, "the last booking counted");
    assert_eq!(late_balance.last_change_at, valued_in_march.recorded_at);
    assert_eq!(
        balance_as_of(&db.pool, late, at(month_end, known_before))
            .await
            .expect("query"),
        None,
        "unknown before it was opened"
    );
}

#[tokio::test]
async fn a_statement_cursor_belongs_to_its_statement() {
    let fixture = statement_fixture().await;
    let pool = &fixture.db.pool;
    let (from, to) = (at(10, 0, 0), at(12, 0, 0));
    let known_at = chrono::Utc::now();
    let first = statement(pool, fixture.account, from, to, known_at, 2, None)
        .await
        .expect("statement");
    let cursor = first.entries.items[1].key_in(&first.scope());
    let next = statement(pool, fixture.account, from, to, known_at, 2, Some(cursor))
        .await
        .expect("the next page");
    assert_eq!(
        next.entries.items[0].balance_after,
        first.entries.items[1].balance_after + next.entries.items[0].amount
    );
    for (account, from, known_at) in [
        (fixture.counterparty, from, known_at),
        (fixture.account, at(10, 0, 1), known_at),
        (fixture.account, from, known_at + Duration::seconds(1)),
    ] {
        let Err(refused) = statement(pool, account, from, to, known_at, 2, Some(cursor)).await
        else {
            panic!("a cursor of another statement was accepted");
        };
        assert_eq!(refused.code(), ErrorCode::Validation);
        assert!(refused.to_string().starts_with("after: "), "{refused}");
    }
}
