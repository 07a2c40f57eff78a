//! Shared fixtures: a throwaway database on either backend (adapted from the queue's own
//! test support: a temp SQLite file, or a fresh schema on the test PostgreSQL), seeding
//! helpers, and an in-process client for the admin router.
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::json;
use subsync_admin::{AdminState, AdminToken};
use subsync_queue::{JobId, NewJob, Store, StoreOptions};
use tower::ServiceExt;

/// Environment variable naming the PostgreSQL server the suite runs against.
pub const PG_ENV: &str = "SUBSYNC_TEST_POSTGRES_URL";
pub const TOKEN: &str = "test-admin-token-0123456789";
pub const Q: &str = "stripe";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A throwaway database: a temp SQLite file, or a fresh schema on the test PostgreSQL.
pub struct TestDb {
    pub url: String,
    pub store: Store,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Schema { admin_url: String, schema: String },
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("subsync-admin-test-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite:{}", path.display());
        let store = Store::connect(&url, StoreOptions::default()).await.expect("connect sqlite");
        store.migrate().await.expect("migrate sqlite");
        Self { url, store, cleanup: Cleanup::File(path) }
    }

    pub async fn postgres() -> Self {
        let admin_url = std::env::var(PG_ENV).unwrap_or_else(|_| {
            panic!(
                "{PG_ENV} is not set: the admin suite needs PostgreSQL (e.g. \
                 postgres://postgres@127.0.0.1:5432/test). Run `bash scripts/test.sh`, which sets it."
            )
        });
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {PG_ENV}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create schema");
        admin.close().await;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
        let store = Store::connect(&url, StoreOptions::default()).await.expect("connect postgres");
        store.migrate().await.expect("migrate postgres");
        Self { url, store, cleanup: Cleanup::Schema { admin_url, schema } }
    }

    pub async fn close(self) {
        match &self.cleanup {
            Cleanup::Schema { admin_url, schema } => {
                if let Ok(admin) = sqlx::PgPool::connect(admin_url).await {
                    let _ =
                        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await;
                }
            }
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
    }
}

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

/// Runs a test body on a backend with a time limit.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let run = super::$name(super::support::Backend::Sqlite);
                    tokio::time::timeout(std::time::Duration::from_secs(120), run).await.expect("test timed out");
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let run = super::$name(super::support::Backend::Postgres);
                    tokio::time::timeout(std::time::Duration::from_secs(120), run).await.expect("test timed out");
                }
            )*
        }
    };
}
