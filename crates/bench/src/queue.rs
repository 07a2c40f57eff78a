//! The queue benchmark: on each backend, in one run,
//! 1. the raw ceiling: `INSERT … ON CONFLICT DO NOTHING`, one row per statement, N clients;
//! 2. enqueue/s: N producers calling `Store::enqueue_one`, 10% of calls duplicates;
//! 3. drain/s: one apalis worker at N-way concurrency over the enqueued jobs (2,000 groups),
//!    each job a small upsert committed together with its completion, with a no-overlap check.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use apalis::layers::WorkerBuilderExt;
use apalis_core::worker::builder::WorkerBuilder;
use serde_json::json;
use subsync_queue::{
    Committer, Conn, Dialect, GroupCommit, Job, JobError, NewJob, QueueBackend, QueueConfig, Store, Tx, Work,
    WorkerOptions,
};
use tokio::sync::Notify;

use crate::db::{Backends, BenchDb};
use crate::payload::Payload;
use crate::stats::{per_sec, percentile_ms};

const QUEUE: &str = "bench";

/// Options of `subsync-bench queue`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    backends: Backends,
    /// Distinct jobs to enqueue and drain.
    #[arg(long, default_value_t = 20_000)]
    jobs: u64,
    /// Distinct groups (subscriptions) the jobs are spread over.
    #[arg(long, default_value_t = 2_000)]
    groups: u64,
    /// Concurrent clients, producers and worker slots.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Share of enqueue calls that repeat an earlier key, in percent.
    #[arg(long, default_value_t = 10)]
    duplicate_percent: u64,
}

/// One backend's queue figures.
pub struct Figures {
    pub label: &'static str,
    pub ceiling: f64,
    pub enqueue: f64,
    pub enqueue_p50: f64,
    pub enqueue_p99: f64,
    /// Each job's effect and completion committed alone.
    pub drain: f64,
    /// The same, several jobs per commit, each in its own savepoint (`subsync_queue::Committer`
    /// with [`GroupCommit::ON`]): still exactly once.
    pub drain_grouped: f64,
    pub overlaps: u64,
}

/// Workload of the queue benchmark.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub jobs: u64,
    pub groups: u64,
    pub concurrency: usize,
    pub duplicate_percent: u64,
}

pub async fn run(args: Args) -> Result<()> {
    if args.groups == 0 || args.jobs == 0 || args.concurrency == 0 || args.duplicate_percent >= 100 {
        bail!("jobs, groups and concurrency must be positive and duplicate-percent below 100");
    }
    let workload = Workload {
        jobs: args.jobs,
        groups: args.groups,
        concurrency: args.concurrency,
        duplicate_percent: args.duplicate_percent,
    };
    let mut results = Vec::new();
    for backend in args.backends.chosen()? {
        let db = BenchDb::open(backend.as_deref(), QueueConfig::default()).await?;
        results.push(measure(&db, workload).await?);
        db.close().await;
    }
    println!();
    println!(
        "Queue: {} jobs in {} groups, {}-way concurrency, {}% duplicate enqueues",
        args.jobs, args.groups, args.concurrency, args.duplicate_percent
    );
    println!();
    println!(
        "| backend | raw insert ceiling (rows/s) | enqueue (calls/s) | vs ceiling | enqueue p50 / p99 (ms) | drain (jobs/s) | vs ceiling | drain, group commit (jobs/s) | vs ceiling | overlaps |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in &results {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} / {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {} |",
            f.label,
            f.ceiling,
            f.enqueue,
            f.enqueue / f.ceiling,
            f.enqueue_p50,
            f.enqueue_p99,
            f.drain,
            f.drain / f.ceiling,
            f.drain_grouped,
            f.drain_grouped / f.ceiling,
            f.overlaps
        );
    }
    if results.iter().any(|f| f.overlaps > 0) {
        bail!("a group ran two jobs at once");
    }
    Ok(())
}

