//! The reporting queries through the platform: balances as of any instant, statements, the
//! audit trail and the access log, and `atLeast` read-your-writes with the projection status.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    AUDITOR_SUB, AccessLogEntry, AccountPayload, AuditEntry, BalancesAsOf, DEPOSIT, Gql,
    HistoricalBalance, MovementPayload, OPEN_ACCOUNT, Page, ProjectionStatus, Statement, TRANSFER,
    TestApp, TransferPayload, WITHDRAW, assert_message_names, eventually, key, position, spawn_app,
    spawn_app_with,
};

fn instant(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw)
        .unwrap_or_else(|e| panic!("{raw:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// An instant as a client sends it, to the microsecond (what PostgreSQL keeps).
fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `at` cut to the microsecond, so that it survives [`rfc3339`] unchanged.
fn to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

fn decimal(raw: &str) -> Decimal {
    raw.parse()
        .unwrap_or_else(|e| panic!("{raw:?} is not a decimal: {e}"))
}

/// A statement line as compared here: kind, amount, balance after, reference,
/// counterparty and transfer.
type Line<'a> = (
    &'a str,
    Decimal,
    Decimal,
    Option<&'a str>,
    Option<Uuid>,
    Option<Uuid>,
);

const MICROSECOND: TimeDelta = TimeDelta::microseconds(1);

/// When each event of `account` was recorded, by stream version, as the event store says.
async fn recorded_times(app: &TestApp, account: Uuid) -> Vec<DateTime<Utc>> {
    sqlx::query_scalar(
        "select recorded_at from accounts.events where stream_id = $1 order by stream_version",
    )
    .bind(account)
    .fetch_all(&app.pool)
    .await
    .expect("read the recorded times")
}

async fn teller_mutation(app: &TestApp, query: &str, input: Value) -> Gql {
    app.execute(Some(app.teller()), &[], query, json!({ "input": input }))
        .await
}

/// A `balanceAsOf` answer that must be the balance after the change at `version`, recorded at `at`.
fn assert_balance(
    found: Option<HistoricalBalance>,
    account: Uuid,
    asked: DateTime<Utc>,
    balance: &str,
    version: i64,
    at: DateTime<Utc>,
) {
    let found = found.unwrap_or_else(|| panic!("no balance as of {asked}"));
    assert_eq!(found.account_id, account);
    assert_eq!(
        decimal(&found.balance),
        decimal(balance),
        "balance as of {asked}: {found:?}"
    );
    assert_eq!(found.version, version, "version as of {asked}: {found:?}");
    assert_eq!(instant(&found.last_change_at), at, "as of {asked}");
    assert_eq!(
        instant(&found.as_of),
        asked,
        "asOf echoes the instant asked"
    );
}

#[tokio::test]
async fn balance_as_of_answers_every_instant_around_each_movement() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada Lovelace").await.id;
    let b = app.open_usd("Grace Hopper").await.id;
    teller_mutation(
        &app,
        DEPOSIT,
        json!({ "accountId": a, "amount": "100.00", "reference": "salary", "idempotencyKey": key() }),
    )
    .await
    .data("deposit");
    teller_mutation(
        &app,
        WITHDRAW,
        json!({ "accountId": a, "amount": "30.00", "reference": "rent", "idempotencyKey": key() }),
    )
    .await
    .data("withdraw");
    let out: TransferPayload = teller_mutation(
        &app,
        TRANSFER,
        json!({ "fromAccountId": a, "toAccountId": b, "amount": "20.00", "reference": "dinner", "idempotencyKey": key() }),
    )
    .await
    .parse("transfer");
    app.deposited(b, "50.00").await;
    let back: TransferPayload = teller_mutation(
        &app,
        TRANSFER,
        json!({ "fromAccountId": b, "toAccountId": a, "amount": "5.25", "reference": "share", "idempotencyKey": key() }),
    )
    .await
    .parse("transfer");
    let eur: AccountPayload = teller_mutation(
        &app,
        OPEN_ACCOUNT,
        json!({ "holder": "Emmy Noether", "currency": "EUR", "idempotencyKey": key() }),
    )
    .await
    .parse("openAccount");
    let e = eur.account.id;
    let last = app.deposited(e, "10.00").await.position;

    // A's history: opened, +100.00, -30.00, -20.00 to B, +5.25 from B.
    let balances = ["0.00", "100.00", "70.00", "50.00", "55.25"];
    let times = recorded_times(&app, a).await;
    assert_eq!(times.len(), balances.len(), "A has one event per mutation");
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");

    let before_opening = times[0] - MICROSECOND;
    assert_eq!(
        app.balance_at(a, &rfc3339(before_opening), &last).await,
        None,
        "no balance before the account was opened"
    );
    for (index, (at, balance)) in times.iter().zip(balances).enumerate() {
        let version = i64::try_from(index).expect("small") + 1;
        let exactly = app.balance_at(a, &rfc3339(*at), &last).await;
        assert_balance(exactly, a, *at, balance, version, *at);
        let next = times.get(index + 1).copied();
        let until = next.unwrap_or_else(|| to_micros(Utc::now()));
        for between in [to_micros(*at + (until - *at) / 2), until - MICROSECOND] {
            let found = app.balance_at(a, &rfc3339(between), &last).await;
            assert_balance(found, a, between, balance, version, *at);
        }
    }
    let later = to_micros(Utc::now() + TimeDelta::days(1));
    let found = app.balance_at(a, &rfc3339(later), &last).await;
    assert_balance(found, a, later, "55.25", 5, times[4]);

    // Every account then, with totals per currency over all of them.
    let everyone: BalancesAsOf = app
        .balances_as_of(
            app.teller(),
            json!({ "asOf": rfc3339(later), "atLeast": last }),
        )
        .await
        .parse("balancesAsOf");
    let mut expected = [
        (a, "USD", "55.25"),
        (b, "USD", "64.75"),
        (e, "EUR", "10.00"),
    ];
    expected.sort();
    let found: Vec<(Uuid, String, Decimal)> = everyone
        .edges
        .iter()
        .map(|edge| {
            (
                edge.node.account_id,
                edge.node.currency.clone(),
                decimal(&edge.node.balance),
            )
        })
        .collect();
    let wanted: Vec<(Uuid, String, Decimal)> = expected
        .iter()
        .map(|(id, currency, balance)| (*id, currency.to_string(), decimal(balance)))
        .collect();
    assert_eq!(found, wanted, "one row per account, by account id");
    for edge in &everyone.edges {
        let alone = app
            .balance_at(edge.node.account_id, &rfc3339(later), &last)
            .await;
        assert_eq!(
            alone.as_ref(),
            Some(&edge.node),
            "balancesAsOf agrees with balanceAsOf"
        );
    }
    assert_totals(&everyone);
    let totals: Vec<(String, Decimal, i64)> = everyone
        .totals
        .iter()
        .map(|t| (t.currency.clone(), decimal(&t.total), t.accounts))
        .collect();
    assert_eq!(
        totals,
        vec![
            ("EUR".to_string(), decimal("10.00"), 1),
            ("USD".to_string(), decimal("120.00"), 2),
        ]
    );

    // Just before the EUR account was opened, it is not there yet.
    let e_opened = recorded_times(&app, e).await[0];
    let earlier: BalancesAsOf = app
        .balances_as_of(
            app.teller(),
            json!({ "asOf": rfc3339(e_opened - MICROSECOND), "atLeast": last }),
        )
        .await
        .parse("balancesAsOf");
    let accounts: Vec<Uuid> = earlier.edges.iter().map(|e| e.node.account_id).collect();
    let mut usd = vec![a, b];
    usd.sort();
    assert_eq!(accounts, usd);
    assert_totals(&earlier);
    assert_eq!(earlier.totals.len(), 1, "{earlier:?}");
    assert_eq!(decimal(&earlier.totals[0].total), decimal("120.00"));

    // One currency only.
    let euros: BalancesAsOf = app
        .balances_as_of(
            app.teller(),
            json!({ "asOf": rfc3339(later), "currency": "EUR", "atLeast": last }),
        )
        .await
        .parse("balancesAsOf");
    assert_eq!(euros.edges.len(), 1, "{euros:?}");
    assert_eq!(euros.edges[0].node.account_id, e);
    assert_totals(&euros);

    // A's statement over its whole life, then from the withdrawal on.
    let whole: Statement = app
        .statement(
            app.teller(),
            json!({ "accountId": a, "from": rfc3339(times[0]), "to": rfc3339(later), "atLeast": last }),
        )
        .await
        .parse("statement");
    assert_eq!(whole.account_id, a);
    assert_eq!(whole.currency, "USD");
    assert_statement_adds_up(&whole);
    assert_eq!(decimal(&whole.opening_balance), Decimal::ZERO);
    assert_eq!(decimal(&whole.closing_balance), decimal("55.25"));
    assert_eq!(decimal(&whole.total_credits), decimal("105.25"));
    assert_eq!(decimal(&whole.total_debits), decimal("50.00"));
    assert_eq!(whole.entry_count, 4);
    let entries = whole.entries.clone().nodes();
    let lines: Vec<Line> = entries
        .iter()
        .map(|e| {
            (
                e.kind.as_str(),
                decimal(&e.amount),
                decimal(&e.balance_after),
                e.reference.as_deref(),
                e.counterparty_account_id,
                e.transfer_id,
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "DEPOSIT",
                decimal("100.00"),
                decimal("100.00"),
                Some("salary"),
                None,
                None
            ),
            (
                "WITHDRAWAL",
                decimal("-30.00"),
                decimal("70.00"),
                Some("rent"),
                None,
                None
            ),
            (
                "TRANSFER_OUT",
                decimal("-20.00"),
                decimal("50.00"),
                Some("dinner"),
                Some(b),
                Some(out.transfer_id)
            ),
            (
                "TRANSFER_IN",
                decimal("5.25"),
                decimal("55.25"),
                Some("share"),
                Some(b),
                Some(back.transfer_id)
            ),
        ]
    );
    for (entry, at) in entries.iter().zip(&times[1..]) {
        assert_eq!(instant(&entry.recorded_at), *at, "{entry:?}");
    }
    let versions: Vec<i64> = entries.iter().map(|e| e.version).collect();
    assert_eq!(versions, [2, 3, 4, 5]);
    assert!(
        entries
            .windows(2)
            .all(|w| position(&w[0].position) < position(&w[1].position)),
        "{entries:?}"
    );

    let partial: Statement = app
        .statement(
            app.teller(),
            json!({ "accountId": a, "from": rfc3339(times[2]), "to": rfc3339(times[4]), "atLeast": last }),
        )
        .await
        .parse("statement");
    assert_statement_adds_up(&partial);
    assert_eq!(decimal(&partial.opening_balance), decimal("100.00"));
    assert_eq!(decimal(&partial.closing_balance), decimal("55.25"));
    assert_eq!(decimal(&partial.total_credits), decimal("5.25"));
    assert_eq!(decimal(&partial.total_debits), decimal("50.00"));
    let kinds: Vec<String> = partial
        .entries
        .nodes()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["WITHDRAWAL", "TRANSFER_OUT", "TRANSFER_IN"]);

    // B's side of the same transfers.
    let b_statement: Statement = app
        .statement(
            app.teller(),
            json!({ "accountId": b, "from": rfc3339(times[0]), "to": rfc3339(later), "atLeast": last }),
        )
        .await
        .parse("statement");
    assert_statement_adds_up(&b_statement);
    let b_lines: Vec<(String, Decimal, Option<Uuid>)> = b_statement
        .entries
        .nodes()
        .into_iter()
        .map(|e| (e.kind, decimal(&e.amount), e.counterparty_account_id))
        .collect();
    assert_eq!(
        b_lines,
        vec![
            ("TRANSFER_IN".to_string(), decimal("20.00"), Some(a)),
            ("DEPOSIT".to_string(), decimal("50.00"), None),
            ("TRANSFER_OUT".to_string(), decimal("-5.25"), Some(a)),
        ]
    );
}

