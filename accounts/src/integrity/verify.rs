//! `folio verify`: recomputes every stream's hash chain, checks versions are contiguous from 1
//! and balances follow, checks every hold (placed once, settled once, captured at most what
//! it held and before it expired), every reversal (at most once per movement, linked to a
//! real movement of the same account that it exactly undoes) and every value date (within
//! the backdating window of its booking instant, never after it),
//! matches both legs of every transfer, and re-folds the global digest to check every
//! signed checkpoint. It streams rows in index order, so memory stays constant however
//! large the store is (per account, only its active holds are held).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::VerifyingKey;
use futures::{StreamExt, TryStreamExt};
use ledger::{
    AccountEvent, AccountId, Hash, HoldId, RecordedEvent,
    integrity::{SignedCheckpoint, fold_digest},
};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::{PgPool, Row};

use super::checkpoints::{CHECKPOINT_COLUMNS, checkpoint_from_row, hash};
use crate::store::{EVENT_COLUMNS, StoreError, recorded_event, tx_id};

/// Problems listed in one report; more are counted, not listed.
pub const PROBLEMS_MAX: usize = 100;
/// Progress is reported every this many events.
pub const PROGRESS_EVERY_EVENTS: u64 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The stored hash does not match the event's content.
    HashMismatch,
    /// An event's previousHash is not the stored hash of the event before it.
    BrokenLink,
    /// Versions are not contiguous from 1.
    VersionGap,
    /// The event cannot be read as any known event version.
    Unreadable,
    /// A balance after an event is not the balance before plus the event's amount.
    BalanceDoesNotFollow,
    /// A transfer leg has no matching leg on the other account.
    MissingTransferLeg,
    /// The store's history up to a checkpoint does not fold to its signed digest.
    CheckpointMismatch,
    /// A stored checkpoint is not signed by the key given, or not chained to the one before.
    CheckpointInvalid,
    /// A hold placed twice, settled when not active, captured for more than it held or
    /// after it expired, or settled for an amount other than it held.
    HoldInconsistent,
    /// A reversal of no movement of its account, of a movement reversed before, or for an
    /// amount that does not undo it.
    ReversalInconsistent,
    /// A value date after its booking instant, or before its backdating window.
    ValueDateOutOfRange,
    /// An adjustment posted without a pending request, approved by its own maker, by
    /// someone other than the actor who wrote the posting, or for another amount
    /// (SOX maker-checker).
    AdjustmentInconsistent,
    /// An event booked after a period close carries a value date inside the closed period.
    ValueDateInClosedPeriod,
    /// A stored period close whose report is not signed by the key given, or that the
    /// events it covers no longer give byte for byte.
    PeriodReportInvalid,
}

impl ProblemKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::HashMismatch => "HASH_MISMATCH",
            Self::BrokenLink => "BROKEN_LINK",
            Self::VersionGap => "VERSION_GAP",
            Self::Unreadable => "UNREADABLE",
            Self::BalanceDoesNotFollow => "BALANCE_DOES_NOT_FOLLOW",
            Self::MissingTransferLeg => "MISSING_TRANSFER_LEG",
            Self::CheckpointMismatch => "CHECKPOINT_MISMATCH",
            Self::CheckpointInvalid => "CHECKPOINT_INVALID",
            Self::HoldInconsistent => "HOLD_INCONSISTENT",
            Self::ReversalInconsistent => "REVERSAL_INCONSISTENT",
            Self::ValueDateOutOfRange => "VALUE_DATE_OUT_OF_RANGE",
            Self::AdjustmentInconsistent => "ADJUSTMENT_INCONSISTENT",
            Self::ValueDateInClosedPeriod => "VALUE_DATE_IN_CLOSED_PERIOD",
            Self::PeriodReportInvalid => "PERIOD_REPORT_INVALID",
        }
    }
}

