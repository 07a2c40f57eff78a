//! Group commit at the worker (several jobs' transactions as one commit, each job in its own
//! savepoint), on both backends: a failing job rolls back alone while its batch commits; two
//! batches meeting on one user (one user, two subscriptions, updated in turns from many
//! workers' slots) end correct with every job done once, a deadlock being a clean retry.

mod support;

use std::time::Duration;

use subsync_domain::{AccessPolicy, SubscriptionStatus as S, TierConfig};
use subsync_queue::{JobState, Store, both_backends};
use subsync_worker::{GroupCommit, SyncContext, entitlements};
use support::{Backend, DAY, Sub, T0, TestDb, at, deliver, fast_config, spawn_worker, wait_for_count, worker_config};

both_backends!(90; a_failing_job_rolls_back_alone, batches_meeting_on_one_user_end_correct);

fn grouped(store: &Store, linger_ms: u64) -> SyncContext {
    let now = at(T0 + 5 * DAY);
    SyncContext::new(store.clone(), TierConfig::default_config(), AccessPolicy::default())
        .with_clock(move || now)
        .with_group_commit(GroupCommit { linger: Duration::from_millis(linger_ms), max_batch: 16 }, 4)
}

async fn a_failing_job_rolls_back_alone(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    // Everything is queued before the worker starts, so its first claims fill batches.
    for n in 0..12 {
        let mut sub = Sub::new(&format!("ok{n}"), "pro_monthly");
        sub.meta_user = Some(format!("usr_ok{n}"));
        deliver(&t.store, &sub.event(&format!("evt_ok{n}"), "created", T0, S::Active, false).body).await;
        if n == 5 {
            // No price of this one maps: its job fails (dead) inside a batch.
            let mut bad = Sub::new("bad", "enterprise_monthly");
            bad.meta_user = Some("usr_bad".into());
            deliver(&t.store, &bad.event("evt_bad", "created", T0, S::Active, false).body).await;
        }
    }
    let w = spawn_worker(grouped(&t.store, 50), worker_config(8));
    wait_for_count(&t.store, &[JobState::Succeeded, JobState::Dead], 13, Duration::from_secs(30)).await;
    w.stop().await;
    assert_eq!(t.count("subsync_jobs", "WHERE state = 'succeeded'").await, 12);
    assert_eq!(t.count("subsync_jobs", "WHERE state = 'dead'").await, 1);
    for n in 0..12 {
        let e = entitlements::get_at(&t.store, &format!("usr_ok{n}"), at(T0 + 5 * DAY)).await.unwrap().unwrap();
        assert_eq!(e.tier, "pro", "usr_ok{n}");
    }
    // Nothing of the failed job's effect survived its savepoint's rollback…
    assert_eq!(t.count("subsync_subscriptions", "WHERE subscription_id = 'sub_bad'").await, 0);
    assert_eq!(t.count("subsync_event_outcomes", "WHERE event_id = 'evt_bad'").await, 0);
    assert!(entitlements::get(&t.store, "usr_bad").await.unwrap().is_none());
    // …and its unmapped price was recorded afterwards, on its own.
    assert_eq!(t.count("subsync_unmapped_prices", "WHERE event_id = 'evt_bad' AND effect = 'dead'").await, 1);
    t.close().await;
}

async fn batches_meeting_on_one_user_end_correct(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let w = spawn_worker(grouped(&t.store, 5), worker_config(16));
    // One user holds two subscriptions whose events keep arriving; around them, other users.
    let mut a = Sub::new("ua", "basic_monthly");
    let mut c = Sub::new("uc", "pro_monthly");
    a.meta_user = Some("usr_both".into());
    c.meta_user = Some("usr_both".into());
    let mut sent: u64 = 0;
    for round in 0..25i64 {
        let status = if round % 2 == 0 { S::Active } else { S::PastDue };
        deliver(&t.store, &a.event(&format!("evt_ua_{round}"), "updated", T0 + round, status.clone(), false).body)
            .await;
        deliver(&t.store, &c.event(&format!("evt_uc_{round}"), "updated", T0 + round, status, false).body).await;
        for n in 0..4 {
            let mut other = Sub::new(&format!("o{round}_{n}"), "basic_monthly");
            other.meta_user = Some(format!("usr_o{n}"));
            deliver(&t.store, &other.event(&format!("evt_o{round}_{n}"), "created", T0 + round, S::Active, false).body)
                .await;
        }
        sent += 6;
    }
    // The last word: both of the user's subscriptions active.
    deliver(&t.store, &a.event("evt_ua_last", "updated", T0 + 100, S::Active, false).body).await;
    deliver(&t.store, &c.event("evt_uc_last", "updated", T0 + 100, S::Active, false).body).await;
    sent += 2;
    wait_for_count(&t.store, &[JobState::Succeeded], sent, Duration::from_secs(60)).await;
    w.stop().await;
    assert_eq!(t.count("subsync_jobs", "WHERE state <> 'succeeded'").await, 0, "every job done, none dead");
    let e = entitlements::get_at(&t.store, "usr_both", at(T0 + 5 * DAY)).await.unwrap().unwrap();
    assert_eq!((e.tier.as_str(), e.subscription_id.as_str(), e.status.as_deref()), ("pro", "sub_uc", Some("active")));
    for n in 0..4 {
        let o = entitlements::get_at(&t.store, &format!("usr_o{n}"), at(T0 + 5 * DAY)).await.unwrap().unwrap();
        assert_eq!(o.tier, "basic");
    }
    t.close().await;
}
