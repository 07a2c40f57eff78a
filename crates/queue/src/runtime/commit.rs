//! Group commit: several jobs' transactions as one database commit, each job inside its own
//! savepoint, so every job's effect still commits together with its completion, or neither
//! does. The sync worker and the notification deliverer both commit through a [`Committer`].
//!
//! A job's work (apply its event, complete the job) runs in the batch's transaction between
//! `SAVEPOINT` and `RELEASE`; a job that fails rolls back to its savepoint (its effect and its
//! completion undone together, its commit hooks dropped) and is retried as ever, while the
//! others commit. A crash, or a commit that fails, loses the whole batch's effects *and*
//! completions, so each of its jobs simply runs again. Leases still guard every completion
//! (`complete_in`'s compare-and-set, in the batch's transaction).
//!
//! On SQLite a batch turns N synchronous fsyncs under the one write lock into one; on
//! PostgreSQL, N commits into one. Like the intake's committer, a committer takes whatever
//! is waiting and lingers (at most `linger`) only for as many jobs as its previous batch had,
//! so a lone job never waits and batches grow with the load. `linger` 0 turns it off: each job
//! commits alone, as before.
//!
//! Lock order across batches: a batch holds every job's locks until its commit, so it runs
//! its jobs in ascending *lock key* (the job's group): the queue-group rows its completions
//! lock are then taken in the same order as the intake's batched enqueue takes them (by
//! group), and the two wait for each other instead of deadlocking. Locks beyond those can
//! still meet in opposite orders (for the sync worker: one user with two subscriptions in
//! two batches). PostgreSQL then aborts one statement with a deadlock error; that job alone
//! rolls back to its savepoint (releasing its locks) and is retried with backoff, a clean
//! retry.
//!
//! The committers run as tasks started by [`Committer::start`], which the worker runner holds
//! for as long as it runs: when the runner stops or is aborted, so are they (an abandoned
//! batch rolls back, as a crash would). A committer nobody started commits each job alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::job::JobError;
use crate::schema::Backend;
use crate::store::{Store, Tx};

/// One job's work inside a transaction: everything up to, not including, the commit.
pub type Work = Box<dyn for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<(), JobError>> + Send>;

/// How the worker commits its jobs' transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// Longest a committer waits to gather as many jobs as its previous batch had; zero: every
    /// job commits alone.
    pub linger: Duration,
    /// Most jobs in one commit.
    pub max_batch: usize,
}

impl Default for GroupCommit {
    /// Off: each job commits alone.
    fn default() -> Self {
        Self { linger: Duration::ZERO, max_batch: 32 }
    }
}

impl GroupCommit {
    /// Group commit as `subsync serve`/`worker` run it when asked to: a 2 ms linger, 32 jobs
    /// at most.
    pub const ON: GroupCommit = GroupCommit { linger: Duration::from_millis(2), max_batch: 32 };

    /// What `subsync serve`/`worker` use unless told otherwise: [`GroupCommit::ON`] on SQLite,
    /// where every write is serialized anyway (no deadlock is possible) and each commit is an
    /// fsync under the write lock; off on PostgreSQL, where it measured within noise of one
    /// commit per job (`docs/benchmarks.md`) and every job's locks would be held a linger
    /// longer for nothing.
    pub fn default_for(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::ON,
            Backend::Postgres => Self::default(),
        }
    }
}

struct Request {
    lock_key: String,
    work: Work,
    done: oneshot::Sender<Result<(), JobError>>,
}

/// Commits jobs' work, alone or in batches. Cheap to clone (one per job).
#[derive(Clone)]
pub struct Committer {
    store: Store,
    grouped: Option<Grouped>,
}

#[derive(Clone)]
struct Grouped {
    sender: mpsc::Sender<Request>,
    receiver: Arc<Mutex<mpsc::Receiver<Request>>>,
    config: GroupCommit,
    committers: usize,
    started: Arc<AtomicBool>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").field("grouped", &self.grouped.as_ref().map(|g| g.config)).finish()
    }
}

/// Stops the committer tasks when dropped (see [`Committer::start`]).
#[derive(Debug)]
pub struct CommitterGuard {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    started: Arc<AtomicBool>,
}

