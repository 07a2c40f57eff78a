//! Fixtures for the operator command tests: a throwaway database on either backend (a temp
//! SQLite file, or a fresh schema on the test PostgreSQL) and seeding helpers.

use serde_json::json;
use subsync_queue::{JobId, NewJob, Store, StoreOptions};

/// Environment variable naming the PostgreSQL server the tests run against.
pub const PG_ENV: &str = "SUBSYNC_TEST_POSTGRES_URL";
/// The queue the seeded jobs are in.
pub const Q: &str = "stripe";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A throwaway migrated database: a temp SQLite file, or a fresh schema on the test PostgreSQL.
pub struct TestDb {
    pub store: Store,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Schema { admin_url: String, schema: String },
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let (url, cleanup) = match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("subsync-cli-test-{}.db", uuid::Uuid::new_v4()));
                (format!("sqlite:{}", path.display()), Cleanup::File(path))
            }
            Backend::Postgres => {
                let admin_url = std::env::var(PG_ENV).unwrap_or_else(|_| {
                    panic!(
                        "{PG_ENV} is not set: the operator command tests need PostgreSQL (e.g. \
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
                (format!("{admin_url}{sep}options=-c%20search_path%3D{schema}"), Cleanup::Schema { admin_url, schema })
            }
        };
        let store = Store::connect(&url, StoreOptions::default()).await.expect("connect");
        store.migrate().await.expect("migrate");
        Self { store, cleanup }
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

/// A dead job: enqueued, claimed, failed permanently with `error`. Nothing else may be due
/// in queue [`Q`] (claim takes any due job).
pub async fn seed_dead(store: &Store, key: &str, group: &str, error: &str) -> JobId {
    let id = store.enqueue_one(job(key, group)).await.expect("enqueue").job_id();
    let mut claimed = store.claim(Q, "seeder", 1).await.expect("claim");
    assert_eq!(claimed.len(), 1, "seed_dead: expected to claim exactly the new job");
    let claimed = claimed.remove(0);
    assert_eq!(claimed.lease.job_id, id, "seed_dead claimed another job");
    store.fail(&claimed, error, true).await.expect("fail");
    id
}

/// `n` dead jobs in their own groups, claimed and failed in batches (fast on both backends).
/// Nothing else may be due in queue [`Q`].
pub async fn seed_many_dead(store: &Store, n: usize, prefix: &str) {
    for i in 0..n {
        store.enqueue_one(job(&format!("{prefix}_{i}"), &format!("sub_{prefix}_{i}"))).await.expect("enqueue");
    }
    let mut failed = 0;
    while failed < n {
        let claimed = store.claim(Q, "seeder", 100).await.expect("claim");
        assert!(!claimed.is_empty(), "seed_many_dead: ran out of jobs after {failed}");
        for c in &claimed {
            store.fail(c, "upstream returned 500", true).await.expect("fail");
        }
        failed += claimed.len();
    }
}

/// Runs each named test body once per backend, with a time limit.
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
pub(crate) use both_backends;