/// Per currency, the totals are the sum of the listed accounts' balances.
fn assert_totals(balances: &BalancesAsOf) {
    assert!(!balances.page_info.has_next_page, "one page holds them all");
    let mut sums: Vec<(String, Decimal, i64)> = Vec::new();
    for edge in &balances.edges {
        let amount = decimal(&edge.node.balance);
        match sums.iter_mut().find(|(c, _, _)| *c == edge.node.currency) {
            Some((_, sum, count)) => {
                *sum += amount;
                *count += 1;
            }
            None => sums.push((edge.node.currency.clone(), amount, 1)),
        }
    }
    sums.sort();
    let totals: Vec<(String, Decimal, i64)> = balances
        .totals
        .iter()
        .map(|t| (t.currency.clone(), decimal(&t.total), t.accounts))
        .collect();
    assert_eq!(totals, sums, "totals are the sums of the accounts listed");
}

/// Opening plus the entries is the closing balance, entry by entry, and the credits and
/// debits are the positive and negative entries.
fn assert_statement_adds_up(statement: &Statement) {
    assert!(
        !statement.entries.page_info.has_next_page,
        "one page holds them all"
    );
    let mut running = decimal(&statement.opening_balance);
    let (mut credits, mut debits) = (Decimal::ZERO, Decimal::ZERO);
    let mut previous: Option<DateTime<Utc>> = None;
    for edge in &statement.entries.edges {
        let entry = &edge.node;
        let amount = decimal(&entry.amount);
        running += amount;
        if amount > Decimal::ZERO {
            credits += amount;
        } else {
            debits -= amount;
        }
        assert_eq!(running, decimal(&entry.balance_after), "{entry:?}");
        let at = instant(&entry.recorded_at);
        assert!(
            previous.is_none_or(|p| p <= at),
            "entries in time order: {statement:?}"
        );
        assert!(
            instant(&statement.from) <= at && at <= instant(&statement.to),
            "{entry:?} is inside the range"
        );
        previous = Some(at);
    }
    assert_eq!(
        running,
        decimal(&statement.closing_balance),
        "{statement:?}"
    );
    assert_eq!(credits, decimal(&statement.total_credits), "{statement:?}");
    assert_eq!(debits, decimal(&statement.total_debits), "{statement:?}");
    assert_eq!(
        statement.entry_count,
        i64::try_from(statement.entries.edges.len()).expect("small")
    );
}

