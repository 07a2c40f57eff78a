//! Change notifications and timed lapses at the worker: every change of what a user may do
//! writes one outbox row (and its delivery job) in the change's transaction, carrying the
//! entitlement's version; a grant's `access_until` is applied on time by a lapse job, with no
//! Stripe event, recorded in history with cause `lapse` and notified. On PostgreSQL the change
//! is also `NOTIFY`d. Both backends.

mod support;

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use subsync_domain::{AccessPolicy, SubscriptionStatus as S, TierConfig};
use subsync_outbox::{ChangeCause, ListFilter, Notification};
use subsync_queue::{JobState, Store, both_backends};
use subsync_worker::{SyncContext, entitlements};
use support::{Backend, DAY, Sub, TestDb, deliver, fast_config, spawn_worker, wait_finished, worker_config};

const STEP: Duration = Duration::from_secs(20);

both_backends!(60;
    a_lapse_happens_on_time_and_is_notified,
    each_change_is_notified_once_with_the_entitlement_version,
    without_notifications_nothing_is_queued,
);

fn context(store: &Store) -> SyncContext {
    SyncContext::new(store.clone(), TierConfig::default_config(), AccessPolicy::default())
}

async fn notifications(store: &Store, user: &str) -> Vec<Notification> {
    let filter = ListFilter { user_id: Some(user.to_owned()), limit: 100, ..ListFilter::default() };
    let mut rows = subsync_outbox::list(store, &filter).await.expect("outbox");
    rows.reverse();
    rows.iter().map(|r| serde_json::from_str(&r.body).expect("body")).collect()
}

async fn a_lapse_happens_on_time_and_is_notified(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let mut listener = match b {
        Backend::Postgres => {
            let mut l = sqlx::postgres::PgListener::connect(&t.url).await.expect("listen");
            l.listen(subsync_outbox::PG_CHANNEL).await.expect("LISTEN");
            Some(l)
        }
        Backend::Sqlite => None,
    };
    let w = spawn_worker(context(&t.store).with_notifications(), worker_config(4));
    let now = Utc::now().timestamp();
    let mut sub = Sub::new("l1", "pro_monthly");
    sub.meta_user = Some("usr_lapse".into());
    // Cancels at the end of a period that ends in 3 seconds.
    sub.period = (now - 27 * DAY, now + 3);
    let cancels = sub.event("evt_l1_cancels", "created", now - 1, S::Active, true);
    let job = deliver(&t.store, &cancels.body).await.expect("stored");
    assert_eq!(wait_finished(&t.store, job, STEP).await.state, JobState::Succeeded);
    let until = Utc.timestamp_opt(now + 3, 0).single().expect("time");
    let e = entitlements::get(&t.store, "usr_lapse").await.expect("read").expect("row");
    assert_eq!((e.tier.as_str(), e.reason.as_str(), e.access_until), ("pro", "cancels_at_period_end", Some(until)));

    // No event arrives: the lapse job rewrites the row at `access_until`.
    let started = Instant::now();
    let history = loop {
        let h = entitlements::history(&t.store, "usr_lapse").await.expect("history");
        if h.iter().any(|l| l.cause == "lapse") || started.elapsed() > Duration::from_secs(15) {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let late = Utc::now() - until;
    println!("lapse applied {} ms after access_until", late.num_milliseconds());
    let lapse = history.iter().find(|l| l.cause == "lapse").expect("a history line with cause lapse");
    assert_eq!((lapse.from_tier.as_str(), lapse.to_tier.as_str()), ("pro", "free"));
    assert_eq!(lapse.cause_event_id, format!("lapse:{}", until.timestamp_millis()));
    assert!(lapse.at >= until, "applied before access_until: {lapse:?}");
    assert!(late < chrono::Duration::seconds(5), "applied {late} after access_until");
    let stored = entitlements::get(&t.store, "usr_lapse").await.expect("read").expect("row");
    assert_eq!((stored.tier.as_str(), stored.stored_tier.as_str(), stored.lapsed), ("free", "free", false));
    assert_eq!(stored.reason, "period_ended");
    let view = t.text("SELECT tier FROM subsync_effective_entitlements WHERE user_id = 'usr_lapse'").await;
    assert_eq!(view.as_deref(), Some("free"));

    let sent = notifications(&t.store, "usr_lapse").await;
    assert_eq!(sent.len(), 2, "granted, then lapsed: {sent:?}");
    assert_eq!((sent[0].previous.tier.as_str(), sent[0].current.tier.as_str()), ("free", "pro"));
    assert_eq!(sent[0].cause, ChangeCause::Event { event_id: "evt_l1_cancels".into() });
    assert_eq!((sent[1].previous.tier.as_str(), sent[1].current.tier.as_str()), ("pro", "free"));
    assert_eq!(sent[1].cause, ChangeCause::Lapse { access_until: until });
    assert!(sent[1].version > sent[0].version);
    assert_eq!(sent[1].version, stored.version, "the notification carries the API's version");
    w.stop().await;

    if let Some(listener) = listener.as_mut() {
        let mut versions = Vec::new();
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), listener.recv()).await {
            let payload: serde_json::Value = serde_json::from_str(n.payload()).expect("payload");
            // The channel is the database's: tests in other schemas notify on it too.
            if payload["user_id"] != "usr_lapse" {
                continue;
            }
            versions.push(payload["version"].as_i64().expect("version"));
            if versions.len() == 2 {
                break;
            }
        }
        assert_eq!(versions, vec![sent[0].version, sent[1].version], "NOTIFY at each commit");
    }
    t.close().await;
}