/// Where history diverges, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub stream_id: Option<AccountId>,
    pub stream_version: Option<i64>,
    pub position: Option<i64>,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind.as_str())?;
        if let Some(stream) = self.stream_id {
            write!(f, " stream {stream}")?;
        }
        if let Some(version) = self.stream_version {
            write!(f, " version {version}")?;
        }
        if let Some(position) = self.position {
            write!(f, " position {position}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub streams: u64,
    pub events: u64,
    pub checkpoints: u64,
    pub problems: Vec<Problem>,
    /// Problems found beyond [`PROBLEMS_MAX`].
    pub problems_not_listed: u64,
    /// True when the run stopped at `events_max` before the end of the store.
    pub truncated: bool,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && !self.truncated
    }

    fn add(&mut self, problem: Problem) {
        if self.problems.len() < PROBLEMS_MAX {
            self.problems.push(problem);
        } else {
            self.problems_not_listed += 1;
        }
    }
}

/// Told the phase (`streams`, `checkpoints`) and how many events are done.
pub type Progress<'a> = dyn Fn(&str, u64) + Sync + 'a;

/// What to verify and against what.
pub struct VerifyOptions<'a> {
    /// The key checkpoints must be signed with.
    pub public_key: VerifyingKey,
    /// Only this account's stream (and its transfers); global checkpoints are then skipped.
    pub account: Option<AccountId>,
    /// A checkpoint kept outside the platform that the store must still extend.
    pub external: Option<SignedCheckpoint>,
    /// Stop after this many events (online verification is bounded).
    pub events_max: Option<u64>,
    /// Called with a phase name and the events done so far.
    pub progress: Option<&'a Progress<'a>>,
    /// The backdating window value dates must lie in (`FOLIO_BACKDATE_DAYS_MAX`).
    pub backdate_max: Duration,
}

/// Runs every check and reports what diverges.
pub async fn verify(pool: &PgPool, options: &VerifyOptions<'_>) -> Result<Report, StoreError> {
    let mut report = Report::default();
    verify_streams(pool, options, &mut report).await?;
    verify_transfers(pool, options, &mut report).await?;
    verify_reversals(pool, options, &mut report).await?;
    verify_closed_periods(pool, options, &mut report).await?;
    if options.account.is_none() && !report.truncated {
        verify_checkpoints(pool, options, &mut report).await?;
        verify_period_reports(pool, options, &mut report).await?;
    }
    Ok(report)
}

/// The event before, in the stream being walked.
struct Previous {
    stream_id: AccountId,
    version: i64,
    position: i64,
    hash: Hash,
    balance: Option<Decimal>,
}

async fn verify_streams(
    pool: &PgPool,
    options: &VerifyOptions<'_>,
    report: &mut Report,
) -> Result<(), StoreError> {
    let sql = format!(
        "select {EVENT_COLUMNS} from accounts.events where ($1::uuid is null or stream_id = $1)
         order by stream_id, stream_version"
    );
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(options.account.map(|a| a.as_uuid()))
        .fetch(pool);
    let mut previous: Option<Previous> = None;
    let mut stream = StreamState::default();
    while let Some(row) = rows.try_next().await? {
        if options.events_max.is_some_and(|max| report.events >= max) {
            report.truncated = true;
            break;
        }
        let event = recorded_event(&row)?;
        report.events += 1;
        if let Some(progress) = options.progress
            && report.events.is_multiple_of(PROGRESS_EVERY_EVENTS)
        {
            progress("streams", report.events);
        }
        let same_stream = previous.as_ref().filter(|p| p.stream_id == event.stream_id);
        if same_stream.is_none() {
            report.streams += 1;
            stream = StreamState::default();
        }
        check_event(&event, same_stream, report);
        if let Ok(decoded) = event.decode() {
            stream.check(&event, &decoded, options.backdate_max, report);
        }
        // The balance after this event: zero at opening, then each movement's balanceAfter.
        let balance = match event.decode() {
            Ok(AccountEvent::AccountOpened(opened)) => Some(opened.currency.zero()),
            Ok(decoded) => decoded
                .balance_after()
                .or_else(|| same_stream.and_then(|p| p.balance)),
            Err(_) => same_stream.and_then(|p| p.balance),
        };
        previous = Some(Previous {
            stream_id: event.stream_id,
            version: event.stream_version,
            position: event.position,
            hash: event.hash,
            balance,
        });
    }
    Ok(())
}

