//! The queue as an apalis backend: apalis runs the worker (concurrency, tower layers,
//! tracing, graceful shutdown); we decide what to claim and own each job's lease.
//!
//! - [`QueueBackend`] claims due jobs, never more than there are free slots, so a claimed job
//!   starts at once and never holds its group while waiting in a buffer.
//! - [`LeaseLayer`] wraps every job: it renews the lease while the handler runs, aborts the
//!   handler if the lease is lost, and then records the outcome with a compare-and-set.
//!
//! `options.rs` holds what a caller configures, `backend.rs` the claim loop, `lease.rs` the
//! layer around each job, `run.rs` a handler run as a worker with graceful shutdown.

mod backend;
mod commit;
mod lease;
mod options;
mod run;

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

pub use backend::QueueBackend;
pub use commit::{Committer, CommitterGuard, GroupCommit, Work};
pub use lease::{LeaseLayer, LeaseService};
pub use options::{AbortHandle, JobObserver, JobOutcome, WorkerOptions};
pub use run::{RunConfig, run_jobs};

/// Counts jobs handed to the service and not finished yet; wakes the claimer when one ends.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    pub(crate) running: AtomicUsize,
    pub(crate) freed: Notify,
    /// Claims being made and jobs being given back in the background: a claim that lands
    /// during shutdown gives its jobs back itself, and shutdown waits for that too.
    pub(crate) giving_back: AtomicUsize,
}

impl InFlight {
    pub(crate) fn finish(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.freed.notify_one();
    }
}
