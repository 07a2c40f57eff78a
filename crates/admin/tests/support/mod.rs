//! Shared fixtures: seeding helpers and an in-process client for the admin router. The
//! throwaway database per test and `both_backends!` come from `subsync_queue::testing`
//! (feature `testing`).
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::json;
use subsync_admin::{AdminState, AdminToken};
use subsync_queue::{JobId, NewJob, Store};
use tower::ServiceExt;

pub use subsync_queue::Backend;
pub use subsync_queue::testing::TestDb;

pub const TOKEN: &str = "test-admin-token-0123456789";
pub const Q: &str = "stripe";

fn job(key: &str, group: &str) -> NewJob {
    NewJob::new(Q, json!({ "event": key, "subscription": group, "type": "customer.subscription.updated" }))
        .with_unique_key(key)
        .with_group(group)
}

/// A pending job.
pub async fn seed_pending(store: &Store, key: &str, group: &str) -> JobId {
    store.enqueue_one(job(key, group)).await.expect("enqueue").job_id()
}

/// A dead job: enqueued, claimed, failed permanently with `error`.
pub async fn seed_dead(store: &Store, key: &str, group: &str, error: &str) -> JobId {
    seed_dead_job(store, job(key, group), error).await
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
        let mut new = job(&format!("{prefix}_{i}"), &format!("sub_{prefix}_{i}"));
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

pub fn state(store: &Store) -> AdminState {
    AdminState::new(store.clone(), AdminToken::new(TOKEN).expect("token"), Arc::new(subsync_metrics::Registry::new()))
}

pub fn app(store: &Store) -> Router {
    subsync_admin::router(state(store))
}

/// One answered request.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request through the router (no network).
pub async fn send(app: &Router, method: Method, uri: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(body.to_string())).expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 16 * 1024 * 1024).await.expect("body");
    Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

pub async fn get(app: &Router, uri: &str) -> Reply {
    let auth = bearer();
    send(app, Method::GET, uri, &[("authorization", auth.as_str())], "").await
}

pub async fn post_json(app: &Router, uri: &str, body: &str) -> Reply {
    let auth = bearer();
    send(app, Method::POST, uri, &[("authorization", auth.as_str()), ("content-type", "application/json")], body).await
}