/// What the walk keeps of the account it is in: its active holds (amount and expiry) and
/// its pending adjustments (maker and amount).
#[derive(Default)]
struct StreamState {
    holds: HashMap<HoldId, (Decimal, Option<DateTime<Utc>>)>,
    adjustments: HashMap<ledger::AdjustmentId, (String, Decimal)>,
}

impl StreamState {
    fn check(
        &mut self,
        event: &RecordedEvent,
        decoded: &AccountEvent,
        backdate_max: Duration,
        report: &mut Report,
    ) {
        let at = |kind, detail: String| Problem {
            kind,
            stream_id: Some(event.stream_id),
            stream_version: Some(event.stream_version),
            position: Some(event.position),
            detail,
        };
        if let Some(value_date) = decoded.value_date() {
            let earliest = event.recorded_at - backdate_max;
            if value_date > event.recorded_at || value_date < earliest {
                report.add(at(
                    ProblemKind::ValueDateOutOfRange,
                    format!(
                        "value date {value_date} is outside {earliest} (the backdating window of {} days) to {} (its booking)",
                        backdate_max.num_days(),
                        event.recorded_at
                    ),
                ));
            }
        }
        let hold = |problem: String| at(ProblemKind::HoldInconsistent, problem);
        match decoded {
            AccountEvent::HoldPlaced(placed)
                if self
                    .holds
                    .insert(placed.hold_id, (placed.amount, placed.expires_at))
                    .is_some() =>
            {
                report.add(hold(format!(
                    "hold {} is placed while active",
                    placed.hold_id
                )));
            }
            AccountEvent::HoldCaptured(captured) => match self.holds.remove(&captured.hold_id) {
                None => report.add(hold(format!(
                    "hold {} is captured but is not active (never placed, or settled before)",
                    captured.hold_id
                ))),
                Some((held, expires_at)) => {
                    if captured.amount > held || captured.amount + captured.released_amount != held
                    {
                        report.add(hold(format!(
                            "hold {} held {held} but {} is captured and {} released",
                            captured.hold_id, captured.amount, captured.released_amount
                        )));
                    }
                    if expires_at.is_some_and(|e| event.recorded_at >= e) {
                        report.add(hold(format!(
                            "hold {} is captured at {} after it expired",
                            captured.hold_id, event.recorded_at
                        )));
                    }
                }
            },
            AccountEvent::HoldReleased(released) => {
                self.settle(event, released.hold_id, released.amount, false, report)
            }
            AccountEvent::HoldExpired(expired) => {
                self.settle(event, expired.hold_id, expired.amount, true, report)
            }
            AccountEvent::AdjustmentRequested(requested) => {
                self.adjustments.insert(
                    requested.adjustment_id,
                    (requested.requested_by.clone(), requested.amount),
                );
            }
            AccountEvent::AdjustmentPosted(posted) => {
                let writer = event.metadata().map(|m| m.actor).unwrap_or_default();
                let detail = match self.adjustments.remove(&posted.adjustment_id) {
                    None => Some(format!(
                        "adjustment {} is posted but is not pending (never requested, or decided before)",
                        posted.adjustment_id
                    )),
                    Some((maker, amount))
                        if maker != posted.requested_by || amount != posted.amount =>
                    {
                        Some(format!(
                            "adjustment {} was requested by {maker} for {amount} but is posted as requested by {} for {}",
                            posted.adjustment_id, posted.requested_by, posted.amount
                        ))
                    }
                    Some((maker, _)) if crate::domain::same_person(&maker, &posted.approved_by) => {
                        Some(format!(
                            "adjustment {} is approved by its own maker {maker}",
                            posted.adjustment_id
                        ))
                    }
                    Some(_) if writer != posted.approved_by => Some(format!(
                        "adjustment {} names {} as its approver but was written by {writer}",
                        posted.adjustment_id, posted.approved_by
                    )),
                    Some(_) => None,
                };
                if let Some(detail) = detail {
                    report.add(at(ProblemKind::AdjustmentInconsistent, detail));
                }
            }
            AccountEvent::AdjustmentRejected(ledger::events::AdjustmentRejected {
                adjustment_id,
                ..
            })
            | AccountEvent::AdjustmentExpired(ledger::events::AdjustmentExpired {
                adjustment_id,
            }) if self.adjustments.remove(adjustment_id).is_none() => {
                report.add(at(
                    ProblemKind::AdjustmentInconsistent,
                    format!("adjustment {adjustment_id} is decided but is not pending"),
                ));
            }
            _ => {}
        }
    }