/// One event a mutation wrote, with what its sender said about it.
struct Sent {
    account: Uuid,
    event_type: &'static str,
    actor: &'static str,
    correlation_id: String,
    idempotency_key: String,
    command_type: &'static str,
}

/// Mutations sent by named actors, each in a conversation of its own (`X-Correlation-Id`)
/// with a key of its own, and the events they are expected to have written.
struct Conversations<'a> {
    app: &'a TestApp,
    sent: Vec<Sent>,
    last_position: String,
}

impl<'a> Conversations<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            sent: Vec::new(),
            last_position: "0".to_string(),
        }
    }

    /// Sends the mutation `command` (`openAccount`, `deposit`, `withdraw` or `transfer`)
    /// with `input` as `actor`; returns its payload.
    async fn send(&mut self, actor: &'static str, command: &'static str, input: Value) -> Value {
        let (query, events): (&str, &[(&str, &'static str)]) = match command {
            "openAccount" => (OPEN_ACCOUNT, &[("account", "AccountOpened")]),
            "deposit" => (DEPOSIT, &[("account", "MoneyDeposited")]),
            "withdraw" => (WITHDRAW, &[("account", "MoneyWithdrawn")]),
            "transfer" => (
                TRANSFER,
                &[("from", "TransferDebited"), ("to", "TransferCredited")],
            ),
            other => panic!("no events known for {other}"),
        };
        let token = self.app.token(actor, &[platform::Role::Teller]);
        let correlation_id = format!("corr-{}", Uuid::new_v4());
        let idempotency_key = key();
        let mut input = input;
        input["idempotencyKey"] = json!(idempotency_key);
        let payload = self
            .app
            .execute(
                Some(&token),
                &[("X-Correlation-Id", correlation_id.as_str())],
                query,
                json!({ "input": input }),
            )
            .await
            .data(command)
            .clone();
        self.last_position = payload["position"]
            .as_str()
            .expect("a position")
            .to_string();
        for (side, event_type) in events {
            self.sent.push(Sent {
                account: uuid(&payload[side]["id"]),
                event_type,
                actor,
                correlation_id: correlation_id.clone(),
                idempotency_key: idempotency_key.clone(),
                command_type: command,
            });
        }
        payload
    }
}

#[tokio::test]
async fn the_audit_trail_names_who_did_what_in_which_conversation() {
    let app = spawn_app().await;
    let mut conversations = Conversations::new(&app);
    let (ann, bob) = ("teller-ann", "teller-bob");
    let opened = conversations
        .send(
            ann,
            "openAccount",
            json!({ "holder": "Ada", "currency": "USD" }),
        )
        .await;
    let x = uuid(&opened["account"]["id"]);
    let opened = conversations
        .send(
            bob,
            "openAccount",
            json!({ "holder": "Grace", "currency": "USD" }),
        )
        .await;
    let y = uuid(&opened["account"]["id"]);
    conversations
        .send(ann, "deposit", json!({ "accountId": x, "amount": "10.00" }))
        .await;
    conversations
        .send(bob, "deposit", json!({ "accountId": x, "amount": "5.00" }))
        .await;
    conversations
        .send(bob, "withdraw", json!({ "accountId": x, "amount": "3.00" }))
        .await;
    conversations
        .send(
            ann,
            "transfer",
            json!({ "fromAccountId": x, "toAccountId": y, "amount": "2.00" }),
        )
        .await;
    let Conversations {
        sent,
        last_position: last,
        ..
    } = conversations;
    assert_eq!(sent.len(), 7);

    let auditor = app.auditor();
    let trail = app.whole_audit_trail(&auditor, json!({}), 50, &last).await;
    assert_eq!(trail.len(), sent.len(), "one entry per event: {trail:?}");
    assert!(
        trail
            .windows(2)
            .all(|w| position(&w[0].position) < position(&w[1].position)),
        "by position"
    );
    assert_eq!(
        trail.last().map(|e| position(&e.position)),
        Some(position(&last)),
        "the last mutation's position is the last entry"
    );
    for expected in &sent {
        let found: Vec<&AuditEntry> = trail
            .iter()
            .filter(|e| e.account_id == expected.account && e.event_type == expected.event_type)
            .filter(|e| e.correlation_id.as_deref() == Some(expected.correlation_id.as_str()))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{} on {} in {}: {trail:?}",
            expected.event_type,
            expected.account,
            expected.correlation_id
        );
        let entry = found[0];
        assert_eq!(entry.actor, expected.actor, "{entry:?}");
        assert_eq!(
            entry.idempotency_key.as_deref(),
            Some(expected.idempotency_key.as_str()),
            "{entry:?}"
        );
        assert_eq!(entry.command_type.as_deref(), Some(expected.command_type));
        assert_eq!(entry.roles, ["teller"], "{entry:?}");
    }

    for actor in [ann, bob] {
        let theirs = app
            .whole_audit_trail(&auditor, json!({ "actor": actor }), 50, &last)
            .await;
        let expected = sent.iter().filter(|s| s.actor == actor).count();
        assert_eq!(theirs.len(), expected, "{actor}: {theirs:?}");
        assert!(theirs.iter().all(|e| e.actor == actor), "{theirs:?}");
    }
    let nobody = app
        .whole_audit_trail(&auditor, json!({ "actor": "teller-nobody" }), 50, &last)
        .await;
    assert!(nobody.is_empty(), "{nobody:?}");

    let transfer_correlation = &sent[sent.len() - 1].correlation_id;
    let legs = app
        .whole_audit_trail(
            &auditor,
            json!({ "correlationId": transfer_correlation }),
            50,
            &last,
        )
        .await;
    let leg_types: Vec<&str> = legs.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(leg_types.len(), 2, "{legs:?}");
    assert!(leg_types.contains(&"TransferDebited") && leg_types.contains(&"TransferCredited"));

    let x_only = app
        .whole_audit_trail(
            &auditor,
            json!({ "accountId": x, "actor": "teller-bob" }),
            50,
            &last,
        )
        .await;
    let x_types: Vec<&str> = x_only.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(x_types, ["MoneyDeposited", "MoneyWithdrawn"]);

    // Pages of two: every entry exactly once, in the same order as one big page.
    let paged = app.whole_audit_trail(&auditor, json!({}), 2, &last).await;
    let paged_positions: Vec<&str> = paged.iter().map(|e| e.position.as_str()).collect();
    let all_positions: Vec<&str> = trail.iter().map(|e| e.position.as_str()).collect();
    assert_eq!(paged_positions, all_positions);
}