impl Drop for CommitterGuard {
    fn drop(&mut self) {
        self.started.store(false, Ordering::SeqCst);
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Committer {
    /// Each job commits alone.
    pub fn alone(store: Store) -> Self {
        Self { store, grouped: None }
    }

    /// Group commit with `config` and up to `committers` batches at once (SQLite: always one,
    /// its writes are serialized anyway). Batches form once [`Committer::start`] runs them.
    pub fn grouped(store: Store, config: GroupCommit, committers: usize) -> Self {
        if config.linger.is_zero() || config.max_batch <= 1 {
            return Self::alone(store);
        }
        let committers = if store.backend() == Backend::Sqlite { 1 } else { committers.max(1) };
        let (sender, receiver) = mpsc::channel::<Request>(config.max_batch * committers * 2);
        let grouped = Grouped {
            sender,
            receiver: Arc::new(Mutex::new(receiver)),
            config,
            committers,
            started: Arc::new(AtomicBool::new(false)),
        };
        Self { store, grouped: Some(grouped) }
    }

    /// Starts the committer tasks (inside a tokio runtime); they stop when the guard drops.
    /// `None` when each job commits alone, or another guard runs them already.
    pub fn start(&self) -> Option<CommitterGuard> {
        let g = self.grouped.as_ref()?;
        if g.started.swap(true, Ordering::SeqCst) {
            return None;
        }
        let tasks = (0..g.committers)
            .map(|_| tokio::spawn(committer(self.store.clone(), Arc::clone(&g.receiver), g.config)))
            .collect();
        Some(CommitterGuard { tasks, started: Arc::clone(&g.started) })
    }

    /// Runs `work` in a transaction and commits it (alone, or with others while the
    /// committers run); its result. `lock_key` orders the jobs of a batch: the job's group,
    /// whose queue row its completion locks.
    pub async fn run(&self, lock_key: &str, work: Work) -> Result<(), JobError> {
        let Some(g) = self.grouped.as_ref().filter(|g| g.started.load(Ordering::SeqCst)) else {
            let mut tx = self.store.begin().await?;
            work(&mut tx).await?;
            tx.commit().await?;
            return Ok(());
        };
        let (done, result) = oneshot::channel();
        g.sender
            .send(Request { lock_key: lock_key.to_owned(), work, done })
            .await
            .map_err(|_| JobError::retry("the committer has stopped".to_owned()))?;
        result.await.map_err(|_| JobError::retry("the committer stopped before committing the job".to_owned()))?
    }
}

async fn committer(store: Store, receiver: Arc<Mutex<mpsc::Receiver<Request>>>, config: GroupCommit) {
    let mut expect = 1;
    loop {
        let batch = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < config.max_batch
                && let Ok(next) = receiver.try_recv()
            {
                batch.push(next);
            }
            let deadline = tokio::time::Instant::now() + config.linger;
            while batch.len() < expect.min(config.max_batch) {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(next)) => batch.push(next),
                    _ => break,
                }
            }
            batch
        };
        expect = batch.len();
        execute(&store, batch).await;
    }
}

/// One transaction for the batch, a savepoint per job in lock-key order, one commit.
async fn execute(store: &Store, mut batch: Vec<Request>) {
    batch.sort_by(|a, b| a.lock_key.cmp(&b.lock_key));
    let mut tx = match store.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            let why = format!("cannot begin the batch's transaction: {e}");
            for request in batch {
                let _ = request.done.send(Err(JobError::retry(why.clone())));
            }
            return;
        }
    };
    let size = batch.len();
    let mut ran = Vec::with_capacity(size);
    let mut broken: Option<String> = None;
    for request in batch {
        if let Some(why) = &broken {
            let _ = request.done.send(Err(JobError::retry(why.clone())));
            continue;
        }
        let point = match tx.savepoint().await {
            Ok(point) => point,
            Err(e) => {
                broken = Some(format!("the batch's transaction failed: {e}"));
                let _ = request.done.send(Err(JobError::retry(format!("the batch's transaction failed: {e}"))));
                continue;
            }
        };
        let result = (request.work)(&mut tx).await;
        let settled = match &result {
            Ok(()) => tx.release(point).await,
            Err(_) => tx.rollback_to(point).await,
        };
        if let Err(e) = settled {
            broken = Some(format!("the batch's transaction failed: {e}"));
        }
        ran.push((request.done, result));
    }
    if let Some(why) = broken {
        drop(tx);
        for (done, result) in ran {
            let _ = done.send(Err(result.err().unwrap_or_else(|| JobError::retry(why.clone()))));
        }
        return;
    }
    match tx.commit().await {
        Ok(()) => {
            tracing::trace!(jobs = size, "batch committed");
            for (done, result) in ran {
                let _ = done.send(result);
            }
        }
        Err(e) => {
            let why = format!("the batch's commit failed: {e}");
            for (done, result) in ran {
                let _ = done.send(Err(result.err().unwrap_or_else(|| JobError::retry(why.clone()))));
            }
        }
    }
}
