//! The duty table's promises on both backends: one lease holder at a time (taken over only
//! after expiry), a checkpoint that never moves back, runs recorded for operators, and the
//! schedule loop: two runners never run a duty at once, and a runner that dies mid-run
//! leaves the next one to repeat it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use subsync_duties::store::{self, RunRecord};
use subsync_duties::{Duty, DutyTask, run_every};
use subsync_queue::testing::TestDb;
use subsync_queue::{Backend, both_backends};

both_backends!(60;
    one_holder_at_a_time_until_the_lease_expires,
    the_checkpoint_only_moves_forward,
    runs_are_recorded_with_their_result_or_error,
    two_runners_never_run_a_duty_at_once,
    a_runner_that_dies_mid_run_leaves_the_duty_to_the_next,
);

async fn one_holder_at_a_time_until_the_lease_expires(b: Backend) {
    let t = TestDb::new(b).await;
    let ttl = Duration::from_millis(400);
    let a = store::try_lease(&t.store, "reconcile", "proc-a", ttl).await.unwrap().expect("free at first");
    assert!(store::try_lease(&t.store, "reconcile", "proc-b", ttl).await.unwrap().is_none(), "held by a");
    assert!(store::try_lease(&t.store, "prune", "proc-b", ttl).await.unwrap().is_some(), "duties are independent");
    let status = store::get(&t.store, "reconcile").await.unwrap().expect("row");
    assert_eq!(status.leader.as_deref(), Some("proc-a"));
    assert!(a.renew().await.unwrap());
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let b_lease = store::try_lease(&t.store, "reconcile", "proc-b", ttl).await.unwrap().expect("expired: b takes it");
    assert!(!a.renew().await.unwrap(), "a learns it lost the lease");
    a.release().await.unwrap();
    assert!(
        store::try_lease(&t.store, "reconcile", "proc-c", ttl).await.unwrap().is_none(),
        "a's release cannot free b's lease"
    );
    b_lease.release().await.unwrap();
    assert!(store::try_lease(&t.store, "reconcile", "proc-c", ttl).await.unwrap().is_some(), "released: free at once");
    t.close().await;
}

async fn the_checkpoint_only_moves_forward(b: Backend) {
    let t = TestDb::new(b).await;
    assert!(store::get(&t.store, "reconcile").await.unwrap().is_none());
    store::advance_checkpoint(&t.store, "reconcile", 100).await.unwrap();
    store::advance_checkpoint(&t.store, "reconcile", 50).await.unwrap();
    assert_eq!(store::get(&t.store, "reconcile").await.unwrap().unwrap().checkpoint, Some(100));
    store::advance_checkpoint(&t.store, "reconcile", 150).await.unwrap();
    assert_eq!(store::get(&t.store, "reconcile").await.unwrap().unwrap().checkpoint, Some(150));
    t.close().await;
}

async fn runs_are_recorded_with_their_result_or_error(b: Backend) {
    let t = TestDb::new(b).await;
    let started_at = Utc::now();
    let ok = json!({"listed": 3, "new": 1});
    let run = RunRecord { runner: "cli", started_at, finished_at: Utc::now(), result: Ok(&ok) };
    store::record_run(&t.store, "reconcile", &run).await.unwrap();
    let s = store::get(&t.store, "reconcile").await.unwrap().unwrap();
    assert_eq!((s.runs, s.failures, s.last_ok), (1, 0, Some(true)));
    assert_eq!(s.last_result, Some(ok));
    let succeeded = s.last_success_at.expect("a success is dated");
    let failed = RunRecord { runner: "proc-a", started_at, finished_at: Utc::now(), result: Err("Stripe API down") };
    store::record_run(&t.store, "reconcile", &failed).await.unwrap();
    let s = store::get(&t.store, "reconcile").await.unwrap().unwrap();
    assert_eq!((s.runs, s.failures, s.last_ok), (2, 1, Some(false)));
    assert_eq!((s.last_error.as_deref(), s.last_result), (Some("Stripe API down"), None));
    assert_eq!(s.last_runner.as_deref(), Some("proc-a"));
    assert_eq!(s.last_success_at, Some(succeeded), "a failure keeps the last success's time");
    assert_eq!(store::status(&t.store).await.unwrap().len(), 1);
    t.close().await;
}