/// Runs the measurements on `db`: ceiling, enqueue, and the drain with one commit per job
/// and with group commit (each over a fresh enqueue of the workload).
pub async fn measure(db: &BenchDb, w: Workload) -> Result<Figures> {
    eprintln!("[{}] raw insert ceiling…", db.label);
    let ceiling = raw_ceiling(&db.store, w.concurrency, w.jobs, None).await?;
    eprintln!("[{}] enqueue…", db.label);
    let (enqueue_rate, mut latencies) = enqueue(&db.store, w, "first").await?;
    latencies.sort();
    eprintln!("[{}] drain…", db.label);
    let (drain_rate, overlaps) = drain(&db.store, w, GroupCommit::default()).await?;
    enqueue(&db.store, w, "second").await?;
    eprintln!("[{}] drain with group commit…", db.label);
    let (drain_grouped, overlaps_grouped) = drain(&db.store, w, GroupCommit::ON).await?;
    Ok(Figures {
        label: db.label,
        ceiling,
        enqueue: enqueue_rate,
        enqueue_p50: percentile_ms(&latencies, 50.0),
        enqueue_p99: percentile_ms(&latencies, 99.0),
        drain: drain_rate,
        drain_grouped,
        overlaps: overlaps + overlaps_grouped,
    })
}

