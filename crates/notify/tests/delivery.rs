//! Delivery against a receiver that verifies with the official Standard Webhooks library
//! (tests/standard-webhooks/receiver.py), on both backends: order per user under random
//! failures, redirects and an outage; timeouts; giving up; and the library refusing what it
//! must refuse.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use subsync_notify::testing::{Behaviour, Receiver, SECRET, official_verdicts};
use subsync_notify::{Deliverer, NotifyConfig, WebhookSecret};
use subsync_outbox::{ChangeCause, EntitlementState, NewChange};
use subsync_queue::testing::{TestDb, fast_config};
use subsync_queue::{Backend, Store, both_backends};

fn state(tier: &str, n: i64) -> EntitlementState {
    EntitlementState {
        tier: tier.to_owned(),
        features: serde_json::json!({ "itsa.quarterly": tier != "free", "sources.max": n }),
        status: Some("active".into()),
        reason: "active".into(),
        access_until: None,
        period_end: None,
    }
}

async fn append(store: &Store, user: &str, version: i64) {
    let mut tx = store.begin().await.expect("begin");
    let change = NewChange {
        user_id: user.to_owned(),
        version,
        previous: state("free", version - 1),
        current: state("pro", version),
        cause: ChangeCause::Event { event_id: format!("evt_{user}_{version}") },
        at: Utc::now(),
    };
    subsync_outbox::append(store, &mut tx, change).await.expect("append");
    tx.commit().await.expect("commit");
}

fn config(url: &str, timeout: Duration) -> NotifyConfig {
    let mut config = NotifyConfig::new(url, SECRET).expect("config");
    config.timeout = timeout;
    config
}

/// Starts a deliverer; returns the signal that stops it and its task.
fn start(store: &Store, config: NotifyConfig) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let deliverer = Arc::new(Deliverer::new(store.clone(), config).expect("deliverer"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        subsync_notify::run(deliverer, "test", Duration::from_secs(2), None, shutdown).await.expect("deliverer ran");
    });
    (stop, task)
}

async fn ordered_delivery_under_failures(backend: Backend) {
    const USERS: usize = 24;
    const VERSIONS: i64 = 4;
    let db = TestDb::with_config(backend, fast_config()).await;
    let behaviour = Behaviour {
        fail_rate: 0.3,
        redirect_rate: 0.05,
        down_from: 25,
        down_for: Duration::from_millis(1500),
        seed: 11,
        ..Behaviour::default()
    };
    let receiver = Receiver::start(SECRET, &behaviour);
    let (stop, task) = start(&db.store, config(&receiver.url, Duration::from_secs(5)));

    // Changes keep arriving while earlier ones are failing and being retried.
    for version in 1..=VERSIONS {
        for u in 0..USERS {
            append(&db.store, &format!("user_{u:02}"), version).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let all = USERS * VERSIONS as usize;
    let delivered = receiver.wait_for(Duration::from_secs(90), |r| {
        r.iter().filter(|x| x.accepted()).map(|x| (x.user_id.clone(), x.version)).collect::<BTreeSet<_>>().len() == all
    });
    let received = receiver.received();
    assert!(
        delivered,
        "not every change was delivered: {} accepted of {all}",
        received.iter().filter(|x| x.accepted()).count()
    );
    let _ = stop.send(());
    task.await.expect("deliverer stopped");

    assert!(
        received.iter().all(|r| r.verified),
        "the official library refused a notification: {:?}",
        received.iter().find(|r| !r.verified)
    );
    assert!(received.iter().any(|r| !r.accepted()), "the receiver never failed: the test proves nothing");
    // No delivery overtakes an earlier undelivered change of its user.
    let mut accepted: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut ids: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for r in received.iter().filter(|r| r.status != "stalling") {
        let (user, version) = (r.user_id.clone().expect("user"), r.version.expect("version"));
        let earlier: BTreeSet<i64> = (1..version).collect();
        let got = accepted.entry(user.clone()).or_default();
        assert!(
            earlier.is_subset(got),
            "{user} v{version} was sent before v{:?} was delivered",
            earlier.difference(got).collect::<Vec<_>>()
        );
        if r.accepted() {
            got.insert(version);
        }
        // A retry carries the same webhook-id; a change has one id.
        let id = r.id.clone().expect("webhook-id");
        let seen = ids.entry(id.clone()).or_insert((user.clone(), version));
        assert_eq!(seen, &(user, version), "webhook-id {id} named two changes");
    }
    assert_eq!(ids.len(), all, "each change has exactly one webhook-id");
    let stats = subsync_outbox::stats(&db.store).await.expect("stats");
    assert_eq!((stats.undelivered, stats.delivered), (0, all as i64));
    db.close().await;
}

async fn a_timeout_is_retried_under_the_same_id(backend: Backend) {
    let db = TestDb::with_config(backend, fast_config()).await;
    let behaviour = Behaviour { stall_first: Duration::from_secs(3), ..Behaviour::default() };
    let receiver = Receiver::start(SECRET, &behaviour);
    let (stop, task) = start(&db.store, config(&receiver.url, Duration::from_millis(500)));
    append(&db.store, "u1", 1).await;
    let delivered = async {
        while subsync_outbox::stats(&db.store).await.expect("stats").delivered < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), delivered).await.expect("never delivered");
    let _ = stop.send(());
    task.await.expect("stopped");
    let received = receiver.received();
    let ids: BTreeSet<_> = received.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 1, "one change, one id: {received:?}");
    assert!(received.iter().any(|r| r.status == "stalling"), "the first attempt stalled: {received:?}");
    assert!(received.iter().any(|r| r.accepted() && !r.stalled), "a retry was accepted: {received:?}");
    let row = subsync_outbox::list(&db.store, &subsync_outbox::ListFilter { limit: 10, ..Default::default() })
        .await
        .expect("list");
    assert!(row[0].delivered_at.is_some());
    assert!(row[0].attempts >= 2, "{row:?}");
    db.close().await;
}

