//! Operator commands that maintain the read models: `folio rebuild`.

use indicatif::{ProgressBar, ProgressStyle};

use crate::{configuration::Settings, startup};

/// `folio rebuild`: the read models built again from the stream, with a progress bar, then
/// swapped in (see `reporting::rebuild`).
pub async fn rebuild(settings: &Settings) -> anyhow::Result<()> {
    let pool = startup::connect_and_migrate(settings).await?;
    let nats = platform::messaging::connect(&settings.nats).await?;
    if !platform::messaging::wait_connected(&nats, platform::messaging::CONNECT_TIMEOUT).await {
        anyhow::bail!(
            "NATS is not reachable at {}: the read models are rebuilt from its stream {}; start it with scripts/services",
            settings.nats.url,
            settings.nats.stream
        );
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} messages ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |reached: u64, last: u64| {
        bar.set_length(last);
        bar.set_position(reached);
    };
    let report = reporting::rebuild::rebuild(&pool, nats, &settings.nats, &progress).await?;
    bar.finish_and_clear();
    println!(
        "rebuilt the read models of stream {} from {} events in {:.1} s ({:.0} events/s); they stand at stream sequence {}",
        settings.nats.stream,
        report.events,
        report.elapsed.as_secs_f64(),
        report.events_per_second(),
        report.delivered_sequence
    );
    Ok(())
}
