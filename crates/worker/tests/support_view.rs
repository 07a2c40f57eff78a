//! The per-user support view on both backends: found by user, customer or subscription id;
//! features readable; subscriptions, history with causes, and every event's fate — applied,
//! stale, ignored, or a dead job waiting for an operator.

mod support;

use std::time::Duration;

use subsync_domain::SubscriptionStatus as S;
use subsync_queue::{JobState, both_backends};
use subsync_worker::support as view;
use support::{Backend, DAY, Sub, T0, TestDb, at, default_worker, deliver, fast_config, wait_finished};

const STEP: Duration = Duration::from_secs(20);

both_backends!(90; one_users_whole_story_by_any_id);

async fn one_users_whole_story_by_any_id(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let now = at(T0 + 2 * DAY);
    let mut sub = Sub::new("s1", "pro_monthly");
    sub.meta_user = Some("usr_sally".into());
    let mut unmapped = Sub::new("s1", "enterprise_monthly");
    unmapped.meta_user = Some("usr_sally".into());
    let events = [
        sub.event("evt_s1_created", "created", T0, S::Active, false),
        sub.event("evt_s1_old", "updated", T0 - 50, S::PastDue, false),
        sub.invoice("evt_s1_paid", T0 + 1, "in_s1", true),
        unmapped.event("evt_s1_upgrade", "updated", T0 + 5, S::Active, false),
    ];
    let w = default_worker(&t.store, now);
    for e in &events {
        let job = deliver(&t.store, &e.body).await.expect("a job");
        wait_finished(&t.store, job, STEP).await;
    }
    w.stop().await;

    let by_user = view::support(&t.store, "usr_sally", now).await.unwrap().expect("found");
    assert_eq!((by_user.user_id.as_str(), by_user.found_by), ("usr_sally", "user_id"));
    assert_eq!(by_user.entitlement.as_ref().map(|e| e.tier.as_str()), Some("pro"));
    let quarterly = by_user.features.iter().find(|f| f.feature == "itsa.quarterly").expect("a dotted feature");
    assert!(quarterly.allowed && quarterly.value == "yes", "{quarterly:?}");
    assert_eq!(by_user.subscriptions.len(), 1);
    let s = &by_user.subscriptions[0];
    assert_eq!((s.subscription_id.as_str(), s.status.as_deref()), ("sub_s1", Some("active")));
    assert_eq!(s.prices, vec!["pro_monthly".to_owned()]);
    assert_eq!(by_user.history.len(), 1);
    assert_eq!(by_user.history[0].cause_event_id, "evt_s1_created");
    let fate = |id: &str| by_user.events.iter().find(|e| e.event_id == id).map(|e| e.outcome.clone());
    assert_eq!(fate("evt_s1_created").as_deref(), Some("applied"));
    assert_eq!(fate("evt_s1_old").as_deref(), Some("stale"));
    assert_eq!(fate("evt_s1_paid").as_deref(), Some("applied"));
    assert_eq!(fate("evt_s1_upgrade").as_deref(), Some("dead job"), "{:?}", by_user.events);
    let dead = by_user.events.iter().find(|e| e.event_id == "evt_s1_upgrade").unwrap();
    assert!(dead.reason.as_deref().unwrap_or("").contains("enterprise_monthly"), "{dead:?}");
    assert_eq!(dead.event_type.as_deref(), Some("customer.subscription.updated"));
    let dead_job = t.store.find_by_key(subsync_eventlog::SYNC_QUEUE, "evt_s1_upgrade").await.unwrap();
    assert_eq!(dead_job.map(|j| j.state), Some(JobState::Dead));

    let by_customer = view::support(&t.store, "cus_s1", now).await.unwrap().expect("by customer");
    assert_eq!((by_customer.user_id.as_str(), by_customer.found_by), ("usr_sally", "customer_id"));
    let by_sub = view::support(&t.store, "sub_s1", now).await.unwrap().expect("by subscription");
    assert_eq!((by_sub.user_id.as_str(), by_sub.found_by), ("usr_sally", "subscription_id"));
    assert!(view::support(&t.store, "usr_nobody", now).await.unwrap().is_none());
    t.close().await;
}
