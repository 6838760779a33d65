//! The command line: `folio up | accounts | migrate | token | schema`.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use platform::{Role, TokenKeys, config::AuthSettings};

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
    /// Create the database if missing and apply every migration, then exit.
    Migrate,
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up => serve(Mode::All).await,
        Command::Accounts => serve(Mode::Accounts).await,
        Command::Reporting => serve(Mode::Reporting).await,
        Command::Republish => {
            platform::telemetry::init();
            let settings = Settings::from_env()?;
            let pool = startup::connect_and_migrate(&settings).await?;
            accounts::relay::rewind(&pool, &settings.nats.stream).await?;
            println!(
                "the relay will publish every event to stream {} again as soon as a folio process with the accounts service runs",
                settings.nats.stream
            );
            Ok(())
        }
        Command::Migrate => {
            platform::telemetry::init();
            let settings = Settings::from_env()?;
            startup::connect_and_migrate(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Token {
            sub,
            roles,
            ttl_hours,
        } => {
            let auth = AuthSettings::from_env()?;
            let keys = TokenKeys::new(&auth.jwt_secret);
            let token = keys.mint(&sub, &roles, Duration::from_secs(ttl_hours * 3600))?;
            println!("{token}");
            Ok(())
        }
        Command::Schema => {
            print!("{}", startup::schema_sdl());
            Ok(())
        }
    }
}

async fn serve(mode: Mode) -> anyhow::Result<()> {
    platform::telemetry::init();
    let settings = Settings::from_env()?;
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
