//! Why a reconcile or backfill run failed. A failed run stores what it read so far (storing
//! is idempotent) but never moves the high-water mark, so the next run repeats the window.

use subsync_queue::QueueError;
use subsync_stripe_api::ApiError;
use thiserror::Error;

/// A failed run.
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// Stripe's API refused or could not be reached (after the client's retries).
    #[error("Stripe API: {0}")]
    Api(#[from] ApiError),
    /// The database refused or could not be reached.
    #[error("database: {0}")]
    Store(#[from] QueueError),
    /// The requested window makes no sense (e.g. `--since` in the future).
    #[error("{0}")]
    InvalidWindow(String),
}
