//! End to end, through real HTTP into an in-process intake and worker:
//! - the race that motivates subsync: `checkout.session.completed` and
//!   `customer.subscription.created` for one subscription sent at the same moment; the time
//!   from their arrival until both are applied (p50/p99);
//! - single webhooks under load: time from arrival to entitlement effect, and drain rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use subsync_domain::{AccessPolicy, TierConfig};
use subsync_intake::{IntakeConfig, IntakeState};
use subsync_queue::Job;
use subsync_stripe::signature::{Secret, Secrets, sign};
use subsync_worker::{GroupCommit, SyncContext, SyncObserver, WorkerConfig};

use crate::db::{Backends, BenchDb};
use crate::payload::Payload;
use crate::stats::{per_sec, percentile_ms};

const SECRET: &str = "whsec_bench_e2e";

/// End-to-end figures on one backend.
pub struct Figures {
    pub pair_p50: f64,
    pub pair_p99: f64,
    pub effect_p50: f64,
    pub effect_p99: f64,
    pub drain: f64,
}

/// When each event's sync finished (the handler commits its effect before it returns).
#[derive(Default)]
struct Done(Mutex<HashMap<String, Instant>>);

impl SyncObserver for Done {
    fn finished(&self, job: &Job) {
        if let Some(id) = job.payload()["event_id"].as_str()
            && let Ok(mut map) = self.0.lock()
        {
            map.insert(id.to_string(), Instant::now());
        }
    }
}

impl Done {
    fn get(&self, id: &str) -> Option<Instant> {
        self.0.lock().ok()?.get(id).copied()
    }

    /// Waits (1 ms resolution, bounded) until every id is done; returns the latest time.
    async fn wait_all(&self, ids: &[String], limit: Duration) -> Result<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let times: Option<Vec<Instant>> = ids.iter().map(|id| self.get(id)).collect();
            if let Some(times) = times {
                return Ok(times.into_iter().max().unwrap_or_else(Instant::now));
            }
            if Instant::now() > deadline {
                bail!("events not applied within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn signed(secret: &Secret, body: &[u8]) -> String {
    sign(secret, chrono::Utc::now().timestamp(), body)
}

fn checkout(event: &str, sub: &str, user: &str) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp();
    format!(
        r#"{{"id":"{event}","object":"event","api_version":"2025-03-31.basil","created":{now},"livemode":false,"type":"checkout.session.completed","data":{{"object":{{"id":"cs_{sub}","object":"checkout.session","mode":"subscription","status":"complete","payment_status":"paid","subscription":"{sub}","customer":"cus_{sub}","client_reference_id":"{user}","metadata":{{"app_user_id":"{user}"}}}}}}}}"#
    )
    .into_bytes()
}

fn created(payload: Payload, event: &str, sub: &str) -> Vec<u8> {
    let body = payload.body(event, sub);
    String::from_utf8_lossy(&body)
        .replace("customer.subscription.updated", "customer.subscription.created")
        .into_bytes()
}

/// Options of `subsync-bench e2e`: the webhook path with each worker commit linger, in one run.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    backends: Backends,
    /// Worker commit lingers to compare, in ms (0: one commit per job).
    #[arg(long, value_delimiter = ',', default_value = "0,2")]
    linger_ms: Vec<u64>,
    /// Webhooks in the drain.
    #[arg(long, default_value_t = 3_000)]
    events: u64,
    /// Race pairs.
    #[arg(long, default_value_t = 100)]
    pairs: u64,
    /// Event bodies to measure, one row each per linger.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "realistic")]
    payload: Vec<Payload>,
}

/// One row per backend and linger, alternating lingers so drift hits them alike.
pub async fn run(args: Args) -> Result<()> {
    let mut rows = Vec::new();
    for backend in args.backends.chosen()? {
        for &payload in &args.payload {
            for &linger in &args.linger_ms {
                let db = BenchDb::open(backend.as_deref(), subsync_queue::QueueConfig::default()).await?;
                let group = GroupCommit { linger: Duration::from_millis(linger), ..GroupCommit::default() };
                let f = measure(&db, args.pairs, args.events, 16, group, payload).await?;
                rows.push((db.label, payload, linger, f));
                db.close().await;
            }
        }
    }
    println!();
    println!(
        "Webhook path, {} events from 16 senders, {} race pairs; worker commit linger per row",
        args.events, args.pairs
    );
    println!();
    println!(
        "| backend | payload | worker commit linger (ms) | drain (events/s) | × linger 0 | webhook → entitlement p50 / p99 (ms) | race pair p50 / p99 (ms) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (label, payload, linger, f) in &rows {
        let base = rows
            .iter()
            .find(|(l, p, g, _)| l == label && p == payload && *g == 0)
            .map_or(f.drain, |(_, _, _, b)| b.drain);
        println!(
            "| {label} | {} | {linger} | {:.0} | ×{:.2} | {:.1} / {:.1} | {:.1} / {:.1} |",
            payload.label(),
            f.drain,
            f.drain / base,
            f.effect_p50,
            f.effect_p99,
            f.pair_p50,
            f.pair_p99
        );
    }
    Ok(())
}