    /// A release (`expiry`: false) or an expiry of `hold_id` for `amount`.
    fn settle(
        &mut self,
        event: &RecordedEvent,
        hold_id: HoldId,
        amount: Decimal,
        expiry: bool,
        report: &mut Report,
    ) {
        let what = if expiry { "expired" } else { "released" };
        let detail = match self.holds.remove(&hold_id) {
            None => Some(format!(
                "hold {hold_id} is {what} but is not active (never placed, or settled before)"
            )),
            Some((held, _)) if held != amount => {
                Some(format!("hold {hold_id} held {held} but {amount} is {what}"))
            }
            Some((_, expires_at)) => {
                let due = expires_at.is_some_and(|e| event.recorded_at >= e);
                (due != expiry).then(|| {
                    format!(
                        "hold {hold_id} is {what} at {} {} its expiry {}",
                        event.recorded_at,
                        if expiry { "before" } else { "after" },
                        expires_at.map_or_else(|| "(none)".to_string(), |e| e.to_string())
                    )
                })
            }
        };
        if let Some(detail) = detail {
            report.add(Problem {
                kind: ProblemKind::HoldInconsistent,
                stream_id: Some(event.stream_id),
                stream_version: Some(event.stream_version),
                position: Some(event.position),
                detail,
            });
        }
    }
}

fn check_event(event: &RecordedEvent, previous: Option<&Previous>, report: &mut Report) {
    let at = |kind, detail: String| Problem {
        kind,
        stream_id: Some(event.stream_id),
        stream_version: Some(event.stream_version),
        position: Some(event.position),
        detail,
    };
    let expected_version = previous.map_or(1, |p| p.version + 1);
    let gap = event.stream_version != expected_version;
    let intact = event.hash_is_intact();
    if gap {
        let after = previous.map_or_else(
            || "the stream's start".to_string(),
            |p| format!("version {} at position {}", p.version, p.position),
        );
        report.add(Problem {
            kind: ProblemKind::VersionGap,
            stream_id: Some(event.stream_id),
            stream_version: Some(expected_version),
            position: Some(event.position),
            detail: format!(
                "version {expected_version} is missing: after {after} comes version {} at position {}",
                event.stream_version, event.position
            ),
        });
    }
    if !intact {
        report.add(at(
            ProblemKind::HashMismatch,
            format!(
                "the stored hash {} does not match the event's content ({}): the row was changed after it was written",
                event.hash,
                event.expected_hash()
            ),
        ));
    }
    // A link is only evidence against the previous event when this one is itself intact and
    // in place; after a gap or an altered row, the break is already explained above.
    let expected_prev = previous.map(|p| p.hash);
    if event.prev_hash != expected_prev && intact && !gap {
        let problem = match previous {
            Some(p) => Problem {
                kind: ProblemKind::BrokenLink,
                stream_id: Some(event.stream_id),
                stream_version: Some(p.version),
                position: Some(p.position),
                detail: format!(
                    "version {} records previousHash {} but version {} is stored with hash {}: version {} was changed after version {} was written",
                    event.stream_version,
                    event
                        .prev_hash
                        .map_or_else(|| "none".into(), |h| h.to_hex()),
                    p.version,
                    p.hash,
                    p.version,
                    event.stream_version
                ),
            },
            None => at(
                ProblemKind::BrokenLink,
                "the stream's first event records a previous hash: events before it were removed"
                    .into(),
            ),
        };
        report.add(problem);
    }
    match event.decode() {
        Err(error) => report.add(at(ProblemKind::Unreadable, error.to_string())),
        Ok(decoded) => {
            let before = previous.and_then(|p| p.balance);
            if let (Some(before), Some(change), Some(after)) =
                (before, decoded.balance_change(), decoded.balance_after())
                && before + change != after
            {
                report.add(at(
                    ProblemKind::BalanceDoesNotFollow,
                    format!(
                        "{before} {change:+} is {}, but the event says {after}",
                        before + change
                    ),
                ));
            }
        }
    }
}

