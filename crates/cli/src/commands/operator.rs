//! The operator commands over the job queue (`jobs`, `groups`, `stats`): the clap types the
//! binary mounts, the output switches every operator command shares (`--json`, `--yes`), and
//! the one-line error with its exit code. Tables by default, `--json` for scripts.
//!
//! ```text
//! subsync jobs list --state dead --since 2h
//! subsync groups running
//! subsync stats --json
//! ```

use std::io::{BufRead, Write};

use subsync_admin::AdminError;
use subsync_queue::{QueueError, Store};
use thiserror::Error;

use super::groups::{self, GroupsCommand};
use super::jobs::{self, JobsCommand};
use super::stats;

/// The queue's operator commands, flattened into the binary's command enum.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// List, show, retry and cancel jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Subscription groups and who holds them.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Queue health: jobs per state, oldest due job, running groups, throughput.
    Stats,
}

/// Output switches; flattened into the binary's top-level arguments so every command takes
/// them.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct OutputOptions {
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not ask before bulk actions.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
}

/// An operator command that failed; its `Display` is the one line to print.
#[derive(Debug, Error)]
pub enum CliError {
    /// The command line is incomplete or contradictory.
    #[error("{0}")]
    Usage(String),
    /// The operation failed (unknown id, bad filter, database error…).
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The operator did not confirm a bulk action.
    #[error("aborted: {0}")]
    NotConfirmed(String),
    /// Writing the output failed (closed pipe…).
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    /// The JSON output could not be encoded.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<QueueError> for CliError {
    fn from(e: QueueError) -> Self {
        CliError::Admin(AdminError::Queue(e))
    }
}

impl CliError {
    /// The process exit code: 2 for a wrong command line or input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Admin(e) if e.code() == "bad_request" => 2,
            _ => 1,
        }
    }
}

/// Runs `cmd`: results to `out`; confirmation questions and progress to stderr; answers from
/// stdin.
pub async fn run(store: &Store, cmd: Command, out: &mut impl Write, opts: OutputOptions) -> Result<(), CliError> {
    let mut err = std::io::stderr();
    let mut input = std::io::BufReader::new(std::io::stdin());
    run_with(store, cmd, out, &mut err, &mut input, opts).await
}

/// [`run`] with explicit streams, for tests.
pub async fn run_with(
    store: &Store,
    cmd: Command,
    out: &mut impl Write,
    err: &mut impl Write,
    input: &mut impl BufRead,
    opts: OutputOptions,
) -> Result<(), CliError> {
    match cmd {
        Command::Jobs(cmd) => jobs::run(store, cmd, out, err, input, opts).await,
        Command::Groups(cmd) => groups::run(store, cmd, out, opts).await,
        Command::Stats => stats::run(store, out, opts).await,
    }
}

#[cfg(test)]
mod tests;
