//! Jobs seeded in a given state (pending, dead, many dead), for operator-facing tests (the
//! admin API and dashboard, the operator commands) that need a queue with something in it.

use serde_json::json;

use crate::{JobId, NewJob, Store};

/// The queue seeded jobs go to by default (the sync queue's name).
pub const Q: &str = "stripe";

/// A job of queue [`Q`] keyed `key` in group `group`, with a subscription-update payload.
pub fn sample_job(key: &str, group: &str) -> NewJob {
    NewJob::new(Q, json!({ "event": key, "subscription": group, "type": "customer.subscription.updated" }))
        .with_unique_key(key)
        .with_group(group)
}

/// A pending job.
pub async fn seed_pending(store: &Store, key: &str, group: &str) -> JobId {
    store.enqueue_one(sample_job(key, group)).await.expect("enqueue").job_id()
}

/// A dead job: enqueued, claimed, failed permanently with `error`.
pub async fn seed_dead(store: &Store, key: &str, group: &str, error: &str) -> JobId {
    seed_dead_job(store, sample_job(key, group), error).await
}

/// `new` made dead. Nothing else may be due in its queue (claim takes any due job).
pub async fn seed_dead_job(store: &Store, new: NewJob, error: &str) -> JobId {
    let queue = new.queue.clone();
    let id = store.enqueue_one(new).await.expect("enqueue").job_id();
    let mut claimed = store.claim(&queue, "seeder", 1).await.expect("claim");
    assert_eq!(claimed.len(), 1, "seed_dead_job: expected to claim exactly the new job");
    let claimed = claimed.remove(0);
    assert_eq!(claimed.lease.job_id, id, "seed_dead_job claimed another job");
    store.fail(&claimed, error, true).await.expect("fail");
    id
}

/// `n` dead jobs in their own groups, claimed and failed in batches (fast on both backends).
/// Nothing else may be due in queue [`Q`].
pub async fn seed_many_dead(store: &Store, n: usize, prefix: &str) {
    seed_many_dead_in(store, Q, n, prefix).await
}

/// [`seed_many_dead`] in another queue.
pub async fn seed_many_dead_in(store: &Store, queue: &str, n: usize, prefix: &str) {
    for i in 0..n {
        let mut new = sample_job(&format!("{prefix}_{i}"), &format!("sub_{prefix}_{i}"));
        new.queue = queue.to_string();
        store.enqueue_one(new).await.expect("enqueue");
    }
    let mut failed = 0;
    while failed < n {
        let claimed = store.claim(queue, "seeder", 100).await.expect("claim");
        assert!(!claimed.is_empty(), "seed_many_dead: ran out of jobs after {failed}");
        for c in &claimed {
            store.fail(c, "upstream returned 500", true).await.expect("fail");
        }
        failed += claimed.len();
    }
}
