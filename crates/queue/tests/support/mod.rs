//! Shared test fixtures: apalis workers and waits. The database per test comes from
//! `subsync_queue::testing` (feature `testing`), shared with every crate's tests.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::worker::builder::WorkerBuilder;
use subsync_queue::{Job, JobError, JobFilter, JobState, QueueBackend, Store, WorkerOptions};
use tokio::sync::oneshot;

pub use subsync_queue::testing::{TestDb, fast_config};

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