async fn each_change_is_notified_once_with_the_entitlement_version(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let w = spawn_worker(context(&t.store).with_notifications(), worker_config(4));
    let now = Utc::now().timestamp();
    let mut sub = Sub::new("n1", "basic_monthly");
    sub.meta_user = Some("usr_notes".into());
    sub.period = (now - DAY, now + 29 * DAY);
    let events = [
        sub.event("evt_n1_active", "created", now - 100, S::Active, false),
        // The same decision again: no notification.
        sub.event("evt_n1_same", "updated", now - 90, S::Active, false),
        sub.event("evt_n1_past_due", "updated", now - 80, S::PastDue, false),
        sub.event("evt_n1_paid", "updated", now - 70, S::Active, false),
    ];
    let mut versions = Vec::new();
    for e in &events {
        let job = deliver(&t.store, &e.body).await.expect("stored");
        assert_eq!(wait_finished(&t.store, job, STEP).await.state, JobState::Succeeded);
        versions.push(entitlements::get(&t.store, "usr_notes").await.expect("read").expect("row").version);
    }
    // A redelivered event changes nothing and notifies nothing.
    let again = subsync_eventlog::SyncJob::replay("evt_n1_past_due", "sub_n1");
    let mut tx = t.store.begin().await.expect("begin");
    let replay = t.store.enqueue(&mut tx, again).await.expect("replay").job_id();
    tx.commit().await.expect("commit");
    assert_eq!(wait_finished(&t.store, replay, STEP).await.state, JobState::Succeeded);
    w.stop().await;

    let sent = notifications(&t.store, "usr_notes").await;
    let summary: Vec<_> =
        sent.iter().map(|n| (n.current.tier.as_str(), n.current.access_until.is_some(), n.version)).collect();
    assert_eq!(
        summary,
        vec![("basic", false, versions[0]), ("basic", true, versions[2]), ("basic", false, versions[3])],
        "granted, grace began (access_until set), paid again; the unchanged event and the replay notify nothing"
    );
    assert!(sent.windows(2).all(|p| p[0].version < p[1].version));
    assert_eq!(t.count("subsync_jobs", "WHERE queue = 'notify'").await, 3, "one delivery job per change");
    t.close().await;
}

async fn without_notifications_nothing_is_queued(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let w = spawn_worker(context(&t.store), worker_config(2));
    let now = Utc::now().timestamp();
    let mut sub = Sub::new("q1", "basic_monthly");
    sub.meta_user = Some("usr_quiet".into());
    sub.period = (now - DAY, now + 29 * DAY);
    let job = deliver(&t.store, &sub.event("evt_q1", "created", now - 5, S::Active, false).body).await.expect("stored");
    assert_eq!(wait_finished(&t.store, job, STEP).await.state, JobState::Succeeded);
    w.stop().await;
    assert_eq!(entitlements::get(&t.store, "usr_quiet").await.expect("read").expect("row").tier, "basic");
    assert_eq!(t.count("subsync_outbox", "").await, 0);
    assert_eq!(t.count("subsync_jobs", "WHERE queue = 'notify'").await, 0);
    t.close().await;
}