fn uuid(value: &Value) -> Uuid {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{value} is not a UUID"))
}

#[tokio::test]
async fn the_access_log_shows_an_auditor_their_own_queries_newest_first() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await.id;
    let last = app.deposited(account, "10.00").await.position;
    let auditor = app.auditor();
    let now = rfc3339(Utc::now() + TimeDelta::seconds(1));

    let with_id = |id: &'static str| [("X-Correlation-Id", id)];
    let queries = [
        (
            "review-balance",
            crate::helpers::BALANCE_AS_OF,
            json!({ "accountId": account, "asOf": now, "atLeast": last }),
            "balanceAsOf",
        ),
        (
            "review-statement",
            crate::helpers::STATEMENT,
            json!({ "accountId": account, "from": "2000-01-01T00:00:00Z", "to": now, "atLeast": last }),
            "statement",
        ),
        (
            "review-trail",
            crate::helpers::AUDIT_TRAIL,
            json!({ "filter": { "accountId": account }, "atLeast": last }),
            "auditTrail",
        ),
    ];
    for (correlation_id, query, variables, field) in &queries {
        app.execute(
            Some(&auditor),
            &with_id(correlation_id),
            query,
            variables.clone(),
        )
        .await
        .data(field);
    }
    // Someone else's look is not the auditor's.
    app.balance_as_of(
        app.teller(),
        json!({ "accountId": account, "asOf": now, "atLeast": last }),
    )
    .await
    .data("balanceAsOf");

    let log: Page<AccessLogEntry> = app
        .execute(
            Some(&auditor),
            &with_id("review-log"),
            crate::helpers::ACCESS_LOG,
            json!({ "filter": { "actor": AUDITOR_SUB } }),
        )
        .await
        .parse("accessLog");
    let entries = log.nodes();
    let seen: Vec<(&str, Option<&str>)> = entries
        .iter()
        .map(|e| (e.query.as_str(), e.correlation_id.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("accessLog", Some("review-log")),
            ("auditTrail", Some("review-trail")),
            ("statement", Some("review-statement")),
            ("balanceAsOf", Some("review-balance")),
        ],
        "the auditor's own queries, newest first, this one included"
    );
    for entry in &entries {
        assert_eq!(entry.actor, AUDITOR_SUB);
        assert_eq!(entry.roles, ["auditor"]);
    }
    assert!(
        entries
            .windows(2)
            .all(|w| instant(&w[0].accessed_at) >= instant(&w[1].accessed_at)),
        "newest first: {entries:?}"
    );
    let balance_look = &entries[3];
    assert_eq!(balance_look.arguments["accountId"], json!(account));
    assert_eq!(balance_look.arguments["atLeast"], json!(last));

    let tellers: Page<AccessLogEntry> = app
        .access_log(&auditor, json!({ "filter": { "actor": "teller-tess" } }))
        .await
        .parse("accessLog");
    let tellers: Vec<String> = tellers.nodes().into_iter().map(|e| e.query).collect();
    assert_eq!(tellers, ["balanceAsOf"]);

    let refused = app.access_log(app.teller(), json!({})).await;
    assert_eq!(refused.code(), Some("FORBIDDEN"), "{}", refused.body);
    assert_message_names(&refused, "auditor");
}

