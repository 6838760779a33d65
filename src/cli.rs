//! The command line: `folio up | accounts | migrate | demo | token | schema | verify | verify-report | ...`.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use platform::{Role, config::AuthSettings};

use crate::{
    configuration::Settings,
    startup::{self, Application, Mode},
};

#[derive(Parser, Debug)]
#[command(
    name = "folio",
    version,
    about = "Folio: an event-sourced banking ledger"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole platform in one process: accounts, relay and reporting, one GraphQL schema at /graphql.
    Up,
    /// Run the accounts service (mutations and `account(id)`) and the relay to NATS.
    Accounts,
    /// Run the reporting service: the JetStream consumer, read models and reporting queries.
    Reporting,
    /// Publish the whole event store to JetStream again (the consumer skips what it has applied).
    Republish,
    /// Build the read models again from the JetStream stream, in bulk, and swap them in.
    Rebuild,
    /// Create the database if missing and apply every migration, then exit.
    Migrate,
    /// Seed a fresh database with three months of believable history (refuses one that holds events).
    Demo {
        /// The story is drawn from this seed: the same seed on the same day tells the same story.
        #[arg(long, default_value_t = crate::demo::DEMO_SEED_DEFAULT)]
        seed: u64,
    },
    /// Print a bearer token signed with FOLIO_JWT_SECRET.
    Token {
        /// The actor the token names; recorded in every event it causes.
        #[arg(long)]
        sub: String,
        /// teller, supervisor or auditor; repeat for several.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 12)]
        ttl_hours: u64,
    },
    /// Print the GraphQL schema of `folio up` (as committed in schema.graphql).
    Schema,
    /// Check the whole history: every stream's hash chain, versions, balances, transfer legs and signed checkpoint.
    Verify {
        /// A checkpoint exported earlier (`folio checkpoint export`) that the store must still extend.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The public key (hex) checkpoints are signed with; default: that of FOLIO_SIGNING_KEY.
        #[arg(long)]
        public_key: Option<String>,
        /// Only this account's stream and its transfers.
        #[arg(long)]
        account: Option<uuid::Uuid>,
    },
    /// Make a new Ed25519 key pair for signing checkpoints (FOLIO_SIGNING_KEY).
    Keygen,
    /// Signed checkpoints.
    Checkpoint {
        #[command(subcommand)]
        command: CheckpointCommand,
    },
    /// Check an audit proof (from the auditProof query) offline, with the public key alone.
    VerifyProof {
        file: PathBuf,
        /// The public key (hex); default: that of FOLIO_SIGNING_KEY.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Check a signed period report (GET /reports/period.json) offline with the public key
    /// alone; with --recompute, also recompute it from the events of the database at
    /// DATABASE_URL and confirm it is byte for byte the same.
    VerifyReport {
        file: PathBuf,
        /// The public key (hex) the platform signs checkpoints and period reports with.
        #[arg(long)]
        public_key: String,
        /// Recompute the report from the events alone and compare the bytes.
        #[arg(long)]
        recompute: bool,
    },
}

#[derive(Subcommand, Debug)]
enum CheckpointCommand {
    /// Write the latest signed checkpoint as JSON, to keep outside the platform.
    Export {
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

fn parse_role(raw: &str) -> Result<Role, String> {
    raw.parse()
}

/// Runs the command line; errors are one line on stderr and a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let done = |()| ExitCode::SUCCESS;
    match command {
        Command::Up => serve(Mode::All).await.map(done),
        Command::Accounts => serve(Mode::Accounts).await.map(done),
        Command::Reporting => serve(Mode::Reporting).await.map(done),
        Command::Migrate => {
            platform::telemetry::init();
            let settings = Settings::from_env()?;
            startup::connect_and_migrate(&settings).await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { seed } => {
            platform::telemetry::init();
            let settings = Settings::from_env()?;
            let report = crate::demo::run(&settings, seed).await?;
            print!("{}", crate::demo::summary(&report));
            Ok(ExitCode::SUCCESS)
        }
        Command::Republish => {
            platform::telemetry::init();
            let settings = Settings::from_env()?;
            let pool = startup::connect_and_migrate(&settings).await?;
            accounts::relay::rewind(&pool, &settings.nats.stream).await?;
            println!(
                "the relay will publish every event to stream {} again as soon as a folio process with the accounts service runs",
                settings.nats.stream
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild => {
            platform::telemetry::init();
            let settings = Settings::from_env()?;
            crate::operations::rebuild(&settings).await.map(done)
        }
        Command::Token {
            sub,
            roles,
            ttl_hours,
        } => {
            let auth = AuthSettings::from_env()?;
            let keys = auth.token_keys();
            let token = keys.mint(
                &sub,
                &roles,
                Duration::from_secs(ttl_hours.saturating_mul(3600)),
            )?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            print!("{}", startup::schema_sdl());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            checkpoint,
            public_key,
            account,
        } => {
            let settings = Settings::from_env()?;
            crate::integrity::verify(
                &settings,
                checkpoint.as_deref(),
                public_key.as_deref(),
                account.map(ledger::AccountId::from_uuid),
            )
            .await
        }
        Command::Keygen => crate::integrity::keygen().map(done),
        Command::Checkpoint {
            command: CheckpointCommand::Export { output },
        } => {
            let settings = Settings::from_env()?;
            crate::integrity::export_checkpoint(&settings, output.as_deref())
                .await
                .map(done)
        }
        Command::VerifyReport {
            file,
            public_key,
            recompute,
        } => crate::integrity::verify_report(&file, &public_key, recompute).await,
        Command::VerifyProof { file, public_key } => {
            let settings = Settings::from_env()?;
            crate::integrity::verify_proof(&settings, &file, public_key.as_deref())
        }
    }
}

async fn serve(mode: Mode) -> anyhow::Result<()> {
    platform::telemetry::init();
    let settings = Settings::from_env()?;
    if settings.integrity.is_development_key && mode != Mode::Reporting {
        tracing::warn!(
            "FOLIO_SIGNING_KEY is not set: checkpoints are signed with the development key; make one with 'folio keygen'"
        );
    }
    if settings.auth.is_development_secret {
        tracing::warn!(
            "FOLIO_JWT_SECRET is not set: using the local development secret; set it in any shared deployment"
        );
    }
    let app = Application::build(&settings, mode).await?;
    let addr = app.local_addr()?;
    tracing::info!("folio listening on http://{addr} (GraphQL at /graphql, GraphiQL at /)");
    let shutdown = app.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown.send(true);
    });
    app.run_until_stopped().await?;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
