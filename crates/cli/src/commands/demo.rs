//! `subsync demo`: the whole path in one command. A bundled, realistic set of signed Stripe
//! events (three customers; delivered out of order, with a duplicate and the checkout /
//! subscription.created race) goes through the real HTTP intake into the worker, on a
//! throwaway SQLite database; then the resulting entitlements are printed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::TimeZone;
use subsync_domain::{AccessPolicy, TierConfig};
use subsync_intake::{IntakeConfig, IntakeState};
use subsync_queue::{JobFilter, JobState, Store, StoreOptions};
use subsync_stripe::signature::Secrets;
use subsync_testkit::{DEMO_NOW, DEMO_WEBHOOK_SECRET, demo_events, sign_header};
use subsync_worker::WorkerConfig;

use crate::commands::entitlements::print_table;

/// Runs the demo end to end and prints the entitlements.
pub async fn run() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("subsync-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating a temp directory")?;
    let url = format!("sqlite:{}", dir.join("demo.db").display());
    let result = demo(&url).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn demo(url: &str) -> Result<()> {
    let store = Store::connect(url, StoreOptions::default()).await?;
    store.migrate().await?;
    let registry = Arc::new(subsync_metrics::Registry::new());
    let state = IntakeState::new(store.clone(), IntakeConfig::new(Secrets::parse(DEMO_WEBHOOK_SECRET)?), registry)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, subsync_intake::router(state)).await });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The bundled story happens in January 2026: the worker judges access at the story's
    // date, as it would have live, instead of today (when those periods have long ended).
    let story_now = chrono::Utc.timestamp_opt(DEMO_NOW, 0).single().context("demo time")?;
    let tiers = TierConfig::default_config();
    let context =
        subsync_worker::SyncContext::new(store.clone(), tiers, AccessPolicy::default()).with_clock(move || story_now);
    let worker = tokio::spawn(subsync_worker::run(context, WorkerConfig::default(), async move {
        let _ = stop_rx.await;
    }));

    let client = reqwest::Client::new();
    let events = demo_events();
    println!(
        "delivering {} signed Stripe events to http://{addr}/webhooks/stripe (out of order, with a duplicate)…",
        events.len()
    );
    let mut concurrent = Vec::new();
    for event in &events {
        let header = sign_header(DEMO_WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &event.body);
        let request = client
            .post(format!("http://{addr}/webhooks/stripe"))
            .header("content-type", "application/json")
            .header("stripe-signature", header)
            .body(event.body.clone());
        let (id, kind) = (event.id.clone(), event.event_type.clone());
        // Send them together, as Stripe does for one purchase.
        concurrent.push(tokio::spawn(async move {
            let response = request.send().await?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            Ok::<_, reqwest::Error>((id, kind, status, body))
        }));
    }
    for task in concurrent {
        let (id, kind, status, body) = task.await??;
        println!("  {status} {kind:<40} {id}  {body}");
    }

    let filter = JobFilter { states: vec![JobState::Pending, JobState::Running], ..JobFilter::default() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.count(&filter).await? > 0 {
        if tokio::time::Instant::now() > deadline {
            bail!("the worker did not finish the demo jobs within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    worker.await.context("worker task")??;
    server.abort();

    let counts = store.counts().await?;
    println!("\njobs: {}", counts.iter().map(|c| format!("{} {}", c.count, c.state)).collect::<Vec<_>>().join(", "));
    println!("\nentitlements as of {} (the demo's story date):\n", story_now.format("%Y-%m-%d"));
    let rows = subsync_worker::entitlements::list_at(&store, 100, 0, story_now).await?;
    print_table(&rows);
    Ok(())
}
