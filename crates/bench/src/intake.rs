//! The intake benchmark: verified-and-stored webhooks/s and latency at N-way concurrency,
//! through real HTTP on loopback into an in-process intake, beside the same database's raw
//! insert ceiling measured in the same run.

use std::sync::Arc;

use anyhow::{Result, bail};
use subsync_intake::{IntakeConfig, IntakeState};
use subsync_queue::{Backend, QueueConfig};
use subsync_stripe::signature::Secrets;

use crate::db::BenchDb;
use crate::load;
use crate::queue::raw_ceiling;
use crate::stats::{per_sec, percentile_ms};

const SECRET: &str = "whsec_bench_intake";

/// Options of `subsync-bench intake`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// PostgreSQL server to benchmark (a scratch schema is created and dropped).
    #[arg(long, env = "SUBSYNC_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Skip the SQLite run.
    #[arg(long)]
    no_sqlite: bool,
    /// Webhooks to send per backend.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Concurrent senders (and ceiling clients).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Group-commit writers on PostgreSQL (SQLite always uses one); the intake's default.
    #[arg(long, default_value_t = subsync_intake::DEFAULT_COMMITTERS)]
    committers: usize,
}

pub async fn run(args: Args) -> Result<()> {
    let mut rows = Vec::new();
    if !args.no_sqlite {
        let db = BenchDb::sqlite(QueueConfig::default()).await?;
        let ceiling = raw_ceiling(&db.store, args.concurrency, args.requests).await?;
        rows.push(measure(&db, args.requests, args.concurrency, args.committers).await?.row(ceiling));
        db.close().await;
    }
    if let Some(url) = &args.postgres {
        let db = BenchDb::postgres(url, QueueConfig::default()).await?;
        let ceiling = raw_ceiling(&db.store, args.concurrency, args.requests).await?;
        rows.push(measure(&db, args.requests, args.concurrency, args.committers).await?.row(ceiling));
        db.close().await;
    }
    if rows.is_empty() {
        bail!("nothing to run: give --postgres URL or drop --no-sqlite");
    }
    println!();
    println!(
        "Intake: {} signed webhooks per backend, {} concurrent senders over loopback HTTP",
        args.requests, args.concurrency
    );
    println!();
    println!(
        "| backend | raw insert ceiling (rows/s) | intake (webhooks/s) | vs ceiling | p50 (ms) | p99 (ms) | non-2xx | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!("{r}");
    }
    Ok(())
}

/// Intake figures on one backend.
pub struct Figures {
    pub label: &'static str,
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    pub non_2xx: u64,
    pub errors: u64,
}

impl Figures {
    /// A markdown row beside `ceiling`.
    pub fn row(&self, ceiling: f64) -> String {
        format!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} |",
            self.label,
            ceiling,
            self.rate,
            self.rate / ceiling,
            self.p50,
            self.p99,
            self.non_2xx,
            self.errors
        )
    }
}

/// Sends `requests` signed webhooks with `concurrency` senders to an in-process intake on `db`.
pub async fn measure(db: &BenchDb, requests: u64, concurrency: usize, committers: usize) -> Result<Figures> {
    eprintln!("[{}] intake…", db.label);
    let mut config = IntakeConfig::new(Secrets::parse(SECRET)?);
    config.committers = if db.store.backend() == Backend::Sqlite { 1 } else { committers };
    let state = IntakeState::new(db.store.clone(), config, Arc::new(subsync_metrics::Registry::new()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, subsync_intake::router(state)).await });
    let report = load::run_load(&load::Args {
        url: format!("http://{addr}/webhooks/stripe"),
        secret: SECRET.into(),
        requests,
        concurrency,
        max_seconds: 300,
        duplicate_percent: 0,
    })
    .await?;
    server.abort();
    Ok(Figures {
        label: db.label,
        rate: per_sec(report.ok, report.elapsed),
        p50: percentile_ms(&report.latencies, 50.0),
        p99: percentile_ms(&report.latencies, 99.0),
        non_2xx: report.non_2xx,
        errors: report.errors,
    })
}