/// A task that counts runs and concurrent runs, taking `work` each time.
fn counting(work: Duration, runs: Arc<AtomicUsize>, active: Arc<AtomicUsize>, overlaps: Arc<AtomicUsize>) -> DutyTask {
    Arc::new(move |_run| {
        let (runs, active, overlaps) = (runs.clone(), active.clone(), overlaps.clone());
        Box::pin(async move {
            if active.fetch_add(1, Ordering::SeqCst) > 0 {
                overlaps.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(work).await;
            active.fetch_sub(1, Ordering::SeqCst);
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(json!({"ok": true}))
        })
    })
}

fn quick(task: DutyTask, every: Duration) -> Duty {
    let mut duty = Duty::new("reconcile", every, task);
    duty.lease = Duration::from_millis(600);
    duty.poll = Duration::from_millis(20);
    duty
}

async fn two_runners_never_run_a_duty_at_once(b: Backend) {
    let t = TestDb::new(b).await;
    let (runs, active, overlaps) = (Arc::default(), Arc::default(), Arc::default());
    let task = counting(Duration::from_millis(150), Arc::clone(&runs), active, Arc::clone(&overlaps));
    let duty = quick(task, Duration::from_millis(50));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut handles = Vec::new();
    for name in ["proc-a", "proc-b", "proc-c"] {
        let mut rx = stop_rx.clone();
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        handles.push(tokio::spawn(run_every(t.store.clone(), duty.clone(), name.into(), stop)));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while runs.load(Ordering::SeqCst) < 6 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    for h in handles {
        tokio::time::timeout(Duration::from_secs(5), h).await.expect("stops").unwrap();
    }
    assert!(runs.load(Ordering::SeqCst) >= 6, "the duty kept running");
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "never two runs at once");
    let s = store::get(&t.store, "reconcile").await.unwrap().unwrap();
    assert!(s.runs >= 6 && s.failures == 0, "{s:?}");
    assert_eq!(s.leader, None, "stopping gave the lease back");
    t.close().await;
}

async fn a_runner_that_dies_mid_run_leaves_the_duty_to_the_next(b: Backend) {
    let t = TestDb::new(b).await;
    let started = Arc::new(AtomicUsize::new(0));
    let hang: DutyTask = {
        let started = started.clone();
        Arc::new(move |_| {
            started.fetch_add(1, Ordering::SeqCst);
            Box::pin(std::future::pending())
        })
    };
    // A runner starts a run and dies (its task is aborted: no release, no record).
    let dying = tokio::spawn(run_every(
        t.store.clone(),
        quick(hang, Duration::from_secs(3600)),
        "proc-a".into(),
        std::future::pending(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while started.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dying.abort();
    assert_eq!(store::get(&t.store, "reconcile").await.unwrap().unwrap().leader.as_deref(), Some("proc-a"));
    // The next runner waits for the lease to expire, then runs the duty (it never finished).
    let (runs, active, overlaps) = (Arc::new(AtomicUsize::new(0)), Arc::default(), Arc::default());
    let task = counting(Duration::from_millis(10), runs.clone(), active, overlaps);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let stop = async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    };
    let next = tokio::spawn(run_every(t.store.clone(), quick(task, Duration::from_secs(3600)), "proc-b".into(), stop));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while runs.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    next.await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1, "taken over after the lease expired, run once (hourly)");
    let s = store::get(&t.store, "reconcile").await.unwrap().unwrap();
    assert_eq!((s.runs, s.last_runner.as_deref()), (1, Some("proc-b")));
    t.close().await;
}
