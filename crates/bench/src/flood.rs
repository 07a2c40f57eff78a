//! `subsync-bench flood`: the issue #16 attack against the real `subsync serve` binary (the
//! one built beside this benchmark) on SQLite, with the open-file limit at 1,024 (the usual
//! service default): up to 1,100 connections that send half a request line and then nothing,
//! and 300 that send a nearly complete 1 MiB body and stall, each reconnecting when shed;
//! meanwhile one signed webhook every 50 ms on a fresh connection.
//!
//! Prints the webhooks' p50/p99 and failures during the flood, the server's peak resident
//! memory (VmRSS), and the listener's shed counts; then checks that fresh connections are all
//! served once the flood stops. Loopback only, bounded in time and sockets.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use subsync_queue::Backend;
use subsync_queue::testing::TestDb;
use subsync_stripe::signature::{Secret, sign};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::payload::Payload;
use crate::stats::percentile_ms;

const SECRET: &str = "whsec_bench_flood";
/// What a body-flood connection declares: just under the default 1 MiB limit.
const SLOW_BODY_LEN: usize = 1024 * 1024 - 1024;

/// Flags of `subsync-bench flood`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds the flood lasts (at most 120).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// The server's open-file limit (soft and hard).
    #[arg(long, default_value_t = 1024)]
    pub file_limit: u32,
    /// Half-open connections held at once (at most 1,500).
    #[arg(long, default_value_t = 1100)]
    pub half_open: usize,
    /// Slow nearly-1-MiB bodies held at once (at most 500).
    #[arg(long, default_value_t = 300)]
    pub slow_bodies: usize,
}

/// Runs the flood and prints its figures.
pub async fn run(args: Args) -> Result<()> {
    if args.seconds == 0 || args.seconds > 120 || args.half_open > 1500 || args.slow_bodies > 500 {
        bail!("flood: --seconds 1..=120, --half-open ≤ 1500, --slow-bodies ≤ 500");
    }
    let binary = std::env::current_exe()?.with_file_name("subsync");
    if !binary.exists() {
        bail!("flood: build the server beside the benchmark first (cargo build --release -p subsync-cli)");
    }
    let db = TestDb::unmigrated(Backend::Sqlite).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -n {} && exec \"$0\" serve", args.file_limit))
        .arg(&binary)
        .env("DATABASE_URL", &db.url)
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        .env("SUBSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawn subsync serve")?;
    let pid = child.id().context("server pid")?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let mut healthy = false;
    for _ in 0..200 {
        if client.get(&healthz).send().await.is_ok_and(|r| r.status().is_success()) {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !healthy {
        bail!("flood: the server did not start");
    }
    let idle_rss = rss_kib(pid).unwrap_or(0);

    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    let half = Arc::new(b"POST /webhooks/stripe HT".to_vec());
    for _ in 0..args.half_open {
        attackers.push(tokio::spawn(attacker(
            port,
            half.clone(),
            Duration::from_secs(1),
            stop.clone(),
            connected.clone(),
        )));
    }
    let mut slow = format!(
        "POST /webhooks/stripe HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         stripe-signature: t=1,v1=00\r\ncontent-length: {SLOW_BODY_LEN}\r\n\r\n"
    )
    .into_bytes();
    slow.extend(std::iter::repeat_n(b' ', SLOW_BODY_LEN - 4096));
    let slow = Arc::new(slow);
    for _ in 0..args.slow_bodies {
        attackers.push(tokio::spawn(attacker(
            port,
            slow.clone(),
            Duration::from_secs(5),
            stop.clone(),
            connected.clone(),
        )));
    }

    let secret = Secret::parse(SECRET)?;
    let started = Instant::now();
    let (mut webhooks, mut peak_rss, mut sent) = (Vec::new(), idle_rss, 0usize);
    while started.elapsed() < Duration::from_secs(args.seconds) {
        let body = Payload::Realistic.body(&format!("evt_flood_{sent}"), &format!("sub_flood_{sent}"));
        let signature = sign(&secret, chrono::Utc::now().timestamp(), &body);
        let client = client.clone();
        webhooks.push(tokio::spawn(async move {
            let begun = Instant::now();
            let request = client
                .post(format!("http://127.0.0.1:{port}/webhooks/stripe"))
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body)
                .send();
            match tokio::time::timeout(Duration::from_secs(30), request).await {
                Ok(Ok(r)) if r.status().is_success() => Some(begun.elapsed()),
                _ => None,
            }
        }));
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak_rss = peak_rss.max(rss_kib(pid).unwrap_or(0));
    }
    let mut latencies = Vec::new();
    for webhook in webhooks {
        if let Ok(Some(latency)) = webhook.await {
            latencies.push(latency);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in attackers {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    latencies.sort();
    let metrics = client.get(format!("http://127.0.0.1:{port}/metrics")).send().await?.text().await?;
    let mut after_ok = 0;
    for i in 0..200 {
        let body = Payload::Realistic.body(&format!("evt_after_{i}"), &format!("sub_after_{i}"));
        let signature = sign(&secret, chrono::Utc::now().timestamp(), &body);
        let response = client
            .post(format!("http://127.0.0.1:{port}/webhooks/stripe"))
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body)
            .send()
            .await;
        after_ok += usize::from(response.is_ok_and(|r| r.status().is_success()));
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    db.close().await;

    println!(
        "flood ({}s, open-file limit {}, {} half-open + {} slow 1 MiB bodies, {} attacker connections):",
        args.seconds,
        args.file_limit,
        args.half_open,
        args.slow_bodies,
        connected.load(Ordering::Relaxed)
    );
    println!(
        "  signed webhooks: {} sent, {} answered 2xx; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sent,
        latencies.len(),
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0),
        percentile_ms(&latencies, 100.0)
    );
    println!("  resident memory: {} MiB idle, {} MiB peak", idle_rss / 1024, peak_rss / 1024);
    for line in metrics.lines().filter(|l| l.starts_with("subsync_listener_") && l.contains("listener=\"intake\"")) {
        println!("  {line}");
    }
    println!("  after the flood: {after_ok}/200 fresh webhooks answered 2xx");
    Ok(())
}

/// Resident memory of `pid` in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// One attacker connection, reconnecting `pause` after the server closes it, until `stop`.
async fn attacker(
    port: u16,
    opening: Arc<Vec<u8>>,
    pause: Duration,
    stop: Arc<AtomicBool>,
    connected: Arc<AtomicUsize>,
) {
    while !stop.load(Ordering::Relaxed) {
        let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(("127.0.0.1", port))).await;
        if let Ok(Ok(mut stream)) = stream {
            connected.fetch_add(1, Ordering::Relaxed);
            if stream.write_all(&opening).await.is_ok() {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    let read = tokio::time::timeout(Duration::from_millis(250), stream.read(&mut buf)).await;
                    if let Ok(Ok(0) | Err(_)) = read {
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
}
