//! Webhook in → application notified: signed Stripe webhooks through loopback HTTP into an
//! in-process intake, the worker (with notifications) and the deliverer, to a receiver on
//! loopback that checks each Standard Webhooks signature. The latency is from the intake's
//! 2xx to the notification's arrival, per webhook (each one grants a new user a tier, so each
//! makes exactly one notification). Unloaded: one webhook at a time. Under load: N senders.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use subsync_domain::{AccessPolicy, TierConfig};
use subsync_intake::{IntakeConfig, IntakeState};
use subsync_notify::{Deliverer, NotifyConfig, WebhookSecret};
use subsync_queue::QueueConfig;
use subsync_stripe::signature::{Secret, Secrets, sign};
use subsync_worker::{SyncContext, WorkerConfig};

use crate::db::{Backends, BenchDb};
use crate::payload::Payload;
use crate::stats::percentile_ms;

const STRIPE_SECRET: &str = "whsec_bench_notify";
const NOTIFY_SECRET: &str = "whsec_c3Vic3luYy1iZW5jaC1zZWNyZXQtMDEyMzQ1Njc4OQ==";
/// No phase waits longer than this for its notifications.
const TIME_LIMIT: Duration = Duration::from_secs(180);

/// Options of `subsync-bench notify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    backends: Backends,
    /// Webhooks sent one at a time (unloaded).
    #[arg(long, default_value_t = 200)]
    unloaded: u64,
    /// Webhooks sent under load.
    #[arg(long, default_value_t = 3_000)]
    loaded: u64,
    /// Concurrent senders under load.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

/// Figures on one backend.
pub struct Figures {
    pub label: &'static str,
    pub unloaded: (f64, f64),
    pub loaded: (f64, f64),
    pub loaded_rate: f64,
    pub bad_signatures: u64,
}

impl Figures {
    pub fn row(&self) -> String {
        format!(
            "| {} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} | {} |",
            self.label,
            self.unloaded.0,
            self.unloaded.1,
            self.loaded.0,
            self.loaded.1,
            self.loaded_rate,
            self.bad_signatures
        )
    }
}

/// The table header [`Figures::row`] fills.
pub const HEADER: &str = "| backend | unloaded p50 / p99 (ms) | under load p50 / p99 (ms) | notified/s under load | bad signatures |\n|---|---:|---:|---:|---:|\n";

pub async fn run(args: Args) -> Result<()> {
    let mut rows = Vec::new();
    for backend in args.backends.chosen()? {
        let db = BenchDb::open(backend.as_deref(), QueueConfig::default()).await?;
        rows.push(measure(&db, &args).await?);
        db.close().await;
    }
    println!();
    println!(
        "Webhook 2xx → application notified: {} webhooks one at a time, then {} from {} senders",
        args.unloaded, args.loaded, args.concurrency
    );
    println!();
    print!("{HEADER}");
    for r in &rows {
        println!("{}", r.row());
    }
    Ok(())
}

/// When each user's notification arrived; signatures that did not verify.
#[derive(Default)]
struct Arrivals {
    at: Mutex<HashMap<String, Instant>>,
    bad: std::sync::atomic::AtomicU64,
}

async fn receive(secret: Arc<WebhookSecret>, arrivals: Arc<Arrivals>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let timestamp = header("webhook-timestamp").parse::<i64>().unwrap_or(0);
    if !secret.verify(header("webhook-id"), timestamp, &body, header("webhook-signature")) {
        arrivals.bad.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    }
    let user = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["user_id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    if let Ok(mut at) = arrivals.at.lock() {
        at.entry(user).or_insert_with(Instant::now);
    }
    StatusCode::NO_CONTENT
}

