//! The compliance commands: `folio verify`, `folio keygen`, `folio checkpoint export`,
//! `folio verify-proof` and `folio verify-report`. They speak to a reviewer: one summary, every problem with its
//! place, and an exit code a script can act on.

use std::{io::IsTerminal, path::Path, process::ExitCode};

use accounts::integrity::{self, IntegritySettings, VerifyOptions};
use anyhow::Context as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use indicatif::{ProgressBar, ProgressStyle};
use ledger::{
    AccountId,
    integrity::{AuditProof, SignedCheckpoint, key_id, parse_public_key},
};

use crate::{configuration::Settings, startup};

/// The public key checkpoints must be signed with: given, or that of `FOLIO_SIGNING_KEY`.
fn public_key(given: Option<&str>, settings: &IntegritySettings) -> anyhow::Result<VerifyingKey> {
    match given {
        Some(hex) => parse_public_key(hex).context("--public-key"),
        None => {
            if settings.is_development_key {
                eprintln!(
                    "warning: checking against the development signing key; pass --public-key with your platform's key"
                );
            }
            Ok(settings.public_key())
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a {what}", path.display()))
}

/// `folio verify`: exit 0 when history is intact, 1 when anything diverges.
pub async fn verify(
    settings: &Settings,
    checkpoint: Option<&Path>,
    public_key_hex: Option<&str>,
    account: Option<AccountId>,
) -> anyhow::Result<ExitCode> {
    let key = public_key(public_key_hex, &settings.integrity)?;
    let external: Option<SignedCheckpoint> =
        checkpoint.map(|p| read_json(p, "checkpoint")).transpose()?;
    let pool = platform::db::connect(&settings.database).await?;
    let total: i64 = sqlx::query_scalar(
        "select count(*) from accounts.events where ($1::uuid is null or stream_id = $1)",
    )
    .bind(account.map(|a| a.as_uuid()))
    .fetch_one(&pool)
    .await
    .context("counting events (is this a Folio database? run 'folio migrate')")?;
    let bar = progress_bar(total as u64);
    let progress = |phase: &str, done: u64| {
        bar.set_message(phase.to_string());
        bar.set_position(done);
    };
    let options = VerifyOptions {
        public_key: key,
        account,
        external,
        events_max: None,
        progress: Some(&progress),
        backdate_max: settings.accounts.backdate_max(),
    };
    let report = integrity::verify(&pool, &options).await?;
    bar.finish_and_clear();

    let scope = account.map_or_else(|| "the whole store".to_string(), |a| format!("account {a}"));
    println!(
        "verified {scope}: {} events in {} streams, {} signed checkpoints (key {})",
        report.events,
        report.streams,
        report.checkpoints,
        key_id(&key)
    );
    if let Some(external) = &options.external {
        println!(
            "against external checkpoint #{} ({} events up to position {}, signed {})",
            external.sequence, external.event_count, external.position, external.signed_at
        );
    }
    if report.is_clean() {
        println!(
            "OK: every hash chain is intact, versions are contiguous, balances follow, holds, reversals and adjustments keep their rules (every adjustment approved by a second person), value dates lie in their window and outside every period closed before them, transfers match, every checkpoint matches"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let count = report.problems.len() as u64 + report.problems_not_listed;
    let noun = if count == 1 { "problem" } else { "problems" };
    println!("FAILED: history diverges ({count} {noun})");
    for problem in &report.problems {
        println!("  {problem}");
    }
    if report.problems_not_listed > 0 {
        println!("  ... and {} more", report.problems_not_listed);
    }
    Ok(ExitCode::FAILURE)
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() || total < 10_000 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} events ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// `folio keygen`: a new Ed25519 key pair for signing checkpoints.
pub fn keygen() -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| anyhow::anyhow!("no randomness from the operating system: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key();
    println!("# Keep the signing key secret: it goes only into the platform's environment.");
    println!("FOLIO_SIGNING_KEY={}", hex::encode(key.to_bytes()));
    println!("# Publish the public key: reviewers verify checkpoints and proofs with it.");
    println!("public key: {}", hex::encode(public.as_bytes()));
    println!("key id:     {}", key_id(&public));
    Ok(())
}

/// `folio checkpoint export`: the latest signed checkpoint as JSON, to keep outside the platform.
pub async fn export_checkpoint(settings: &Settings, output: Option<&Path>) -> anyhow::Result<()> {
    let pool = startup::connect_and_migrate(settings).await?;
    let checkpoint = integrity::latest_checkpoint(&pool)
        .await?
        .context("no checkpoint has been signed yet: the relay signs one every FOLIO_CHECKPOINT_EVENTS events or FOLIO_CHECKPOINT_INTERVAL_SECS seconds while folio runs")?;
    let json = serde_json::to_string_pretty(&checkpoint)?;
    match output {
        Some(path) => {
            std::fs::write(path, format!("{json}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote checkpoint #{} ({} events up to position {}) to {}",
                checkpoint.sequence,
                checkpoint.event_count,
                checkpoint.position,
                path.display()
            );
        }
        None => println!("{json}"),
    }
    Ok(())
}

/// `folio verify-proof FILE`: checks an audit proof with the public key alone (no database).
pub fn verify_proof(
    settings: &Settings,
    file: &Path,
    public_key_hex: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let key = public_key(public_key_hex, &settings.integrity)?;
    let proof: AuditProof = read_json(file, "audit proof")?;
    match proof.verify(&key) {
        Ok(()) => {
            println!(
                "OK: event {} (account {} version {}, position {}) is part of the history signed by checkpoint #{} at {} (key {})",
                proof.event.event_id,
                proof.event.stream_id,
                proof.event.stream_version,
                proof.event.position,
                proof.checkpoint.sequence,
                proof.checkpoint.signed_at,
                key_id(&key)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("FAILED: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `folio verify-report`: exit 0 when the period report is signed by `public_key_hex` (and,
/// with `recompute`, when the events of the database at DATABASE_URL give exactly its
/// bytes again), 1 otherwise.
pub async fn verify_report(
    file: &Path,
    public_key_hex: &str,
    recompute: bool,
) -> anyhow::Result<ExitCode> {
    let key = parse_public_key(public_key_hex).context("--public-key")?;
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading period report {}", file.display()))?;
    let signed = match ledger::period::SignedPeriodReport::parse_file(&text) {
        Ok(signed) => signed,
        Err(error) => {
            println!("FAILED: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Err(error) = signed.verify_signature(&key) {
        println!("FAILED: {error}");
        return Ok(ExitCode::FAILURE);
    }
    let report = &signed.report;
    println!(
        "OK: signature by key {} over the period through {}: {} accounts, {} events, digest {}",
        signed.key_id,
        report.period_end.to_rfc3339(),
        report.accounts.len(),
        report.event_count,
        report.digest
    );
    if !recompute {
        return Ok(ExitCode::SUCCESS);
    }
    let settings = Settings::from_env()?;
    let pool = platform::db::connect(&settings.database).await?;
    let (same, recomputed) = accounts::periods::reproduces(&pool, &signed)
        .await
        .context("recomputing the report from the events")?;
    if same {
        println!(
            "OK: recomputed from the {} events of the store up to position {}: byte for byte the same",
            recomputed.event_count, report.through_position
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "FAILED: the events give another report (digest {}, {} events, {} accounts): the store or the report differs",
            recomputed.digest,
            recomputed.event_count,
            recomputed.accounts.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