#[tokio::test]
async fn at_least_makes_each_query_reflect_the_mutation_just_made() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await.id;
    let mut balance = Decimal::ZERO;
    for (round, amount) in ["1.00", "2.50", "3.25", "4.00", "5.75"].iter().enumerate() {
        let deposited: MovementPayload = app.deposited(account, amount).await;
        balance += decimal(amount);
        let far = rfc3339(Utc::now() + TimeDelta::days(1));
        let found = app
            .balance_at(account, &far, &deposited.position)
            .await
            .unwrap_or_else(|| panic!("round {round}: no balance"));
        assert_eq!(decimal(&found.balance), balance, "round {round}");
        assert_eq!(found.version, i64::try_from(round).expect("small") + 2);

        let trail: Page<AuditEntry> = app
            .audit_trail(
                app.teller(),
                json!({ "filter": { "accountId": account }, "atLeast": deposited.position }),
            )
            .await
            .parse("auditTrail");
        assert_eq!(
            trail.edges.last().map(|e| e.node.event_id),
            Some(deposited.event_id),
            "round {round}"
        );

        let status: ProjectionStatus = app
            .projection_status(app.teller(), json!({ "atLeast": deposited.position }))
            .await
            .parse("projectionStatus");
        assert_eq!(status.position, deposited.position, "round {round}");
    }
}