async fn an_old_undeliverable_change_goes_dead(backend: Backend) {
    let db = TestDb::with_config(backend, fast_config()).await;
    let receiver = Receiver::start(SECRET, &Behaviour { fail_rate: 1.0, ..Behaviour::default() });
    let mut cfg = config(&receiver.url, Duration::from_secs(2));
    cfg.give_up_after = Duration::ZERO;
    let (stop, task) = start(&db.store, cfg);
    append(&db.store, "u1", 1).await;
    let dead = async {
        loop {
            if db.count("subsync_jobs", "WHERE queue = 'notify' AND state = 'dead'").await == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), dead).await.expect("the job never went dead");
    let _ = stop.send(());
    task.await.expect("stopped");
    let stats = subsync_outbox::stats(&db.store).await.expect("stats");
    assert_eq!((stats.undelivered, stats.failing), (1, 1), "kept for an operator to retry");
    db.close().await;
}

both_backends!(
    ordered_delivery_under_failures,
    a_timeout_is_retried_under_the_same_id,
    an_old_undeliverable_change_goes_dead
);

#[test]
fn the_official_library_accepts_our_signatures_and_refuses_tampering() {
    let secret = WebhookSecret::parse(SECRET).expect("secret");
    let body = r#"{"type":"entitlement.updated","user_id":"u1","version":3}"#;
    let now = Utc::now().timestamp();
    let id = "chg_0193a0f0e1d27c3b8e4f5a6b7c8d9e0f".to_owned();
    let signed = secret.sign(&id, now, body.as_bytes());
    let other = WebhookSecret::parse("whsec_b3RoZXItc2VjcmV0LTAxMjM0NTY3ODk=").expect("other secret");
    let messages = vec![
        (id.clone(), now, signed.clone(), body.to_owned()),
        (id.clone(), now, signed.clone(), body.replace("\"version\":3", "\"version\":4")),
        (id.clone(), now - 600, secret.sign(&id, now - 600, body.as_bytes()), body.to_owned()),
        (id.clone(), now + 600, secret.sign(&id, now + 600, body.as_bytes()), body.to_owned()),
        (id.clone(), now, other.sign(&id, now, body.as_bytes()), body.to_owned()),
        ("chg_other".to_owned(), now, signed, body.to_owned()),
    ];
    let verdicts = official_verdicts(SECRET, &messages);
    assert_eq!(verdicts.len(), messages.len());
    assert_eq!(verdicts[0], "ok");
    for (i, what) in
        [(1, "tampered body"), (2, "stale timestamp"), (3, "future timestamp"), (4, "wrong secret"), (5, "other id")]
    {
        assert!(verdicts[i].starts_with("refused"), "{what} was accepted: {}", verdicts[i]);
    }
}