/// No event booked after a period close (after the last event it covers, in publication
/// order) may carry a value date at or before the closed period's end.
async fn verify_closed_periods(
    pool: &PgPool,
    options: &VerifyOptions<'_>,
    report: &mut Report,
) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "select e.stream_id, e.stream_version, e.position, e.event_type,
                e.payload->>'valueDate' as value_date, c.period_end
         from accounts.period_closes c
         join accounts.events e
           on (e.tx_id, e.position) > (c.through_tx_id, c.through_position)
          and e.payload ? 'valueDate'
          and (e.payload->>'valueDate')::timestamptz <= c.period_end
         where $1::uuid is null or e.stream_id = $1
         order by e.position
         limit $2",
    )
    .bind(options.account.map(|a| a.as_uuid()))
    .bind((PROBLEMS_MAX + 1) as i64)
    .fetch_all(pool)
    .await?;
    for row in rows {
        let event_type: String = row.try_get("event_type")?;
        let value_date: Option<String> = row.try_get("value_date")?;
        let period_end: DateTime<Utc> = row.try_get("period_end")?;
        report.add(Problem {
            kind: ProblemKind::ValueDateInClosedPeriod,
            stream_id: Some(AccountId::from_uuid(row.try_get("stream_id")?)),
            stream_version: Some(row.try_get("stream_version")?),
            position: Some(row.try_get("position")?),
            detail: format!(
                "{event_type} booked after the close of the period through {period_end} carries value date {}",
                value_date.unwrap_or_default()
            ),
        });
    }
    Ok(())
}

/// Every stored period close is signed by the key given, and the events it covers give its
/// report again, byte for byte (as `folio verify-report --recompute` checks one file).
async fn verify_period_reports(
    pool: &PgPool,
    options: &VerifyOptions<'_>,
    report: &mut Report,
) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let closes =
            crate::periods::period_closes(pool, after, crate::periods::PERIOD_CLOSES_PAGE_MAX)
                .await?;
        let Some(last) = closes.last() else {
            return Ok(());
        };
        after = Some(last.signed.report.period_end);
        for close in &closes {
            let signed = &close.signed;
            let problem = |detail: String| Problem {
                kind: ProblemKind::PeriodReportInvalid,
                stream_id: None,
                stream_version: None,
                position: Some(signed.report.through_position),
                detail: format!(
                    "the close of the period through {}: {detail}",
                    signed.report.period_end.to_rfc3339()
                ),
            };
            if let Err(error) = signed.verify_signature(&options.public_key) {
                report.add(problem(error.to_string()));
                continue;
            }
            let (same, recomputed) = crate::periods::reproduces(pool, signed).await?;
            if !same {
                report.add(problem(format!(
                    "the events give another report (digest {}, {} events, {} accounts)",
                    recomputed.digest,
                    recomputed.event_count,
                    recomputed.accounts.len()
                )));
            }
        }
    }
}