/// Every reporting query, each with `atLeast` set to `at_least`.
fn every_query(account: Uuid, at_least: &str) -> Vec<(&'static str, &'static str, Value)> {
    let now = rfc3339(Utc::now());
    vec![
        (
            "balanceAsOf",
            crate::helpers::BALANCE_AS_OF,
            json!({ "accountId": account, "asOf": now, "atLeast": at_least }),
        ),
        (
            "balancesAsOf",
            crate::helpers::BALANCES_AS_OF,
            json!({ "asOf": now, "atLeast": at_least }),
        ),
        (
            "statement",
            crate::helpers::STATEMENT,
            json!({ "accountId": account, "from": "2000-01-01T00:00:00Z", "to": now, "atLeast": at_least }),
        ),
        (
            "auditTrail",
            crate::helpers::AUDIT_TRAIL,
            json!({ "filter": {}, "atLeast": at_least }),
        ),
        (
            "projectionStatus",
            crate::helpers::PROJECTION_STATUS,
            json!({ "atLeast": at_least }),
        ),
    ]
}

/// How long `atLeast` waits in the stale-read test.
const SHORT_AT_LEAST_WAIT: Duration = Duration::from_millis(200);

#[tokio::test]
async fn a_position_not_yet_written_is_a_stale_read_after_the_configured_wait() {
    let app = spawn_app_with(|s| s.reporting.at_least_wait = SHORT_AT_LEAST_WAIT).await;
    let account = app.open_usd("Ada").await.id;
    let written = app.deposited(account, "1.00").await.position;
    eventually("the deposit to be projected", || async {
        let status: ProjectionStatus = app
            .projection_status(app.teller(), json!({}))
            .await
            .parse("projectionStatus");
        (status.position == written).then_some(())
    })
    .await;

    let future = (position(&written) + 1_000_000).to_string();
    let auditor = app.auditor();
    for (field, query, variables) in every_query(account, &future) {
        let answer = app.execute(Some(&auditor), &[], query, variables).await;
        assert_eq!(
            answer.code(),
            Some("STALE_READ"),
            "{field}: {}",
            answer.body
        );
        assert_message_names(&answer, "atLeast");
        assert_message_names(&answer, &future);
        assert!(answer.body["data"].is_null(), "{field}: {}", answer.body);
    }
    // A stale read reads nothing, so nothing was recorded as looked at.
    let log: Page<AccessLogEntry> = app
        .access_log(&auditor, json!({ "filter": { "actor": AUDITOR_SUB } }))
        .await
        .parse("accessLog");
    let looked: Vec<String> = log.nodes().into_iter().map(|e| e.query).collect();
    assert_eq!(looked, ["accessLog"]);
}

