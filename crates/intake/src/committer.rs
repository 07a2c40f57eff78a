//! Group commit: concurrent webhooks share one database transaction, and each request is
//! answered only after that transaction committed. One fsync then acknowledges many events.
//!
//! A committer that just finished a batch would otherwise start the next one with whatever
//! has arrived in the instant its replies went out: under steady load that is a request or
//! two, and the rest wait a whole commit for the one after (batch sizes swing between tiny
//! and large, and every tiny batch pays a full statement and fsync). So a committer expects
//! as many records as its previous batch had and waits up to a short linger for them. The
//! expectation follows the load down: a batch cut short by the linger lowers the next one,
//! and one record alone (light load) waits for nothing.

use std::sync::Arc;
use std::time::Duration;

use subsync_eventlog::{EventRecord, Stored, store_batch};
use subsync_queue::{Backend, QueueError, Store};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::Batching;
use crate::metrics::IntakeMetrics;

struct Submission {
    record: EventRecord,
    reply: oneshot::Sender<Result<Stored, Arc<QueueError>>>,
}

/// Hands records to the committers and waits for their commit.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Submission>,
}

impl Committer {
    /// Starts `batching.committers` committer tasks on `store` (one on SQLite: it has one
    /// writer).
    pub fn start(store: Store, batching: Batching, metrics: IntakeMetrics) -> Self {
        let batching = Batching {
            committers: if store.backend() == Backend::Sqlite { 1 } else { batching.committers.max(1) },
            max_batch: batching.max_batch.max(1),
            linger: batching.linger,
        };
        let (tx, rx) = mpsc::channel::<Submission>(batching.max_batch * batching.committers * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..batching.committers {
            let (store, rx, metrics) = (store.clone(), rx.clone(), metrics.clone());
            tokio::spawn(async move { run(store, rx, batching, metrics).await });
        }
        Self { tx }
    }

    /// Stores `record`; returns once it is committed (or failed to be).
    pub async fn submit(&self, record: EventRecord) -> Result<Stored, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Submission { record, reply }).await.map_err(|_| SubmitError::ShuttingDown)?;
        answer.await.map_err(|_| SubmitError::ShuttingDown)?.map_err(SubmitError::Store)
    }
}

/// Why a submitted record was not stored. Either way nothing was acknowledged, so the
/// sender (Stripe) retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// The committers have stopped: the process is shutting down.
    #[error("intake is shutting down")]
    ShuttingDown,
    /// The database refused or could not take the batch.
    #[error(transparent)]
    Store(Arc<QueueError>),
}

