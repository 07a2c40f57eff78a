//! Shared test fixtures: a fresh database per test on either backend, and apalis workers.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::worker::builder::WorkerBuilder;
use subsync_queue::{
    Job, JobError, JobFilter, JobState, QueueBackend, QueueConfig, Store, StoreOptions, WorkerOptions,
};
use tokio::sync::oneshot;

/// Environment variable naming the PostgreSQL server the suite runs against.
pub const PG_ENV: &str = "SUBSYNC_TEST_POSTGRES_URL";

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

pub fn fast_config() -> QueueConfig {
    let mut cfg = QueueConfig::default();
    cfg.retry.base = Duration::from_millis(20);
    cfg.retry.cap = Duration::from_millis(200);
    cfg
}

impl TestDb {
    pub async fn sqlite(config: QueueConfig) -> Self {
        let path = std::env::temp_dir().join(format!("subsync-test-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite:{}", path.display());
        let store = connect(&url, config).await;
        store.migrate().await.expect("migrate sqlite");
        Self { url, store, cleanup: Cleanup::File(path) }
    }

    pub async fn postgres(config: QueueConfig) -> Self {
        let admin_url = std::env::var(PG_ENV).unwrap_or_else(|_| {
            panic!(
                "{PG_ENV} is not set: the conformance suite needs PostgreSQL (e.g. \
                 postgres://postgres@127.0.0.1:5432/test). Run `bash .ci/run`, which sets it."
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
        let store = connect(&url, config).await;
        store.migrate().await.expect("migrate postgres");
        Self { url, store, cleanup: Cleanup::Schema { admin_url, schema } }
    }

    /// Another handle on the same database, with its own pool: a second process, in effect.
    pub async fn another_process(&self, config: QueueConfig) -> Store {
        connect(&self.url, config).await
    }

    pub async fn close(self) {
        if let Cleanup::Schema { admin_url, schema } = &self.cleanup
            && let Ok(admin) = sqlx::PgPool::connect(admin_url).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await;
        }
        if let Cleanup::File(path) = &self.cleanup {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

pub async fn connect(url: &str, config: QueueConfig) -> Store {
    Store::connect(url, StoreOptions { config, ..StoreOptions::default() }).await.expect("connect")
}

/// A running apalis worker over our backend; stop it with [`RunningWorker::stop`].
pub struct RunningWorker {
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), &mut self.handle).await;
    }

    /// Kills the worker without any clean-up: its leases are left to expire.
    pub fn kill(self) {
        self.handle.abort();
    }
}

pub fn worker_options(queue: &str, concurrency: usize) -> WorkerOptions {
    let mut opts = WorkerOptions::new(queue);
    opts.concurrency = concurrency;
    opts.batch = concurrency as u32;
    opts.poll_interval = Duration::from_millis(100);
    opts.rescue_interval = Duration::from_millis(100);
    opts
}

pub fn spawn_worker<H, Fut>(store: Store, opts: WorkerOptions, handler: H) -> RunningWorker
where
    H: Fn(Job) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    let backend = QueueBackend::new(store, opts.clone());
    let worker =
        WorkerBuilder::new(opts.worker_id.as_str()).backend(backend).concurrency(opts.concurrency).build(handler);
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let stop = async move {
            let _ = rx.await;
            Ok::<(), std::io::Error>(())
        };
        if let Err(e) = worker.run_until(stop).await {
            panic!("worker failed: {e}");
        }
    });
    RunningWorker { stop: Some(tx), handle }
}

/// Waits until `n` jobs of the store are in one of `states`, or panics after `limit`.
pub async fn wait_for_count(store: &Store, states: &[JobState], n: u64, limit: Duration) {
    let filter = JobFilter { states: states.to_vec(), ..JobFilter::default() };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let count = store.count(&filter).await.expect("count");
        if count >= n {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let counts = store.counts().await.expect("counts");
            panic!("timed out waiting for {n} jobs in {states:?}; have {count}; all: {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