pub async fn measure(db: &BenchDb, args: &Args) -> Result<Figures> {
    eprintln!("[{}] webhook → notification…", db.label);
    let arrivals = Arc::new(Arrivals::default());
    let secret = Arc::new(WebhookSecret::parse(NOTIFY_SECRET)?);
    let receiver = {
        let (secret, arrivals) = (secret.clone(), arrivals.clone());
        axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                receive(secret.clone(), arrivals.clone(), headers, body)
            }),
        )
    };
    let receiver_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hooks", receiver_listener.local_addr()?);
    let receiver = tokio::spawn(axum::serve(receiver_listener, receiver).into_future());

    let state = IntakeState::new(
        db.store.clone(),
        IntakeConfig::new(Secrets::parse(STRIPE_SECRET)?),
        Arc::new(subsync_metrics::Registry::new()),
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks/stripe", listener.local_addr()?);
    let intake = tokio::spawn(axum::serve(listener, subsync_intake::router(state)).into_future());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let context =
        SyncContext::new(db.store.clone(), TierConfig::default_config(), AccessPolicy::default()).with_notifications();
    let worker = tokio::spawn(subsync_worker::run(
        context,
        WorkerConfig::default().with_concurrency(16),
        stopped(stop_rx.clone()),
    ));
    let deliverer = Arc::new(Deliverer::new(db.store.clone(), NotifyConfig::new(&hook_url, NOTIFY_SECRET)?)?);
    let notifier =
        tokio::spawn(subsync_notify::run(deliverer, "bench", Duration::from_secs(5), None, stopped(stop_rx)));

    let stripe = Arc::new(Secret::parse(STRIPE_SECRET)?);
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let run = uuid::Uuid::new_v4().simple().to_string();

    // Unloaded: one webhook, wait for its notification, the next.
    let mut unloaded = Vec::new();
    for i in 0..args.unloaded {
        let sub = format!("sub_u_{run}_{i}");
        let answered = send(&client, &url, &stripe, &format!("evt_u_{run}_{i}"), &sub).await?;
        let at = wait_for(&arrivals, &[format!("cus_{sub}")]).await?;
        unloaded.push(at[0].saturating_duration_since(answered));
    }
    unloaded.sort();

    // Under load: N senders, every notification awaited at the end.
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..args.concurrency {
        let (client, url, stripe, next, run, total) =
            (client.clone(), url.clone(), stripe.clone(), next.clone(), run.clone(), args.loaded);
        senders.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(sent);
                }
                let sub = format!("sub_l_{run}_{i}");
                let answered = send(&client, &url, &stripe, &format!("evt_l_{run}_{i}"), &sub).await?;
                sent.push((format!("cus_{sub}"), answered));
            }
        }));
    }
    let mut sent = Vec::new();
    for s in senders {
        sent.extend(s.await??);
    }
    let users: Vec<String> = sent.iter().map(|(u, _)| u.clone()).collect();
    let at = wait_for(&arrivals, &users).await?;
    let last = at.iter().max().copied().unwrap_or_else(Instant::now);
    let mut loaded: Vec<Duration> =
        sent.iter().zip(&at).map(|((_, answered), at)| at.saturating_duration_since(*answered)).collect();
    loaded.sort();

    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
    let _ = tokio::time::timeout(Duration::from_secs(30), notifier).await;
    intake.abort();
    receiver.abort();
    Ok(Figures {
        label: db.label,
        unloaded: (percentile_ms(&unloaded, 50.0), percentile_ms(&unloaded, 99.0)),
        loaded: (percentile_ms(&loaded, 50.0), percentile_ms(&loaded, 99.0)),
        loaded_rate: crate::stats::per_sec(args.loaded, last - started),
        bad_signatures: arrivals.bad.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Sends one signed webhook; the instant its 2xx arrived.
async fn send(client: &reqwest::Client, url: &str, secret: &Secret, event: &str, sub: &str) -> Result<Instant> {
    let body = Payload::Realistic.body(event, sub);
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("stripe-signature", sign(secret, chrono::Utc::now().timestamp(), &body))
        .body(body)
        .send()
        .await?;
    let answered = Instant::now();
    if !response.status().is_success() {
        bail!("intake answered {}", response.status());
    }
    Ok(answered)
}

/// Waits (1 ms resolution, bounded) until every user was notified; their arrival times.
async fn wait_for(arrivals: &Arrivals, users: &[String]) -> Result<Vec<Instant>> {
    let deadline = Instant::now() + TIME_LIMIT;
    loop {
        if let Ok(at) = arrivals.at.lock() {
            let times: Option<Vec<Instant>> = users.iter().map(|u| at.get(u).copied()).collect();
            if let Some(times) = times {
                return Ok(times);
            }
        }
        if Instant::now() > deadline {
            bail!("notifications did not all arrive within {TIME_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
