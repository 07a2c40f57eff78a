//! `subsync`: one binary for every process of the system. A thin `main`: parse flags, set up
//! logging, hand over to a command; the work lives in the library crates.

mod commands;
mod duties;
mod job_metrics;
mod notify;
mod options;
mod shutdown;
mod stripe;
mod telemetry;
mod views;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Stripe webhooks → durable subscription entitlements.
#[derive(Debug, Parser)]
#[command(name = "subsync", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: options::Global,
    #[command(flatten)]
    output: commands::output::OutputOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run intake, worker and admin API in one process on one database: the zero set-up way.
    Serve(commands::serve::Args),
    /// Run only the webhook intake (and the admin API).
    Intake(commands::serve::IntakeOnlyArgs),
    /// Run only the subscription sync worker.
    Worker(commands::worker::Args),
    /// Show the whole path working: bundled signed events → HTTP intake → worker → entitlements.
    Demo,
    /// Apply database migrations and exit.
    Migrate,
    /// Copy the embedded SQLite database, consistently, while it runs (PostgreSQL: use pg_dump).
    Backup(commands::backup::Args),
    /// Delete finished jobs and events past the retention window (run daily).
    Prune {
        /// Also delete dead jobs past the window (by default they wait for an operator).
        #[arg(long)]
        include_dead: bool,
        #[command(flatten)]
        retention: options::RetentionArgs,
    },
    /// Catch up events Stripe could not deliver, from its API (`status`: the scheduled duties).
    Reconcile(commands::reconcile::ReconcileArgs),
    /// Import every subscription of the Stripe account (a new install starts correct).
    Backfill(commands::reconcile::BackfillArgs),
    /// Operator commands: jobs, running groups, stats.
    #[command(flatten)]
    Operator(commands::operator::Command),
    /// The audit log of operator actions: who retried, cancelled or replayed what, and when.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Change notifications to the application: delivered, failing, waiting.
    Notifications(commands::notifications::Args),
    /// Stored Stripe events: show one, or replay its sync.
    #[command(subcommand)]
    Events(commands::events::EventsCommand),
    /// What each user may do: current tier and features.
    #[command(subcommand)]
    Entitlements(commands::entitlements::EntitlementsCommand),
    /// The tier file: validate one offline, list the prices it does not map yet.
    #[command(subcommand)]
    Tiers(commands::tiers::TiersCommand),
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if matches!(cli.command, Command::Demo) && std::env::var_os("RUST_LOG").is_none() && cli.global.log == "info" {
        // The demo's output is its table; keep the logs to problems.
        cli.global.log = "warn".into();
    }
    if let Err(e) = telemetry::init(&cli.global) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => commands::serve::serve(&cli.global, args).await,
            Command::Intake(args) => commands::serve::intake_only(&cli.global, args).await,
            Command::Migrate => commands::migrate::run(&cli.global).await,
            Command::Backup(args) => commands::backup::run(&cli.global, args, &cli.output).await,
            Command::Prune { include_dead, retention } => {
                commands::prune::run(&cli.global, &retention, include_dead, &cli.output).await
            }
            Command::Worker(args) => commands::worker::run(&cli.global, args).await,
            Command::Reconcile(args) => commands::reconcile::reconcile(&cli.global, args, &cli.output).await,
            Command::Backfill(args) => commands::reconcile::backfill(&cli.global, args, &cli.output).await,
            Command::Demo => commands::demo::run().await,
            Command::Entitlements(cmd) => commands::entitlements::run(&cli.global, cmd, &cli.output).await,
            Command::Tiers(cmd) => commands::tiers::run(&cli.global, cmd, &cli.output).await,
            Command::Events(cmd) => commands::events::run(&cli.global, cmd, &cli.output).await,
            Command::Audit(cmd) => {
                let store = cli.global.connect_migrated().await?;
                return Ok(commands::audit::run(&store, cmd, &mut std::io::stdout(), cli.output).await);
            }
            Command::Notifications(args) => {
                let store = cli.global.connect_migrated().await?;
                return Ok(commands::notifications::run(&store, args, &mut std::io::stdout(), cli.output).await);
            }
            Command::Operator(cmd) => {
                let store = cli.global.connect_migrated().await?;
                let mut stdout = std::io::stdout();
                return Ok(commands::operator::run(&store, cmd, &mut stdout, cli.output).await);
            }
        }
        .map(|()| Ok(()))
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once: many layers (sqlx, the queue, a
/// context) already repeat their source's text in their own, and printing the whole chain
/// verbatim said the same thing three times.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_cause_repeated_by_its_wrapper_is_printed_once() {
        let inner = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let e = anyhow::Error::new(inner)
            .context("error communicating with database: invalid peer certificate: UnknownIssuer")
            .context("cannot open the database postgres://db");
        assert_eq!(
            one_line(&e),
            "cannot open the database postgres://db: error communicating with database: invalid peer certificate: UnknownIssuer"
        );
    }
}