/// The next batch: the first record to arrive, everything queued behind it, and, while the
/// batch is smaller than `expect`, records arriving within `linger`. `None` once the
/// channel is closed and empty.
async fn gather<T>(rx: &mut mpsc::Receiver<T>, max_batch: usize, expect: usize, linger: Duration) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    let deadline = Instant::now() + linger;
    while batch.len() < max_batch {
        match rx.try_recv() {
            Ok(s) => batch.push(s),
            Err(TryRecvError::Empty) if batch.len() < expect => {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(s)) => batch.push(s),
                    Ok(None) | Err(_) => break,
                }
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Attempts at a batch that keeps losing deadlocks or serialization races.
const CONFLICT_ATTEMPTS: usize = 3;

/// Stores `records` in one transaction, running it again at once when PostgreSQL rolled it
/// back for a deadlock or a serialization failure with another writer (the worker's group
/// commit holds queue-group rows until its commit): the database is fine, so the sender
/// should not see a 503 for it.
async fn store_conflicts_retried(store: &Store, records: &[&EventRecord]) -> Result<Vec<Stored>, QueueError> {
    let mut attempt = 1;
    loop {
        match store_batch(store, records).await {
            Err(e) if e.is_conflict() && attempt < CONFLICT_ATTEMPTS => {
                tracing::debug!(error = %e, attempt, size = records.len(), "batch lost a lock race; storing it again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn run(store: Store, rx: Arc<Mutex<mpsc::Receiver<Submission>>>, batching: Batching, metrics: IntakeMetrics) {
    let mut expect = 1;
    loop {
        // The lock is held while gathering, so concurrent committers take turns filling
        // batches instead of splitting each arrival between them.
        let Some(batch) = gather(&mut *rx.lock().await, batching.max_batch, expect, batching.linger).await else {
            return;
        };
        expect = batch.len();
        metrics.batch_size.observe(batch.len() as f64);
        let records: Vec<&EventRecord> = batch.iter().map(|s| &s.record).collect();
        match store_conflicts_retried(&store, &records).await {
            Ok(results) => {
                for (submission, result) in batch.into_iter().zip(results) {
                    let _ = submission.reply.send(Ok(result));
                }
            }
            Err(e) if batch.len() == 1 => {
                let e = Arc::new(e);
                for submission in batch {
                    let _ = submission.reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                // One record may be at fault: store each alone so it fails only itself. A
                // connection failure ends the pass (see below).
                tracing::warn!(error = %e, size = batch.len(), "batch commit failed; storing one by one");
                let mut down: Option<Arc<QueueError>> = None;
                for submission in batch {
                    if let Some(e) = &down {
                        let _ = submission.reply.send(Err(e.clone()));
                        continue;
                    }
                    let result = store_conflicts_retried(&store, &[&submission.record]).await.map_err(Arc::new);
                    if let Err(e) = &result
                        && e.is_transient()
                    {
                        // The database itself is away: fail the rest now rather than
                        // making each wait out the connection timeout in turn.
                        down = Some(e.clone());
                    }
                    let _ = submission.reply.send(result.map(|mut r| r.remove(0)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(values: &[u32]) -> (mpsc::Sender<u32>, mpsc::Receiver<u32>) {
        let (tx, rx) = mpsc::channel(64);
        for v in values {
            tx.try_send(*v).expect("room in the channel");
        }
        (tx, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn takes_what_is_queued_without_waiting_when_nothing_more_is_expected() {
        let (_tx, mut rx) = queued(&[1, 2, 3]);
        let started = Instant::now();
        let batch = gather(&mut rx, 64, 1, Duration::from_millis(5)).await;
        assert_eq!(batch, Some(vec![1, 2, 3]));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_up_to_the_linger_for_the_expected_count_then_commits_what_it_has() {
        let (_tx, mut rx) = queued(&[1, 2]);
        let started = Instant::now();
        let batch = gather(&mut rx, 64, 4, Duration::from_millis(5)).await;
        assert_eq!(batch, Some(vec![1, 2]));
        assert_eq!(started.elapsed(), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn stops_waiting_as_soon_as_the_expected_records_arrived() {
        let (tx, mut rx) = queued(&[1]);
        tokio::spawn(async move {
            for v in [2, 3] {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let _ = tx.send(v).await;
            }
        });
        let started = Instant::now();
        let batch = gather(&mut rx, 64, 3, Duration::from_millis(50)).await;
        assert_eq!(batch, Some(vec![1, 2, 3]));
        assert_eq!(started.elapsed(), Duration::from_millis(2));
    }

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_the_largest_batch() {
        let (_tx, mut rx) = queued(&[1, 2, 3, 4, 5]);
        assert_eq!(gather(&mut rx, 3, 10, Duration::from_millis(5)).await, Some(vec![1, 2, 3]));
        assert_eq!(gather(&mut rx, 3, 1, Duration::from_millis(5)).await, Some(vec![4, 5]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_channel_ends_the_wait_and_then_the_committer() {
        let (tx, mut rx) = queued(&[1]);
        drop(tx);
        let started = Instant::now();
        assert_eq!(gather(&mut rx, 64, 8, Duration::from_millis(5)).await, Some(vec![1]));
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(gather(&mut rx, 64, 8, Duration::from_millis(5)).await, None);
    }
}
