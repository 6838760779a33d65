//! `cargo bench --bench as_of`: does `balanceAsOf(asOf, asKnownAt)` stay one index seek per
//! account as the store grows? (docs/benchmarks.md, "Balance as of, on two axes".)
//!
//! For each store size it fills fresh read models (1,000 accounts, every 50th movement
//! backdated by 20 days), then asks the production query ([`balance_as_of`]) for 300
//! random (account, value date, booking instant) triples and reports the median and
//! 99th-percentile latency and the shared buffers its plan touches; side by side, the
//! reference answers the same questions by summing the account's movements
//! (`ledger_entries` valued ≤ t and booked ≤ k), which is what the query would cost
//! without `balance_history` and the backdated correction. Needs PostgreSQL
//! (`scripts/services`).

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use ledger::AccountId;
use reporting::queries::{TwoAxes, balance_as_of, explain_balance_as_of};
use serde_json::Value;
use sqlx::PgPool;

/// Accounts in every store.
const ACCOUNTS: i64 = 1_000;
/// Movements per account, one store per entry: 10k, 100k and 1M events in all.
const MOVEMENTS_PER_ACCOUNT: [i64; 3] = [10, 100, 1_000];
/// Questions asked per store.
const SAMPLES: usize = 300;
/// Every this many movements, one is backdated.
const BACKDATED_EVERY: i64 = 50;
/// By how much a backdated movement is backdated.
const BACKDATED_DAYS: i64 = 20;

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .expect("an instant")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (pool, _) =
        platform::testing::fresh_pool(vec![(reporting::migrator(), reporting::SCHEMA)]).await;
    println!(
        "| events in store | movements per account | Folio median | Folio p99 | Folio buffers | sum of movements median | p99 | buffers |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for per_account in MOVEMENTS_PER_ACCOUNT {
        seed(&pool, per_account).await;
        let accounts: Vec<uuid::Uuid> = sqlx::query_scalar(
            "select account_id from reporting.account_balances order by account_id",
        )
        .fetch_all(&pool)
        .await
        .expect("accounts");
        let questions: Vec<(AccountId, TwoAxes)> = (0..SAMPLES)
            .map(|_| {
                let account = AccountId::from_uuid(accounts[fastrand::usize(..accounts.len())]);
                let hours = fastrand::i64(0..per_account);
                let as_of = base() + chrono::Duration::hours(hours) + chrono::Duration::minutes(30);
                let known_at = as_of + chrono::Duration::hours(fastrand::i64(0..24 * 40));
                (account, TwoAxes { as_of, known_at })
            })
            .collect();
        let mut folio = Vec::with_capacity(SAMPLES);
        for (account, axes) in &questions {
            let started = Instant::now();
            balance_as_of(&pool, *account, *axes)
                .await
                .expect("balanceAsOf");
            folio.push(started.elapsed());
        }
        let mut reference = Vec::with_capacity(SAMPLES);
        for (account, axes) in &questions {
            let started = Instant::now();
            let _: Option<rust_decimal::Decimal> = sqlx::query_scalar(
                "select sum(amount) from reporting.ledger_entries
                 where account_id = $1 and value_date <= $2 and recorded_at <= $3",
            )
            .bind(account.as_uuid())
            .bind(axes.as_of)
            .bind(axes.known_at)
            .fetch_one(&pool)
            .await
            .expect("reference");
            reference.push(started.elapsed());
        }
        let (account, axes) = questions[0];
        let folio_buffers = buffers(
            &explain_balance_as_of(&pool, account, axes)
                .await
                .expect("plan"),
        );
        let reference_plan: Value = sqlx::query_scalar(
            "explain (analyze, buffers, format json)
             select sum(amount) from reporting.ledger_entries
             where account_id = $1 and value_date <= $2 and recorded_at <= $3",
        )
        .bind(account.as_uuid())
        .bind(axes.as_of)
        .bind(axes.known_at)
        .fetch_one(&pool)
        .await
        .expect("reference plan");
        println!(
            "| {} | {per_account} | {} | {} | {folio_buffers} | {} | {} | {} |",
            ACCOUNTS * per_account,
            micros(percentile(&mut folio, 50)),
            micros(percentile(&mut folio, 99)),
            micros(percentile(&mut reference, 50)),
            micros(percentile(&mut reference, 99)),
            buffers(&reference_plan),
        );
    }
}

/// Read models for [`ACCOUNTS`] accounts of `per_account` movements each, one an hour from
/// [`base`]: every account's balance history, its statement lines (every
/// [`BACKDATED_EVERY`]th valued [`BACKDATED_DAYS`] before its booking), then `analyze`.
async fn seed(pool: &PgPool, per_account: i64) {
    for table in ["balance_history", "ledger_entries", "account_balances"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("truncate reporting.{table}")))
            .execute(pool)
            .await
            .expect("truncate");
    }
    sqlx::query(
        "insert into reporting.account_balances
             (account_id, holder, currency, balance, overdraft_limit, status, version, last_hash,
              opened_at, updated_at, halted, held, backdated_lag_max_us)
         select gen_random_uuid(), 'holder ' || n, 'USD', 10 * ($1 - 1), 0, 'OPEN', $1,
                '\\x00'::bytea, $2, $2, false, 0, $3
         from generate_series(1, $4) n",
    )
    .bind(per_account)
    .bind(base())
    .bind(BACKDATED_DAYS * 86_400_000_000)
    .bind(ACCOUNTS)
    .execute(pool)
    .await
    .expect("accounts");
    sqlx::query(
        "insert into reporting.balance_history (account_id, version, recorded_at, balance, event_id, position)
         select a.account_id, v, $2 + (v - 1) * interval '1 hour', 10 * (v - 1), gen_random_uuid(), 0
         from reporting.account_balances a, generate_series(1, $1) v",
    )
    .bind(per_account)
    .bind(base())
    .execute(pool)
    .await
    .expect("balance history");
    sqlx::query(
        "insert into reporting.ledger_entries
             (event_id, account_id, version, position, recorded_at, kind, amount, balance_after, currency, value_date)
         select h.event_id, h.account_id, h.version, 0, h.recorded_at, 'DEPOSIT', 10, h.balance, 'USD',
                case when h.version % $1 = 0 then h.recorded_at - $2 * interval '1 day' else h.recorded_at end
         from reporting.balance_history h where h.version > 1",
    )
    .bind(BACKDATED_EVERY)
    .bind(BACKDATED_DAYS as f64)
    .execute(pool)
    .await
    .expect("entries");
    sqlx::query("analyze").execute(pool).await.expect("analyze");
}

/// Shared buffers (hit + read) the plan's root node touched.
fn buffers(plan: &Value) -> i64 {
    let root = &plan[0]["Plan"];
    root["Shared Hit Blocks"].as_i64().unwrap_or(0)
        + root["Shared Read Blocks"].as_i64().unwrap_or(0)
}

fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples[(samples.len() * p / 100).min(samples.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{} µs", d.as_micros())
}
