//! The dashboard in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/browser/dashboard.spec.mjs`) against the admin server on a real socket, over a
//! SQLite database. It signs in with a name, retries the seeded dead job with its button, finds
//! the retry under that name on the audit page, and saves screenshots to
//! `test-artifacts/dashboard*.png`.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules`: run
//! `bash scripts/ensure-chromium.sh`. Without them this test fails; it never skips.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use subsync_queue::{JobState, NewJob};
use support::{Backend, Q, TOKEN, TestDb, seed_dead, seed_pending};

/// The name the browser signs in with.
const OPERATOR: &str = "Ana Operadora";

/// One user's support view, in the worker's shape (`subsync_worker::SupportView`), found by
/// their customer id: what the page must render (the view itself is tested in the worker).
struct OneUser;

impl subsync_admin::EntitlementsView for OneUser {
    fn list(
        &self,
        _: u32,
        _: u64,
    ) -> subsync_admin::BoxFuture<'_, Result<Vec<serde_json::Value>, subsync_admin::ViewError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn get<'a>(
        &'a self,
        _: &'a str,
    ) -> subsync_admin::BoxFuture<'a, Result<Option<serde_json::Value>, subsync_admin::ViewError>> {
        Box::pin(async { Ok(None) })
    }

    fn unmapped_prices(
        &self,
        _: chrono::DateTime<chrono::Utc>,
    ) -> subsync_admin::BoxFuture<'_, Result<Vec<serde_json::Value>, subsync_admin::ViewError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn support<'a>(
        &'a self,
        key: &'a str,
    ) -> subsync_admin::BoxFuture<'a, Result<Option<serde_json::Value>, subsync_admin::ViewError>> {
        Box::pin(async move {
            Ok((key == "cus_1QaZSupport").then(|| {
                json!({
                    "user_id": "usr_1QaZSupport", "found_by": "customer_id",
                    "entitlement": {"tier": "pro", "reason": "active", "status": "active",
                                    "subscription_id": "sub_1QaZ1mBravo", "lapsed": false},
                    "features": [{"feature": "itsa.quarterly", "allowed": true, "value": "yes"},
                                 {"feature": "itsa.final_declaration", "allowed": false, "value": "no"},
                                 {"feature": "sources.max", "allowed": true, "value": "5"}],
                    "subscriptions": [{"subscription_id": "sub_1QaZ1mBravo", "status": "active",
                                       "prices": ["pro_monthly"], "cancel_at_period_end": false,
                                       "last_event_id": "evt_1QaZ0kSucceeded"}],
                    "history": [{"at": "2026-11-30T10:00:00Z", "from_tier": "free", "to_tier": "pro",
                                 "cause_event_id": "evt_1QaZ0kSucceeded", "subscription_id": "sub_1QaZ1mBravo"}],
                    "events": [{"at": "2026-11-30T11:00:00Z", "event_id": "evt_1QaZ1mPriceUnmapped",
                                "event_type": "customer.subscription.updated", "outcome": "dead job",
                                "reason": "price price_1QaZ1m has no tier mapping"}]
                })
            }))
        })
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_retries_a_dead_job_in_chromium() {
    let root = workspace_root();
    let spec = root.join("tests/browser/dashboard.spec.mjs");
    let fix = "run `bash scripts/ensure-chromium.sh` (installs Debian's chromium and tests/browser/node_modules)";
    assert!(std::path::Path::new("/usr/bin/chromium").exists(), "/usr/bin/chromium is missing: {fix}");
    assert!(
        root.join("tests/browser/node_modules/playwright-core/package.json").exists(),
        "tests/browser/node_modules/playwright-core is missing: {fix}"
    );
    assert!(spec.exists(), "{} is missing", spec.display());

    let t = TestDb::new(Backend::Sqlite).await;
    // A realistic board: one of each state, plus the dead job the browser will retry.
    let done = seed_pending(&t.store, "evt_1QaZ0kSucceeded", "sub_1QaZ0kAlpha").await;
    let claimed = t.store.claim(Q, "worker-a", 1).await.unwrap().remove(0);
    assert_eq!(claimed.lease.job_id, done);
    assert!(t.store.complete(&claimed.lease).await.unwrap());
    let dead = seed_dead(
        &t.store,
        "evt_1QaZ1mPriceUnmapped",
        "sub_1QaZ1mBravo",
        "permanent: price price_1QaZ1m has no tier mapping in tiers.toml\n  while applying customer.subscription.updated",
    )
    .await;
    let cancelled = seed_pending(&t.store, "evt_1QaZ2nCancelled", "sub_1QaZ2nCharlie").await;
    t.store.cancel(&subsync_queue::Selection::Ids(vec![cancelled])).await.unwrap();
    t.store
        .enqueue_one(
            NewJob::new(Q, json!({ "event": "evt_1QaZ3pRunning", "type": "invoice.paid" }))
                .with_unique_key("evt_1QaZ3pRunning")
                .with_group("sub_1QaZ3pDelta"),
        )
        .await
        .unwrap();
    let running = t.store.claim(Q, "worker-b", 1).await.unwrap();
    assert_eq!(running.len(), 1);
    seed_pending(&t.store, "evt_1QaZ4qPending", "sub_1QaZ3pDelta").await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let state = support::state(&t.store).with_entitlements(std::sync::Arc::new(OneUser));
    let server = tokio::spawn(subsync_admin::serve(listener, state, async {
        let _ = stop_rx.await;
    }));

    let screenshot = root.join("test-artifacts/dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let child = tokio::process::Command::new("node")
        .arg(&spec)
        .arg(format!("http://{addr}/"))
        .arg(TOKEN)
        .arg(&screenshot)
        .arg("evt_1QaZ1mPriceUnmapped")
        .arg(OPERATOR)
        .current_dir(root.join("tests/browser"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node ({e}): {fix}"));
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the browser test took more than 90 s")
        .expect("node output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "dashboard.spec.mjs failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("\"ok\":true"), "{stdout}\n{stderr}");
    assert!(stdout.contains(&dead.to_string()), "the browser retried another job: {stdout}");

    // The store agrees: the job left `dead`.
    let job = t.store.get(dead).await.unwrap().unwrap();
    assert_ne!(job.state, JobState::Dead, "job is still dead in the store");
    assert_eq!(job.state, JobState::Pending);
    // …and so does the audit log: signed in, then retried, under the name given at sign-in.
    let filter = subsync_admin::audit::AuditFilter { limit: 10, ..Default::default() };
    let entries = subsync_admin::audit::list(&t.store, &filter).await.unwrap();
    let seen: Vec<(&str, &str, &str, bool)> =
        entries.iter().map(|e| (e.actor.as_str(), e.via.as_str(), e.action.as_str(), e.ok)).collect();
    assert_eq!(seen, vec![(OPERATOR, "dashboard", "retry", true), (OPERATOR, "dashboard", "login", true)]);
    assert_eq!(entries[0].target, dead.to_string());
    let png = std::fs::metadata(&screenshot).expect("screenshot written");
    assert!(png.len() > 10_000, "screenshot is suspiciously small ({} bytes)", png.len());

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    t.close().await;
}