#[tokio::test]
async fn a_malformed_at_least_is_a_validation_error_naming_it() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await.id;
    for malformed in ["", "abc", "-1", "1.5", " 7", "0x10", "99999999999999999999"] {
        for (field, query, variables) in every_query(account, malformed) {
            let answer = app.execute(Some(app.teller()), &[], query, variables).await;
            assert_eq!(
                answer.code(),
                Some("VALIDATION"),
                "{field} with atLeast {malformed:?}: {}",
                answer.body
            );
            assert_message_names(&answer, "atLeast");
        }
    }
}

#[tokio::test]
async fn projection_status_advances_and_its_lag_drains_to_zero() {
    let app = spawn_app().await;
    let account = app.open_usd("Ada").await.id;
    let first = app.deposited(account, "1.00").await.position;
    let before: ProjectionStatus = app
        .projection_status(app.teller(), json!({ "atLeast": first }))
        .await
        .parse("projectionStatus");
    assert_eq!(before.position, first);
    assert_eq!(before.applied_events, 2, "opened and deposited");
    assert_eq!(before.integrity_alerts, 0);
    assert!(before.halted_accounts.is_empty());
    assert!(before.updated_at.is_some());

    let other = app.open_usd("Grace").await.id;
    app.deposited(other, "2.00").await;
    let second = app.deposited(account, "3.00").await.position;
    let after: ProjectionStatus = app
        .projection_status(app.teller(), json!({ "atLeast": second }))
        .await
        .parse("projectionStatus");
    assert_eq!(after.position, second);
    assert!(position(&after.position) > position(&before.position));
    assert_eq!(after.applied_events, 5);
    assert!(
        position(&after.stream_sequence) >= position(&before.stream_sequence) + 3,
        "{before:?} then {after:?}"
    );
    assert!(
        instant(after.updated_at.as_deref().expect("updated"))
            >= instant(before.updated_at.as_deref().expect("updated"))
    );

    let drained = eventually("the projection's lag to reach 0", || async {
        let status: ProjectionStatus = app
            .projection_status(app.teller(), json!({}))
            .await
            .parse("projectionStatus");
        (status.lag_events == Some(0)).then_some(status)
    })
    .await;
    assert_eq!(drained.position, second);
    assert_eq!(drained.applied_events, app.event_count().await);
}

