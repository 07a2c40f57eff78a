//! Fixtures for the operator command tests: the shared throwaway database and
//! `both_backends!` (the queue crate's `testing` feature) and its job seeders.

pub use subsync_queue::testing::TestDb;
pub use subsync_queue::testing::seed::{Q, seed_dead, seed_many_dead, seed_pending};
pub use subsync_queue::{Backend, both_backends};
