//! What a caller configures for a worker ([`WorkerOptions`]) and hears back from it
//! ([`JobObserver`], [`JobOutcome`]), and the handle that aborts its handlers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How a job run ended, as reported to a [`JobObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Completed (by the handler's transaction or by the layer).
    Succeeded,
    /// Failed; back to pending with backoff.
    Retrying,
    /// Failed for good.
    Dead,
    /// The lease was lost to another worker or an operator.
    LeaseLost,
    /// Given back at the shutdown deadline, attempt not counted.
    Released,
}

impl JobOutcome {
    /// Lowercase label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Retrying => "retrying",
            JobOutcome::Dead => "dead",
            JobOutcome::LeaseLost => "lease_lost",
            JobOutcome::Released => "released",
        }
    }
}

/// Hears about every job a worker runs, so the binary can count them without the queue
/// knowing about any metrics system.
pub trait JobObserver: Send + Sync + 'static {
    /// A job was handed to its handler.
    fn started(&self, _queue: &str) {}
    /// A job run ended with `outcome` after `elapsed`.
    fn finished(&self, _queue: &str, _outcome: JobOutcome, _elapsed: Duration) {}
}

/// How a worker process consumes one queue.
#[derive(Clone)]
pub struct WorkerOptions {
    /// The queue to consume.
    pub queue: String,
    /// Jobs run at once by this worker. Must match the apalis `concurrency` layer if one is
    /// used; the backend never claims more than this many.
    pub concurrency: usize,
    /// Upper bound of jobs claimed in one round trip.
    pub batch: u32,
    /// Poll interval when no wake-up arrives (the fallback for cross-process SQLite, or a
    /// missed notification).
    pub poll_interval: Duration,
    /// How often this worker looks for jobs whose lease expired.
    pub rescue_interval: Duration,
    /// Identifies this worker in leases (shown to operators as the lease holder).
    pub worker_id: String,
    /// Told about every job run (metrics).
    pub observer: Option<Arc<dyn JobObserver>>,
}

impl std::fmt::Debug for WorkerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerOptions")
            .field("queue", &self.queue)
            .field("concurrency", &self.concurrency)
            .field("batch", &self.batch)
            .field("poll_interval", &self.poll_interval)
            .field("rescue_interval", &self.rescue_interval)
            .field("worker_id", &self.worker_id)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl WorkerOptions {
    /// Defaults for `queue`: 16 at once, 1 s polling fallback, a unique worker id.
    pub fn new(queue: impl Into<String>) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        Self {
            queue: queue.into(),
            concurrency: 16,
            batch: 16,
            poll_interval: Duration::from_secs(1),
            rescue_interval: Duration::from_secs(5),
            worker_id: format!("{host}:{}:{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]),
            observer: None,
        }
    }
}

/// Tells in-flight handlers to stop and give their jobs back (shutdown deadline passed).
#[derive(Debug, Clone)]
pub struct AbortHandle {
    pub(super) tx: watch::Sender<bool>,
    pub(super) inflight: Arc<super::InFlight>,
}

impl AbortHandle {
    /// Stops in-flight handlers; their jobs go back to pending at once, attempt not counted.
    pub fn abort(&self) {
        self.tx.send_replace(true);
    }

    /// Waits, at most `within`, until every job handed to a handler has had its outcome
    /// recorded (completed, retried, released), and every job claimed but never started has
    /// been given back: the apalis worker can stop before the lease layer has written the
    /// last of them, and a claim can land after the worker stopped taking jobs. `false` when
    /// some were still being recorded.
    pub async fn settled(&self, within: Duration) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let deadline = tokio::time::Instant::now() + within;
        while self.inflight.running.load(SeqCst) > 0 || self.inflight.giving_back.load(SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}