/// One committed `INSERT … ON CONFLICT DO NOTHING` per row, `clients` at once (autocommit on
/// PostgreSQL; on SQLite a write transaction behind the same in-process writer lock the queue uses).
/// With a `payload`, each row also stores that event body (the same-payload ceiling of the
/// webhook path); without, only the key (the queue's ceiling).
pub async fn raw_ceiling(store: &Store, clients: usize, rows: u64, payload: Option<Payload>) -> Result<f64> {
    exec(store, "DROP TABLE IF EXISTS bench_ceiling").await?;
    exec(store, "CREATE TABLE bench_ceiling (k TEXT PRIMARY KEY, body TEXT)").await?;
    exec(store, "DELETE FROM bench_ceiling").await?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (store, next) = (store.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= rows {
                    return Ok::<(), anyhow::Error>(());
                }
                let key = format!("evt_{i}");
                let body =
                    payload.map(|p| String::from_utf8_lossy(&p.body(&key, &format!("sub_{}", i % 2000))).into_owned());
                if let Dialect::Postgres(pool) = store.pool() {
                    sqlx::query("INSERT INTO bench_ceiling (k, body) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(key)
                        .bind(body)
                        .execute(pool)
                        .await?;
                } else {
                    // SQLite has one writer: writers queue in-process (as the queue's own do)
                    // instead of spinning in the busy handler.
                    let mut tx = store.begin().await?;
                    if let Conn::Sqlite(c) = tx.conn() {
                        sqlx::query("INSERT INTO bench_ceiling (k, body) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
                            .bind(key)
                            .bind(body)
                            .execute(c)
                            .await?;
                    }
                    tx.commit().await?;
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(per_sec(rows, start.elapsed()))
}

async fn exec(store: &Store, sql: &'static str) -> Result<()> {
    let mut tx = store.begin().await?;
    match tx.conn() {
        Conn::Sqlite(c) => {
            sqlx::query(sql).execute(c).await?;
        }
        Conn::Postgres(c) => {
            sqlx::query(sql).execute(c).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Producers enqueue every job once, plus duplicates of random earlier keys; `round` makes
/// the keys distinct from an earlier round's.
async fn enqueue(store: &Store, args: Workload, round: &'static str) -> Result<(f64, Vec<Duration>)> {
    let duplicates = args.jobs * args.duplicate_percent / (100 - args.duplicate_percent);
    let mut keys: Vec<u64> = (0..args.jobs).collect();
    keys.extend((0..duplicates).map(|_| fastrand::u64(0..args.jobs)));
    fastrand::shuffle(&mut keys);
    let calls = keys.len() as u64;
    let keys = Arc::new(keys);
    let next = Arc::new(AtomicU64::new(0));
    let groups = args.groups;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (store, keys, next) = (store.clone(), keys.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&k) = keys.get(i) else { return Ok::<_, anyhow::Error>(latencies) };
                let group = format!("sub_{}", k % groups);
                let job = NewJob::new(QUEUE, json!({ "group": group, "n": k }))
                    .with_unique_key(format!("evt_{round}_{k}"))
                    .with_group(group);
                let t0 = Instant::now();
                store.enqueue_one(job).await?;
                latencies.push(t0.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(calls as usize);
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok((per_sec(calls, start.elapsed()), latencies))
}

/// Drains every job with one worker, `concurrency` slots, committing through a
/// [`Committer`] per `group`; returns jobs/s and overlaps seen.
async fn drain(store: &Store, args: Workload, group: GroupCommit) -> Result<(f64, u64)> {
    exec(store, "DROP TABLE IF EXISTS bench_effects").await?;
    exec(store, "CREATE TABLE bench_effects (group_key TEXT PRIMARY KEY, n BIGINT NOT NULL)").await?;
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();
    let overlaps = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(Notify::new());
    let total = args.jobs;
    // As `subsync worker` sets it up: a quarter of the slots commit batches at once.
    let committer = Committer::grouped(store.clone(), group, (args.concurrency / 4).max(1));
    let _committers = committer.start();
    let handler = {
        let (committer, active, overlaps, done, finished) =
            (committer.clone(), active.clone(), overlaps.clone(), done.clone(), finished.clone());
        move |job: Job| {
            let (committer, active, overlaps, done, finished) =
                (committer.clone(), active.clone(), overlaps.clone(), done.clone(), finished.clone());
            async move {
                let group = job.group_key().to_string();
                if !active.lock().map_err(|_| JobError::retry("poisoned"))?.insert(group.clone()) {
                    overlaps.fetch_add(1, Ordering::Relaxed);
                }
                let ran = Arc::new(AtomicBool::new(false));
                let work: Work = {
                    let (job, group, active, ran) = (job.clone(), group.clone(), active.clone(), ran.clone());
                    Box::new(move |tx| {
                        Box::pin(async move {
                            ran.store(true, Ordering::SeqCst);
                            let result = upsert_and_complete(tx, &job, &group).await;
                            // The exclusive section ends before the commit: the group's next
                            // job can start right after it.
                            if let Ok(mut active) = active.lock() {
                                active.remove(&group);
                            }
                            result
                        })
                    })
                };
                let result = committer.run(&group, work).await;
                if !ran.load(Ordering::SeqCst) {
                    active.lock().map_err(|_| JobError::retry("poisoned"))?.remove(&group);
                }
                result?;
                if done.fetch_add(1, Ordering::Relaxed) + 1 == total {
                    finished.notify_one();
                }
                Ok::<(), JobError>(())
            }
        }
    };
    let mut options = WorkerOptions::new(QUEUE);
    options.concurrency = args.concurrency;
    options.batch = args.concurrency as u32;
    options.poll_interval = Duration::from_millis(50);
    let backend = QueueBackend::new(store.clone(), options.clone());
    let worker = WorkerBuilder::new("bench-worker").backend(backend).concurrency(args.concurrency).build(handler);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stop_rx.await;
        Ok::<(), std::io::Error>(())
    }));
    let waited = tokio::time::timeout(Duration::from_secs(600), finished.notified()).await;
    let elapsed = start.elapsed();
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
    if waited.is_err() {
        bail!("drain did not finish within 10 minutes ({} of {total} done)", done.load(Ordering::Relaxed));
    }
    let sum = effect_sum(store).await?;
    if sum != total as i64 {
        bail!("effects applied {sum} times for {total} jobs: exactly-once broken");
    }
    Ok((per_sec(total, elapsed), overlaps.load(Ordering::Relaxed)))
}

/// The job's effect (a small upsert) and its completion, in the committer's transaction.
async fn upsert_and_complete(tx: &mut Tx, job: &Job, group: &str) -> Result<(), JobError> {
    let result = match tx.conn() {
        Conn::Sqlite(c) => sqlx::query(
            "INSERT INTO bench_effects (group_key, n) VALUES (?1, 1) \
             ON CONFLICT (group_key) DO UPDATE SET n = n + 1",
        )
        .bind(group)
        .execute(c)
        .await
        .map(|r| r.rows_affected()),
        Conn::Postgres(c) => sqlx::query(
            "INSERT INTO bench_effects (group_key, n) VALUES ($1, 1) \
             ON CONFLICT (group_key) DO UPDATE SET n = bench_effects.n + 1",
        )
        .bind(group)
        .execute(c)
        .await
        .map(|r| r.rows_affected()),
    };
    result.map_err(|e| JobError::retry(e.to_string()))?;
    job.complete_in(tx).await?;
    Ok(())
}

async fn effect_sum(store: &Store) -> Result<i64> {
    let sum: Option<i64> = match store.pool() {
        Dialect::Sqlite(pool) => sqlx::query_scalar("SELECT sum(n) FROM bench_effects").fetch_one(pool).await?,
        Dialect::Postgres(pool) => {
            sqlx::query_scalar("SELECT sum(n)::bigint FROM bench_effects").fetch_one(pool).await?
        }
    };
    Ok(sum.unwrap_or(0))
}
