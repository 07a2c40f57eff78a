//! # subsync-duties
//!
//! Work a deployment must do on a schedule — reconcile with Stripe's API, prune past
//! retention — run by every `serve` and `worker` process, yet by **one process at a time per
//! duty**, on SQLite or across machines on PostgreSQL. The table `subsync_duties` (this
//! crate's alone) holds, per duty:
//!
//! - a **lease** (`leader`, `lease_until`): a run starts only after taking it with one
//!   conditional update, renews it while it works, and gives it back when done; a process
//!   that dies mid-run loses it when it expires, and the next run starts over from the last
//!   checkpoint (nothing the dead run did is trusted beyond what it committed);
//! - a **checkpoint**: where the duty got to (e.g. reconcile's high-water mark), which only
//!   moves forward, so concurrent or repeated runs never move it back;
//! - the **last run** (start, finish, ok, result, error, runner) and counters, for
//!   `subsync reconcile status`, the dashboard and metrics.
//!
//! [`schedule::run_every`] is the loop each process runs per duty; [`store`] has every
//! statement on the table.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod schedule;
pub mod store;

pub use schedule::{Duty, DutyRun, DutyTask, run_every};
pub use store::{DutyStatus, Lease, RunRecord};