/// Runs both measurements on `db`, the worker committing per `group`, the subscription
/// events carrying `payload`.
pub async fn measure(
    db: &BenchDb,
    pairs: u64,
    events: u64,
    concurrency: usize,
    group: GroupCommit,
    payload: Payload,
) -> Result<Figures> {
    eprintln!("[{}] end to end ({} body, worker commit linger {:?})…", db.label, payload.label(), group.linger);
    // The intake as `subsync intake` runs it (default configuration).
    let config = IntakeConfig::new(Secrets::parse(SECRET)?);
    let state = IntakeState::new(db.store.clone(), config, Arc::new(subsync_metrics::Registry::new()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks/stripe", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, subsync_intake::router(state)).await });
    let done = Arc::new(Done::default());
    let tiers = TierConfig::default_config();
    let worker_config = WorkerConfig::default().with_concurrency(16);
    // As `subsync worker` does: a quarter of the slots commit batches at once on PostgreSQL.
    let context = SyncContext::new(db.store.clone(), tiers, AccessPolicy::default())
        .with_observer(done.clone())
        .with_group_commit(group, (worker_config.queue.concurrency / 4).max(1));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(subsync_worker::run(context, worker_config, async move {
        let _ = stop_rx.await;
    }));
    let secret = Arc::new(Secret::parse(SECRET)?);
    let client = reqwest::Client::new();
    let run = uuid::Uuid::new_v4().simple().to_string();

    let post = |body: Vec<u8>| {
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .header("stripe-signature", signed(&secret, &body))
            .body(body);
        async move {
            let response = request.send().await?;
            if !response.status().is_success() {
                let status = response.status();
                bail!("intake answered {status}: {}", response.text().await.unwrap_or_default());
            }
            Ok::<(), anyhow::Error>(())
        }
    };

    // 1. The race, a few pairs at a time.
    let mut pair_latencies = Vec::new();
    for chunk in (0..pairs).collect::<Vec<_>>().chunks(4) {
        let mut waits = Vec::new();
        for &i in chunk {
            let (sub, user) = (format!("sub_pair_{run}_{i}"), format!("user_pair_{i}"));
            let (a, c) = (format!("evt_pair_a_{run}_{i}"), format!("evt_pair_c_{run}_{i}"));
            let t0 = Instant::now();
            let (ra, rc) = tokio::join!(post(checkout(&a, &sub, &user)), post(created(payload, &c, &sub)));
            ra?;
            rc?;
            waits.push((t0, vec![a, c]));
        }
        for (t0, ids) in waits {
            let at = done.wait_all(&ids, Duration::from_secs(30)).await?;
            pair_latencies.push(at - t0);
        }
    }
    pair_latencies.sort();

    // 2. Single webhooks under load.
    let sent: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..concurrency {
        let (client, url, secret, sent, next, run) =
            (client.clone(), url.clone(), secret.clone(), sent.clone(), next.clone(), run.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= events {
                    return Ok::<(), anyhow::Error>(());
                }
                let id = format!("evt_e2e_{run}_{i}");
                let body = payload.body(&id, &format!("sub_e2e_{run}_{}", i % 2000));
                let t0 = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("stripe-signature", signed(&secret, &body))
                    .body(body)
                    .send()
                    .await?;
                if !response.status().is_success() {
                    let status = response.status();
                    bail!("intake answered {status}: {}", response.text().await.unwrap_or_default());
                }
                if let Ok(mut s) = sent.lock() {
                    s.push((id, t0));
                }
            }
        }));
    }
    for s in senders {
        s.await??;
    }
    let sent = std::mem::take(&mut *sent.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let ids: Vec<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    let last = done.wait_all(&ids, Duration::from_secs(300)).await?;
    let mut effect: Vec<Duration> = sent.iter().filter_map(|(id, t0)| done.get(id).map(|at| at - *t0)).collect();
    effect.sort();
    let drain = per_sec(events, last - start);

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
    server.abort();
    Ok(Figures {
        pair_p50: percentile_ms(&pair_latencies, 50.0),
        pair_p99: percentile_ms(&pair_latencies, 99.0),
        effect_p50: percentile_ms(&effect, 50.0),
        effect_p99: percentile_ms(&effect, 99.0),
        drain,
    })
}
