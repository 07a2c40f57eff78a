//! The intake benchmark: verified-and-stored webhooks/s and latency at N-way concurrency,
//! through real HTTP on loopback into an in-process intake, beside the same database's raw
//! insert ceiling measured in the same run, and beside the intake's own storage path (the
//! same group commits of the same events, submitted without HTTP): the gap between those two
//! is what HTTP, signature checks and parsing cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use subsync_eventlog::{Disposition, EventRecord};
use subsync_intake::Batching;
use subsync_intake::committer::Committer;
use subsync_intake::metrics::IntakeMetrics;
use subsync_intake::{IntakeConfig, IntakeState};
use subsync_queue::QueueConfig;
use subsync_stripe::signature::Secrets;

use crate::db::{Backends, BenchDb};
use crate::load;
use crate::payload::Payload;
use crate::queue::raw_ceiling;
use crate::stats::{per_sec, percentile_ms};

const SECRET: &str = "whsec_bench_intake";

/// Options of `subsync-bench intake`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    backends: Backends,
    /// Webhooks to send per backend.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Concurrent senders (and ceiling clients).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Group-commit writers on PostgreSQL (SQLite always uses one); the intake's default.
    #[arg(long, default_value_t = subsync_intake::DEFAULT_COMMITTERS)]
    committers: usize,
    /// Longest a committer waits to fill a batch, in microseconds; the intake's default.
    #[arg(long, default_value_t = subsync_intake::DEFAULT_COMMIT_LINGER.as_micros() as u64)]
    commit_linger_us: u64,
    /// Event bodies to measure, one row each (the ceiling stores the same body).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "realistic,small")]
    payload: Vec<Payload>,
}

impl Args {
    fn batching(&self) -> Batching {
        let linger = Duration::from_micros(self.commit_linger_us);
        Batching { committers: self.committers, linger, ..Batching::default() }
    }
}

pub async fn run(args: Args) -> Result<()> {
    let mut rows = Vec::new();
    for backend in args.backends.chosen()? {
        for &payload in &args.payload {
            let db = BenchDb::open(backend.as_deref(), QueueConfig::default()).await?;
            let ceiling = raw_ceiling(&db.store, args.concurrency, args.requests, Some(payload)).await?;
            let figures = measure(&db, args.requests, args.concurrency, args.batching(), payload).await?;
            rows.push(figures.row(ceiling));
            db.close().await;
        }
    }
    println!();
    println!(
        "Intake: {} signed webhooks per backend, {} concurrent senders over loopback HTTP",
        args.requests, args.concurrency
    );
    println!();
    println!(
        "| backend | payload | raw insert ceiling, same payload (rows/s) | same writes without HTTP (events/s) | intake (webhooks/s) | vs ceiling | vs without HTTP | p50 (ms) | p99 (ms) | events per commit | non-2xx | errors |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!("{r}");
    }
    Ok(())
}

/// Intake figures on one backend.
pub struct Figures {
    pub label: &'static str,
    /// The event body sent.
    pub payload: Payload,
    /// The intake's storage path alone: the same events through the same group commit,
    /// submitted by `concurrency` tasks in process (no HTTP, no signature, no parsing).
    pub storage_rate: f64,
    pub rate: f64,
    /// Mean webhooks per commit during the HTTP run.
    pub per_commit: f64,
    pub p50: f64,
    pub p99: f64,
    pub non_2xx: u64,
    pub errors: u64,
}

impl Figures {
    /// A markdown row beside `ceiling`.
    pub fn row(&self, ceiling: f64) -> String {
        format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} |",
            self.label,
            self.payload.label(),
            ceiling,
            self.storage_rate,
            self.rate,
            self.rate / ceiling,
            self.rate / self.storage_rate,
            self.p50,
            self.p99,
            self.per_commit,
            self.non_2xx,
            self.errors
        )
    }
}

/// Sends `requests` signed webhooks with `concurrency` senders to an in-process intake on `db`.
pub async fn measure(
    db: &BenchDb,
    requests: u64,
    concurrency: usize,
    batching: Batching,
    payload: Payload,
) -> Result<Figures> {
    eprintln!("[{}] intake storage path without HTTP ({} body)…", db.label, payload.label());
    let storage_rate = storage_path(db, requests, concurrency, batching, payload).await?;
    eprintln!("[{}] intake…", db.label);
    let mut config = IntakeConfig::new(Secrets::parse(SECRET)?);
    config.batching = batching;
    let state = IntakeState::new(db.store.clone(), config, Arc::new(subsync_metrics::Registry::new()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let batch_size = state.metrics().batch_size.clone();
    let server = tokio::spawn(async move { axum::serve(listener, subsync_intake::router(state)).await });
    let report = load::run_load(&load::Args {
        url: format!("http://{addr}/webhooks/stripe"),
        secret: SECRET.into(),
        requests,
        concurrency,
        max_seconds: 300,
        duplicate_percent: 0,
        payload,
    })
    .await?;
    server.abort();
    Ok(Figures {
        label: db.label,
        payload,
        storage_rate,
        rate: per_sec(report.ok, report.elapsed),
        per_commit: batch_size.sum() / batch_size.count().max(1) as f64,
        p50: percentile_ms(&report.latencies, 50.0),
        p99: percentile_ms(&report.latencies, 99.0),
        non_2xx: report.non_2xx,
        errors: report.errors,
    })
}

/// Events/s through the intake's group commit alone: `concurrency` tasks submit the load
/// generator's events (same size, same subscriptions) straight to a [`Committer`] set up as
/// the intake sets it up, each waiting for its commit like a request does.
async fn storage_path(
    db: &BenchDb,
    requests: u64,
    concurrency: usize,
    batching: Batching,
    payload: Payload,
) -> Result<f64> {
    let metrics = IntakeMetrics::register(&subsync_metrics::Registry::new())?;
    let committer = Committer::start(db.store.clone(), batching, metrics);
    let next = Arc::new(AtomicU64::new(0));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (committer, next, run) = (committer.clone(), next.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    return Ok::<_, anyhow::Error>(());
                }
                let (event_id, subscription) = (format!("evt_direct_{run}_{n}"), format!("sub_load_{}", n % 2000));
                let body = String::from_utf8(payload.body(&event_id, &subscription))?;
                let record = EventRecord {
                    event_id,
                    event_type: "customer.subscription.updated".into(),
                    created: Some(chrono::Utc::now().timestamp()),
                    livemode: false,
                    api_version: Some("2025-03-31.basil".into()),
                    object_kind: "event",
                    group_key: subscription,
                    disposition: Disposition::Handled,
                    payload: body,
                };
                let stored = committer.submit(record).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                if stored.duplicate {
                    bail!("a fresh event was reported as a duplicate");
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(per_sec(requests, started.elapsed()))
}
