//! `subsync-bench`: prints throughput figures for subsync, each beside a baseline measured in
//! the same run on the same database (the machine is shared and noisy: only ratios within one
//! run mean anything).
//!
//! ```text
//! cargo run --release -p subsync-bench -- queue  --postgres postgres://postgres@127.0.0.1:5432/test
//! cargo run --release -p subsync-bench -- intake --postgres postgres://postgres@127.0.0.1:5432/test
//! cargo run --release -p subsync-bench -- read   --postgres postgres://postgres@127.0.0.1:5432/test
//! cargo run --release -p subsync-bench -- notify --postgres postgres://postgres@127.0.0.1:5432/test
//! cargo run --release -p subsync-bench -- report --peers graphile-worker,pg-boss   # everything, both backends
//! RUST_LOG=subsync_intake=warn cargo run --release -p subsync-bench -- e2e   # with the intake's warnings
//! cargo build --release -p subsync-cli && cargo run --release -p subsync-bench -- flood
//! ```

mod db;
mod e2e;
mod flood;
mod intake;
mod load;
mod notify;
mod payload;
mod peers;
mod queue;
mod read;
mod report;
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
    /// Intake: signed webhooks/s and p50/p99 through loopback HTTP, beside the raw ceiling.
    Intake(intake::Args),
    /// The application's read API: requests/s and p50/p99 at N concurrent readers, beside the
    /// same reads without HTTP.
    Read(read::Args),
    /// The webhook path end to end (drain, webhook → entitlement, race pair) with each worker
    /// commit linger, in one run.
    E2e(e2e::Args),
    /// Webhook in → application notified: p50/p99 from the intake's 2xx to the notification,
    /// one at a time and under load.
    Notify(notify::Args),
    /// Every figure on SQLite and PostgreSQL in one run, written to docs/benchmarks.md.
    Report(report::Args),
    /// Send signed webhook load to a running intake on this machine (loopback only, bounded).
    Load(load::Args),
    /// Connection flood (half-open + slow 1 MiB bodies) against the real `subsync serve` built
    /// beside this benchmark: webhook p50/p99 and peak RSS during the flood.
    Flood(flood::Args),
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    // The in-process intake and worker log through `tracing`: silent unless asked, so a
    // failing run can say why (`RUST_LOG=subsync_intake=warn,subsync_worker=warn`).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match Cli::parse().command {
        Command::Queue(args) => queue::run(args).await,
        Command::Intake(args) => intake::run(args).await,
        Command::Read(args) => read::run(args).await,
        Command::Notify(args) => notify::run(args).await,
        Command::E2e(args) => e2e::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Flood(args) => flood::run(args).await,
        Command::Load(args) => {
            let report = load::run_load(&args).await?;
            println!(
                "sent {} in {:.1}s: {} 2xx ({} duplicates), {} non-2xx, {} errors; {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
                report.sent,
                report.elapsed.as_secs_f64(),
                report.ok,
                report.duplicates,
                report.non_2xx,
                report.errors,
                stats::per_sec(report.ok, report.elapsed),
                stats::percentile_ms(&report.latencies, 50.0),
                stats::percentile_ms(&report.latencies, 99.0)
            );
            Ok(())
        }
    }
}
