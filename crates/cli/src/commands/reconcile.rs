//! `subsync reconcile`, `subsync reconcile status` and `subsync backfill`: Stripe's API
//! brought into the event log on demand (the same work `serve`/`worker` schedule), and what
//! the scheduled runs did.
//!
//! ```text
//! subsync reconcile                 # since the high-water mark (first run: 3 days back)
//! subsync reconcile --since 10d     # after an outage longer than Stripe's 3-day retries
//! subsync reconcile --dry-run --json
//! subsync reconcile status
//! subsync backfill                  # a new install: every subscription of the account
//! ```

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use subsync_duties::store::{self as duties, RunRecord};
use subsync_reconcile::{RECONCILE_DUTY, ReconcileError, ReconcileOptions, Since};

use crate::commands::output::OutputOptions;
use crate::options::{Global, default_actor_name};
use crate::stripe::{StripeApiArgs, hint};

/// Flags of `subsync reconcile`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReconcileArgs {
    /// Where to start: an age (`10d`, `12h`) or a time (`2026-11-20T00:00:00Z`); default: the
    /// high-water mark minus 5 minutes, or 3 days back on a first run. Stripe keeps 30 days.
    #[arg(long)]
    pub since: Option<String>,
    /// List and count only: store nothing, leave the high-water mark.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub stripe: StripeApiArgs,
    #[command(subcommand)]
    pub command: Option<ReconcileCommand>,
}

/// `subsync reconcile …` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ReconcileCommand {
    /// The scheduled duties (reconcile, prune): last run, result, error, who runs one now.
    Status,
}

/// Flags of `subsync backfill`.
#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// List and count only: store nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub stripe: StripeApiArgs,
}

fn api_failure(e: ReconcileError) -> anyhow::Error {
    let extra = match &e {
        ReconcileError::Api(api) => hint(api),
        _ => "",
    };
    anyhow::anyhow!("{e}{extra}")
}

/// Runs `subsync reconcile [status]`.
pub async fn reconcile(global: &Global, args: ReconcileArgs, output: &OutputOptions) -> Result<()> {
    let store = global.connect_migrated().await?;
    if let Some(ReconcileCommand::Status) = args.command {
        return status(&store, output).await;
    }
    let since = match &args.since {
        Some(text) => Some(Since::At(subsync_admin::query::parse_time(text, Utc::now()).context("--since")?)),
        None => None,
    };
    let api = args.stripe.require("reconcile")?;
    let options = ReconcileOptions { since, dry_run: args.dry_run };
    let started_at = Utc::now();
    let result = subsync_reconcile::reconcile(&store, &api, options).await;
    if !args.dry_run {
        let runner = format!("cli:{}", default_actor_name());
        let (value, error) = match &result {
            Ok(report) => (serde_json::to_value(report)?, None),
            Err(e) => (serde_json::Value::Null, Some(e.to_string())),
        };
        let run = RunRecord {
            runner: &runner,
            started_at,
            finished_at: Utc::now(),
            result: error.as_deref().map_or(Ok(&value), Err),
        };
        if let Err(e) = duties::record_run(&store, RECONCILE_DUTY, &run).await {
            tracing::warn!(error = %e, "cannot record the reconcile run");
        }
    }
    let report = result.map_err(api_failure)?;
    if output.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let verb = if report.dry_run { "would store" } else { "stored" };
    println!(
        "listed {} events since {}: {verb} {} new, {} already stored, {} ignored ({} pages)",
        report.listed,
        time(report.from),
        report.new,
        report.already_stored,
        report.ignored,
        report.pages
    );
    if report.cut_at_retention {
        println!(
            "note: Stripe keeps events for 30 days; the window was cut there (run `subsync backfill` for older state)"
        );
    }
    match report.high_water_mark {
        Some(mark) => println!("high-water mark: {}", time(mark)),
        None => println!("high-water mark: none yet"),
    }
    Ok(())
}

/// Runs `subsync backfill`.
pub async fn backfill(global: &Global, args: BackfillArgs, output: &OutputOptions) -> Result<()> {
    let store = global.connect_migrated().await?;
    let api = args.stripe.require("backfill")?;
    let report = subsync_reconcile::backfill(&store, &api, args.dry_run).await.map_err(api_failure)?;
    if output.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let verb = if report.dry_run { "would queue" } else { "queued" };
        println!(
            "listed {} subscriptions: {verb} {} snapshots, {} unchanged since the last backfill, {} refused; \
             {} checkout sessions looked up",
            report.listed, report.new, report.unchanged, report.refused, report.checkout_lookups
        );
    }
    Ok(())
}

fn time(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .map_or_else(|| unix.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

async fn status(store: &subsync_queue::Store, output: &OutputOptions) -> Result<()> {
    let rows = duties::status(store).await?;
    if output.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no duty has run yet (serve/worker schedule them; `subsync reconcile` runs one now)");
    }
    for d in &rows {
        let result = match (d.last_ok, &d.last_error, &d.last_result) {
            (Some(false), Some(error), _) => format!("failed: {error}"),
            (Some(true), _, Some(result)) => format!("ok {result}"),
            _ => "-".into(),
        };
        println!("{}:", d.name);
        println!(
            "  last run:   {} → {} by {}",
            opt_time(d.last_started_at),
            opt_time(d.last_finished_at),
            d.last_runner.as_deref().unwrap_or("-")
        );
        println!("  result:     {result}");
        println!("  runs:       {} ({} failed)", d.runs, d.failures);
        if let Some(mark) = d.checkpoint {
            println!("  high-water: {}", time(mark));
        }
        if let Some(leader) = &d.leader {
            println!("  running on: {leader} (lease until {})", opt_time(d.lease_until));
        }
    }
    Ok(())
}
