//! What the intake needs to know, validated before it starts.

use std::time::Duration;

use subsync_stripe::signature::{DEFAULT_TOLERANCE, Secrets};

/// Group-commit writers by default (PostgreSQL). Measured at 16 concurrent senders (same
/// run, alternating): one writer makes the largest batches and is ~12% faster than two, and
/// more are slower still. A batch is one short autocommitted statement, which waits on a
/// row lock only while another intake stores the same event, so one writer is not a
/// head-of-line risk.
pub const DEFAULT_COMMITTERS: usize = 1;

/// Intake settings. Build with [`IntakeConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Signing secrets (several during a secret roll).
    pub secrets: Secrets,
    /// How old (or how far in the future) a signature timestamp may be.
    pub tolerance: Duration,
    /// Largest body accepted; larger gets 413. Stripe events are a few KiB.
    pub body_limit: usize,
    /// Concurrent committers grouping requests into transactions (1 on SQLite: one writer).
    pub committers: usize,
    /// Most webhooks in one commit.
    pub max_batch: usize,
}

impl IntakeConfig {
    /// Defaults: 300 s tolerance, 1 MiB bodies, one committer, batches of up to 64.
    pub fn new(secrets: Secrets) -> Self {
        Self {
            secrets,
            tolerance: DEFAULT_TOLERANCE,
            body_limit: 1024 * 1024,
            committers: DEFAULT_COMMITTERS,
            max_batch: 64,
        }
    }
}