#[tokio::test]
async fn statements_and_balances_page_one_item_at_a_time_without_loss_or_repeat() {
    let app = spawn_app().await;
    let a = app.open_usd("Ada").await.id;
    let b = app.open_usd("Grace").await.id;
    let c = app.open("Emmy", "EUR", "0").await.id;
    for amount in ["1.00", "2.00", "3.00"] {
        app.deposited(a, amount).await;
    }
    app.deposited(c, "9.00").await;
    let moved: TransferPayload = teller_mutation(
        &app,
        TRANSFER,
        json!({ "fromAccountId": a, "toAccountId": b, "amount": "4.00", "idempotencyKey": key() }),
    )
    .await
    .parse("transfer");
    let last = moved.position;
    let later = rfc3339(Utc::now() + TimeDelta::days(1));

    let whole: Statement = app
        .statement(
            app.teller(),
            json!({ "accountId": a, "from": "2000-01-01T00:00:00Z", "to": later, "atLeast": last }),
        )
        .await
        .parse("statement");
    assert_statement_adds_up(&whole);
    let all_lines: Vec<Uuid> = whole
        .entries
        .edges
        .iter()
        .map(|e| e.node.event_id)
        .collect();
    assert_eq!(all_lines.len(), 4);
    let mut paged_lines = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: Statement = app
            .statement(
                app.teller(),
                json!({
                    "accountId": a, "from": "2000-01-01T00:00:00Z", "to": later,
                    "first": 1, "after": after, "atLeast": last,
                }),
            )
            .await
            .parse("statement");
        assert!(page.entries.edges.len() <= 1, "{page:?}");
        for (field, value, whole_value) in [
            (
                "openingBalance",
                &page.opening_balance,
                &whole.opening_balance,
            ),
            (
                "closingBalance",
                &page.closing_balance,
                &whole.closing_balance,
            ),
            ("totalCredits", &page.total_credits, &whole.total_credits),
            ("totalDebits", &page.total_debits, &whole.total_debits),
        ] {
            assert_eq!(
                value, whole_value,
                "{field} is over the whole range on every page"
            );
        }
        assert_eq!(page.entry_count, whole.entry_count);
        paged_lines.extend(page.entries.edges.iter().map(|e| e.node.event_id));
        if !page.entries.page_info.has_next_page {
            break;
        }
        after = page.entries.page_info.end_cursor;
        assert!(paged_lines.len() <= all_lines.len(), "{paged_lines:?}");
    }
    assert_eq!(paged_lines, all_lines, "every line once, in order");

    let everyone: BalancesAsOf = app
        .balances_as_of(app.teller(), json!({ "asOf": later, "atLeast": last }))
        .await
        .parse("balancesAsOf");
    assert_totals(&everyone);
    let mut paged_accounts = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: BalancesAsOf = app
            .balances_as_of(
                app.teller(),
                json!({ "asOf": later, "first": 1, "after": after, "atLeast": last }),
            )
            .await
            .parse("balancesAsOf");
        assert!(page.edges.len() <= 1, "{page:?}");
        assert_eq!(
            page.totals, everyone.totals,
            "totals are over every account on every page"
        );
        paged_accounts.extend(page.edges.iter().map(|e| e.node.clone()));
        if !page.page_info.has_next_page {
            break;
        }
        after = page.page_info.end_cursor;
        assert!(paged_accounts.len() <= 3, "{paged_accounts:?}");
    }
    let all_accounts: Vec<HistoricalBalance> = everyone.edges.into_iter().map(|e| e.node).collect();
    assert_eq!(paged_accounts, all_accounts, "every account once, in order");
    assert_eq!(all_accounts.len(), 3);
}