async fn verify_transfers(
    pool: &PgPool,
    options: &VerifyOptions<'_>,
    report: &mut Report,
) -> Result<(), StoreError> {
    // Each debit (a TransferDebited, or a HoldCaptured to another account) needs its
    // credit on the named account, and each credit its debit.
    let rows = sqlx::query(
        "select l.stream_id, l.stream_version, l.position, l.event_type, l.payload->>'transferId' as transfer_id,
                coalesce(l.payload->>'toAccountId', l.payload->>'fromAccountId') as counterparty
         from accounts.events l
         where l.event_type in ('TransferDebited', 'TransferCredited', 'HoldCaptured')
           and l.payload->>'transferId' is not null
           and ($1::uuid is null or l.stream_id = $1
                or coalesce(l.payload->>'toAccountId', l.payload->>'fromAccountId') = $1::text)
           and not exists (
               select 1 from accounts.events r
               where r.stream_id::text = coalesce(l.payload->>'toAccountId', l.payload->>'fromAccountId')
                 and (case l.event_type when 'TransferCredited' then r.event_type in ('TransferDebited', 'HoldCaptured')
                                        else r.event_type = 'TransferCredited' end)
                 and r.payload->>'transferId' = l.payload->>'transferId')
         order by l.position
         limit $2",
    )
    .bind(options.account.map(|a| a.as_uuid()))
    .bind((PROBLEMS_MAX + 1) as i64)
    .fetch_all(pool)
    .await?;
    for row in rows {
        let event_type: String = row.try_get("event_type")?;
        let counterparty: Option<String> = row.try_get("counterparty")?;
        let transfer: Option<String> = row.try_get("transfer_id")?;
        let (missing, side) = if event_type == "TransferCredited" {
            ("TransferDebited", "source")
        } else {
            ("TransferCredited", "destination")
        };
        let counterparty = counterparty.unwrap_or_default();
        report.add(Problem {
            kind: ProblemKind::MissingTransferLeg,
            stream_id: Some(AccountId::from_uuid(row.try_get("stream_id")?)),
            stream_version: Some(row.try_get("stream_version")?),
            position: Some(row.try_get("position")?),
            detail: format!(
                "transfer {} has no {missing} on its {side} account {counterparty}: that account's stream or event is gone",
                transfer.unwrap_or_default()
            ),
        });
    }
    Ok(())
}

/// Every reversal names a movement of its own account, written before it, that it exactly
/// undoes, and no movement is reversed twice.
async fn verify_reversals(
    pool: &PgPool,
    options: &VerifyOptions<'_>,
    report: &mut Report,
) -> Result<(), StoreError> {
    let mut rows = sqlx::query(
        "select r.stream_id, r.stream_version, r.position, r.payload,
                r.payload->>'reversedEventId' as reversed,
                count(*) over (partition by r.payload->>'reversedEventId') as times,
                o.stream_id as original_stream, o.position as original_position,
                o.event_type as original_type, o.event_version as original_version,
                o.payload as original_payload, o.recorded_at as original_recorded_at
         from accounts.events r
         left join accounts.events o
           on o.event_id = case when r.payload->>'reversedEventId' ~ '^[0-9a-fA-F-]{36}$'
                                then (r.payload->>'reversedEventId')::uuid end
         where r.event_type = 'MovementReversed' and ($1::uuid is null or r.stream_id = $1)
         order by r.position",
    )
    .bind(options.account.map(|a| a.as_uuid()))
    .fetch(pool);
    while let Some(row) = rows.try_next().await? {
        let stream_id = AccountId::from_uuid(row.try_get("stream_id")?);
        let position: i64 = row.try_get("position")?;
        let problem = |detail: String| Problem {
            kind: ProblemKind::ReversalInconsistent,
            stream_id: Some(stream_id),
            stream_version: row.try_get("stream_version").ok(),
            position: Some(position),
            detail,
        };
        let reversed: Option<String> = row.try_get("reversed")?;
        let reversed = reversed.unwrap_or_default();
        let times: i64 = row.try_get("times")?;
        if times > 1 {
            report.add(problem(format!(
                "movement {reversed} is reversed {times} times"
            )));
        }
        let original_stream: Option<uuid::Uuid> = row.try_get("original_stream")?;
        let Some(original_stream) = original_stream else {
            report.add(problem(format!(
                "it reverses {reversed}, which is no stored event"
            )));
            continue;
        };
        if original_stream != stream_id.as_uuid()
            || row.try_get::<i64, _>("original_position")? > position
        {
            report.add(problem(format!(
                "it reverses {reversed}, which is not an earlier event of this account"
            )));
            continue;
        }
        let payload: Value = row.try_get("payload")?;
        let original_type: String = row.try_get("original_type")?;
        let original_payload: Value = row.try_get("original_payload")?;
        let original = AccountEvent::decode(
            &original_type,
            row.try_get("original_version")?,
            &original_payload,
            ledger::events::Stored {
                recorded_at: row.try_get("original_recorded_at")?,
            },
        );
        let reversal = serde_json::from_value::<ledger::events::MovementReversed>(payload);
        // Unreadable events are reported by the stream walk.
        let (Ok(original), Ok(reversal)) = (original, reversal) else {
            continue;
        };
        match original.balance_change() {
            Some(change) if !matches!(original, AccountEvent::MovementReversed(_)) => {
                if reversal.amount != -change {
                    report.add(problem(format!(
                        "it changes the balance by {} but the {original_type} it reverses changed it by {change}",
                        reversal.amount
                    )));
                }
            }
            _ => report.add(problem(format!(
                "it reverses {reversed} ({original_type}), which moved no money of its own"
            ))),
        }
    }
    Ok(())
}

