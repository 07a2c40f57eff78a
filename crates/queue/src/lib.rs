//! # subsync-queue
//!
//! A durable job queue for webhook processing, on SQLite (embedded) or PostgreSQL (shared by
//! many processes), run by the apalis worker runtime.
//!
//! What it promises, and where that is enforced:
//! - **One job per unique key** (the Stripe `event.id`), however often and however late the
//!   key is enqueued within the retention window: a unique constraint plus `ON CONFLICT DO
//!   NOTHING`, never check-then-insert ([`Store::enqueue`]).
//! - **Never two running jobs of one group** (the subscription id), on any number of
//!   processes; oldest due job of a group first; other groups in parallel. A group row is
//!   claimed with `FOR UPDATE SKIP LOCKED`, and a partial unique index on running jobs makes
//!   the database itself refuse a second one ([`Store::claim`]).
//! - **Leases**: a claimed job is held for [`QueueConfig::lease`], renewed by a heartbeat;
//!   a dead worker's jobs are rescued after it runs out. Every state change is a
//!   compare-and-set on the lease token ([`runtime::LeaseLayer`]).
//! - **Retries** with exponential backoff and jitter stored in the job, an attempt budget,
//!   and permanent errors that go straight to `dead` ([`JobError`]).
//! - **Exactly-once effect**: a handler completes its job in its own transaction
//!   ([`Job::complete_in`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use subsync_queue::{NewJob, Store, StoreOptions};
//! let store = Store::connect("sqlite:subsync.db", StoreOptions::default()).await?;
//! store.migrate().await?;
//! let mut tx = store.begin().await?;
//! // … the caller's own writes through tx.conn() …
//! let outcome = store
//!     .enqueue(&mut tx, NewJob::new("stripe", serde_json::json!({"event": "evt_1"}))
//!         .with_unique_key("evt_1")
//!         .with_group("sub_1"))
//!     .await?;
//! tx.commit().await?;
//! println!("{outcome:?}");
//! # Ok(()) }
//! ```

pub mod config;
pub mod dialect;
pub mod error;
pub mod job;
pub mod model;
pub mod runtime;
pub mod schema;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{QueueConfig, RetryPolicy};
pub use dialect::{Conn, Dialect, Pool};
pub use error::QueueError;
pub use job::{Job, JobError};
pub use model::{
    ClaimedJob, EnqueueOutcome, FailOutcome, JobFilter, JobId, JobRecord, JobState, Lease, NewJob, Page, RunningGroup,
    StateCount,
};
pub use runtime::{
    AbortHandle, Committer, CommitterGuard, GroupCommit, JobObserver, JobOutcome, QueueBackend, RunConfig, Work,
    WorkerOptions, run_jobs,
};
pub use schema::Backend;
pub use store::{BackupSummary, PgJobBatch, Savepoint, Selection, Store, StoreOptions, Tx, redact_url};
