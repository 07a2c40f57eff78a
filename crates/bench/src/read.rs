//! The application's read API benchmark: requests/s and p50/p99 at N concurrent readers
//! through loopback HTTP into an in-process `subsync-appapi`, beside the same reads without
//! HTTP (`entitlements::get` from as many tasks) measured in the same run: the gap is what
//! HTTP, the key check and JSON cost. Readers ask for stored and never-seen users, the whole
//! entitlement and single features, with and without `If-None-Match`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use subsync_appapi::{AppApiState, AppKeys};
use subsync_domain::TierConfig;
use subsync_queue::QueueConfig;
use subsync_worker::testing::{Seed, put_entitlement};

use crate::db::{Backends, BenchDb};
use crate::stats::{per_sec, percentile_ms};

const KEY: &str = "bench-app-key-0123456789";
/// No run lasts longer than this, whatever `--requests` says.
const TIME_LIMIT: Duration = Duration::from_secs(120);
const TIERS: [&str; 3] = ["basic", "pro", "agent"];

/// Options of `subsync-bench read`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    backends: Backends,
    /// Requests per backend.
    #[arg(long, default_value_t = 40_000)]
    requests: u64,
    /// Concurrent readers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Users with a stored entitlement.
    #[arg(long, default_value_t = 2_000)]
    users: u64,
}

/// Read figures on one backend.
pub struct Figures {
    pub label: &'static str,
    /// `entitlements::get` from `concurrency` tasks, no HTTP.
    pub direct_rate: f64,
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    pub not_modified: u64,
    pub failures: u64,
}

impl Figures {
    pub fn row(&self) -> String {
        format!(
            "| {} | {:.0} | {:.0} (×{:.2}) | {:.2} / {:.2} | {} | {} |",
            self.label,
            self.direct_rate,
            self.rate,
            self.rate / self.direct_rate,
            self.p50,
            self.p99,
            self.not_modified,
            self.failures
        )
    }
}

/// The table header [`Figures::row`] fills.
pub const HEADER: &str = "| backend | same reads without HTTP (reads/s) | read API (requests/s) | p50 / p99 (ms) | 304s | failures |\n|---|---:|---:|---:|---:|---:|\n";

pub async fn run(args: Args) -> Result<()> {
    let mut rows = Vec::new();
    for backend in args.backends.chosen()? {
        let db = BenchDb::open(backend.as_deref(), QueueConfig::default()).await?;
        rows.push(measure(&db, args.users, args.requests, args.concurrency).await?);
        db.close().await;
    }
    println!();
    println!(
        "Read API: {} requests per backend, {} concurrent readers over loopback HTTP, {} stored users",
        args.requests, args.concurrency, args.users
    );
    println!();
    print!("{HEADER}");
    for r in &rows {
        println!("{}", r.row());
    }
    Ok(())
}

/// Seeds `users` entitlements on `db`, then reads them `requests` times with `concurrency` readers.
pub async fn measure(db: &BenchDb, users: u64, requests: u64, concurrency: usize) -> Result<Figures> {
    eprintln!("[{}] read API: seeding {users} users…", db.label);
    for n in 0..users {
        let tier = TIERS[(n % TIERS.len() as u64) as usize];
        put_entitlement(&db.store, &Seed::active(&format!("usr_{n}"), tier)).await?;
    }
    eprintln!("[{}] read API: same reads without HTTP…", db.label);
    let direct_rate = direct(db, users, requests, concurrency).await?;
    eprintln!("[{}] read API over HTTP…", db.label);
    let state = AppApiState::new(db.store.clone(), AppKeys::parse(KEY)?, &TierConfig::default_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(axum::serve(listener, subsync_appapi::router(state)).into_future());
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, base, next) = (client.clone(), base.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut not_modified, mut failures) = (0u64, 0u64);
            let mut etag: Option<String> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests || started.elapsed() > TIME_LIMIT {
                    break;
                }
                // One in ten users is unknown to subsync (the default answer).
                let user = fastrand::u64(..users + users / 10);
                let path = match i % 4 {
                    0 | 1 => format!("/v1/users/usr_{user}/entitlements"),
                    2 => format!("/v1/users/usr_{user}/features/itsa.quarterly"),
                    _ => format!("/v1/users/usr_{user}/features/sources.max"),
                };
                let mut req = client.get(format!("{base}{path}")).bearer_auth(KEY);
                // Every eighth request revalidates the previous answer's ETag.
                if i % 8 == 0
                    && let Some(tag) = &etag
                {
                    req = req.header("If-None-Match", tag);
                }
                let t = Instant::now();
                match req.send().await {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        etag = res.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
                        let body = res.bytes().await;
                        latencies.push(t.elapsed());
                        match (status, body) {
                            (304, Ok(_)) => not_modified += 1,
                            (200, Ok(_)) => {}
                            _ => failures += 1,
                        }
                    }
                    Err(_) => failures += 1,
                }
            }
            (latencies, not_modified, failures)
        }));
    }
    let (mut latencies, mut not_modified, mut failures) = (Vec::new(), 0, 0);
    for task in tasks {
        let (l, n, f) = task.await?;
        latencies.extend(l);
        not_modified += n;
        failures += f;
    }
    let elapsed = started.elapsed();
    server.abort();
    latencies.sort();
    Ok(Figures {
        label: db.label,
        direct_rate,
        rate: per_sec(latencies.len() as u64 - failures.min(latencies.len() as u64), elapsed),
        p50: percentile_ms(&latencies, 50.0),
        p99: percentile_ms(&latencies, 99.0),
        not_modified,
        failures,
    })
}

/// The same reads through `entitlements::get`, in process: the ceiling HTTP is measured against.
async fn direct(db: &BenchDb, users: u64, requests: u64, concurrency: usize) -> Result<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, next) = (db.store.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while next.fetch_add(1, Ordering::Relaxed) < requests && started.elapsed() <= TIME_LIMIT {
                let user = fastrand::u64(..users + users / 10);
                subsync_worker::entitlements::get(&store, &format!("usr_{user}")).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await??;
    }
    Ok(per_sec(done, started.elapsed()))
}