async fn verify_checkpoints(
    pool: &PgPool,
    options: &VerifyOptions<'_>,
    report: &mut Report,
) -> Result<(), StoreError> {
    let sql = format!("select {CHECKPOINT_COLUMNS} from accounts.checkpoints order by sequence");
    let mut stored = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch(pool)
        .map(|row| {
            row.map_err(StoreError::from)
                .and_then(|row| checkpoint_from_row(&row))
        });
    let mut expected: Vec<Checkpoint> = Vec::new();
    // Stored checkpoints: each signed by the key and chained to the one before.
    let mut previous_digest = Hash::ZERO;
    let mut next_sequence = 1;
    while let Some(checkpoint) = stored.try_next().await? {
        report.checkpoints += 1;
        let invalid = |detail: String| Problem {
            kind: ProblemKind::CheckpointInvalid,
            stream_id: None,
            stream_version: None,
            position: Some(checkpoint.position),
            detail: format!("checkpoint #{}: {detail}", checkpoint.sequence),
        };
        if let Err(error) = checkpoint.verify_signature(&options.public_key) {
            report.add(invalid(error.to_string()));
        }
        if checkpoint.sequence != next_sequence {
            report.add(invalid(format!("checkpoint #{next_sequence} is missing")));
        }
        if checkpoint.previous_digest != previous_digest {
            report.add(invalid(
                "it does not chain to the checkpoint before it".into(),
            ));
        }
        previous_digest = checkpoint.digest;
        next_sequence = checkpoint.sequence + 1;
        match Checkpoint::of(&checkpoint, "stored") {
            Some(boundary) => expected.push(boundary),
            None => report.add(invalid(format!(
                "its transaction id {:?} is not a number",
                checkpoint.tx_id
            ))),
        }
        // Keep memory bounded: only the boundaries are held, a few dozen bytes each.
    }
    if let Some(external) = &options.external {
        match external.verify_signature(&options.public_key) {
            Ok(()) => match Checkpoint::of(external, "external") {
                Some(boundary) => expected.push(boundary),
                None => report.add(Problem {
                    kind: ProblemKind::CheckpointInvalid,
                    stream_id: None,
                    stream_version: None,
                    position: Some(external.position),
                    detail: format!(
                        "the external checkpoint #{}: its transaction id {:?} is not a number",
                        external.sequence, external.tx_id
                    ),
                }),
            },
            Err(error) => report.add(Problem {
                kind: ProblemKind::CheckpointInvalid,
                stream_id: None,
                stream_version: None,
                position: Some(external.position),
                detail: format!("the external checkpoint #{}: {error}", external.sequence),
            }),
        }
    }
    expected.sort_by_key(|c| (c.tx_id, c.position));
    refold(pool, options, &expected, report).await
}

