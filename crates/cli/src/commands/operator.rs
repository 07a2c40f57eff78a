//! The operator commands over the job queue (`jobs`, `groups`, `stats`): the clap types the
//! binary mounts and the dispatch. Tables by default, `--json` for scripts (`output.rs`).
//!
//! ```text
//! subsync jobs list --state dead --since 2h
//! subsync groups running
//! subsync stats --json
//! ```

use std::io::{BufRead, Write};

use subsync_queue::Store;

use super::groups::{self, GroupsCommand};
use super::jobs::{self, JobsCommand};
use super::output::{CliError, OutputOptions};
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
