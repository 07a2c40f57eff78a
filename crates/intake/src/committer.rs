//! Group commit: concurrent webhooks share one database transaction, and each request is
//! answered only after that transaction committed. One fsync then acknowledges many events.

use std::sync::Arc;

use subsync_queue::{QueueError, Store};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::metrics::IntakeMetrics;
use crate::persist::{EventRecord, Stored, store_batch};

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
    /// Starts `workers` committer tasks on `store`, each committing up to `max_batch`
    /// records at a time.
    pub fn start(store: Store, workers: usize, max_batch: usize, metrics: IntakeMetrics) -> Self {
        let (tx, rx) = mpsc::channel::<Submission>(max_batch.max(1) * workers.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            let (store, rx, metrics) = (store.clone(), rx.clone(), metrics.clone());
            tokio::spawn(async move { run(store, rx, max_batch.max(1), metrics).await });
        }
        Self { tx }
    }

    /// Stores `record`; returns once it is committed (or failed to be).
    pub async fn submit(&self, record: EventRecord) -> Result<Stored, Arc<QueueError>> {
        let (reply, answer) = oneshot::channel();
        let closed = || Arc::new(QueueError::InvalidInput("intake is shutting down".into()));
        self.tx.send(Submission { record, reply }).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn run(store: Store, rx: Arc<Mutex<mpsc::Receiver<Submission>>>, max_batch: usize, metrics: IntakeMetrics) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(_) => break,
                }
            }
            batch
        };
        metrics.batch_size.observe(batch.len() as f64);
        let records: Vec<&EventRecord> = batch.iter().map(|s| &s.record).collect();
        match store_batch(&store, &records).await {
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
                    let result = store_batch(&store, &[&submission.record]).await.map_err(Arc::new);
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