/// A checkpoint's boundary and claim, as the refold compares them.
struct Checkpoint {
    sequence: i64,
    tx_id: u64,
    position: i64,
    event_count: i64,
    digest: Hash,
    source: &'static str,
}

impl Checkpoint {
    /// The boundary `signed` claims; `None` when its transaction id is not a number.
    fn of(signed: &SignedCheckpoint, source: &'static str) -> Option<Self> {
        Some(Self {
            sequence: signed.sequence,
            tx_id: signed.tx_id.parse().ok()?,
            position: signed.position,
            event_count: signed.event_count,
            digest: signed.digest,
            source,
        })
    }
}

async fn refold(
    pool: &PgPool,
    options: &VerifyOptions<'_>,
    checkpoints: &[Checkpoint],
    report: &mut Report,
) -> Result<(), StoreError> {
    let mut rows = sqlx::query(
        "select tx_id::text as tx_id_text, position, hash from accounts.events order by tx_id, position",
    )
    .fetch(pool);
    let mut digest = Hash::ZERO;
    let mut count = 0i64;
    let mut last_good: Option<(i64, i64)> = None;
    let mut last_seen: Option<i64> = None;
    let mut pending = checkpoints.iter().peekable();
    let mut failed = false;
    let mismatch = |checkpoint: &Checkpoint,
                    report: &mut Report,
                    found: String,
                    last_good: Option<(i64, i64)>| {
        let since = last_good.map_or_else(
            || "the start of history".to_string(),
            |(sequence, position)| {
                format!("position {position} (checkpoint #{sequence}, which still matches)")
            },
        );
        report.add(Problem {
            kind: ProblemKind::CheckpointMismatch,
            stream_id: None,
            stream_version: None,
            position: Some(checkpoint.position),
            detail: format!(
                "{} checkpoint #{} signs {} events up to position {} with digest {}, but {found}: history between {since} and position {} was edited, deleted or reordered",
                checkpoint.source, checkpoint.sequence, checkpoint.event_count, checkpoint.position, checkpoint.digest, checkpoint.position
            ),
        });
    };
    while let Some(row) = rows.try_next().await? {
        let key = (tx_id(&row)?, row.try_get::<i64, _>("position")?);
        // Checkpoints whose last event we have passed without meeting it: that event is gone.
        while let Some(checkpoint) = pending.next_if(|c| (c.tx_id, c.position) < key) {
            if !failed {
                mismatch(
                    checkpoint,
                    report,
                    format!(
                        "the event at position {} is gone ({count} events precede where it was)",
                        checkpoint.position
                    ),
                    last_good,
                );
                failed = true;
            }
        }
        digest = fold_digest(&digest, key.1, &hash(&row, "hash")?);
        count += 1;
        last_seen = Some(key.1);
        if let Some(progress) = options.progress
            && (count as u64).is_multiple_of(PROGRESS_EVERY_EVENTS)
        {
            progress("checkpoints", count as u64);
        }
        while let Some(checkpoint) = pending.next_if(|c| (c.tx_id, c.position) == key) {
            if checkpoint.digest == digest && checkpoint.event_count == count {
                if !failed {
                    last_good = Some((checkpoint.sequence, checkpoint.position));
                }
            } else if !failed {
                mismatch(
                    checkpoint,
                    report,
                    format!("the store has {count} events up to there, folding to {digest}"),
                    last_good,
                );
                failed = true;
            }
        }
    }
    for checkpoint in pending {
        if !failed {
            let end = last_seen.map_or_else(
                || "is empty".to_string(),
                |p| format!("ends at position {p}"),
            );
            mismatch(
                checkpoint,
                report,
                format!("the store {end} with {count} events: events it covers were deleted"),
                last_good,
            );
            failed = true;
        }
    }
    Ok(())
}
