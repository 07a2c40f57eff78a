//! `subsync-bench`: prints throughput figures for subsync, each beside a baseline measured in
//! the same run on the same database (the machine is shared and noisy: only ratios within one
//! run mean anything).
//!
//! ```text
//! cargo run --release -p subsync-bench -- queue --postgres postgres://postgres@127.0.0.1:5432/test
//! ```

mod db;
mod queue;
mod stats;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Benchmarks for subsync.
#[derive(Debug, Parser)]
#[command(name = "subsync-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Queue engine: raw insert ceiling, enqueue/s with duplicates, drain/s with serialized groups.
    Queue(queue::Args),
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Queue(args) => queue::run(args).await,
    }
}
