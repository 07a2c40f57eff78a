//! What the intake needs to know, validated before it starts.

use std::time::Duration;

use subsync_stripe::signature::{DEFAULT_TOLERANCE, Secrets};

/// Group-commit writers by default (PostgreSQL). Measured at 16 concurrent senders (same
/// run, alternating): with the commit linger, one and two writers are equal within noise,
/// and one makes the largest batches. A batch is one short autocommitted statement, which
/// waits on a row lock only while another intake stores the same event, so one writer is
/// not a head-of-line risk.
pub const DEFAULT_COMMITTERS: usize = 1;

/// Most webhooks in one commit by default.
pub const DEFAULT_MAX_BATCH: usize = 64;

/// How long a committer waits, at most, to fill a batch as large as its previous one: a
/// fraction of one commit, so it costs little latency and spares a whole commit per tiny batch.
pub const DEFAULT_COMMIT_LINGER: Duration = Duration::from_millis(2);

/// How long a client may take to send its body by default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Intake settings. Build with [`IntakeConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Signing secrets (several during a secret roll).
    pub secrets: Secrets,
    /// How old (or how far in the future) a signature timestamp may be.
    pub tolerance: Duration,
    /// Largest body accepted; larger gets 413. Stripe events are a few KiB.
    pub body_limit: usize,
    /// How long a client may take to send its body (408 after it): a slow sender must not
    /// hold a connection or its share of the listener's body budget.
    pub body_timeout: Duration,
    /// How concurrent webhooks are grouped into commits.
    pub batching: Batching,
}

impl IntakeConfig {
    /// Defaults: 300 s tolerance, 1 MiB bodies received within 10 s, one committer, batches
    /// of up to 64, a [`DEFAULT_COMMIT_LINGER`].
    pub fn new(secrets: Secrets) -> Self {
        Self {
            secrets,
            tolerance: DEFAULT_TOLERANCE,
            body_limit: 1024 * 1024,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            batching: Batching::default(),
        }
    }
}

/// How requests are grouped into commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Committers running at once (PostgreSQL; SQLite always runs one).
    pub committers: usize,
    /// Most records in one commit.
    pub max_batch: usize,
    /// Longest a committer waits for the records it expects (see the module doc). Zero:
    /// commit whatever is queued at once.
    pub linger: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Self { committers: DEFAULT_COMMITTERS, max_batch: DEFAULT_MAX_BATCH, linger: DEFAULT_COMMIT_LINGER }
    }
}
