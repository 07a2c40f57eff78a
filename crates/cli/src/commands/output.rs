//! What every operator command shares about its output: the `--json` / `--yes` switches and
//! the one-line error with its exit code.

use subsync_admin::AdminError;
use subsync_queue::QueueError;
use thiserror::Error;

/// Output switches; flattened into the binary's top-level arguments so every command takes
/// them.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct OutputOptions {
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not ask before bulk actions.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
}

/// An operator command that failed; its `Display` is the one line to print.
#[derive(Debug, Error)]
pub enum CliError {
    /// The command line is incomplete or contradictory.
    #[error("{0}")]
    Usage(String),
    /// The operation failed (unknown id, bad filter, database error…).
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The operator did not confirm a bulk action.
    #[error("aborted: {0}")]
    NotConfirmed(String),
    /// Writing the output failed (closed pipe…).
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    /// The JSON output could not be encoded.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<QueueError> for CliError {
    fn from(e: QueueError) -> Self {
        CliError::Admin(AdminError::Queue(e))
    }
}

impl CliError {
    /// The process exit code: 2 for a wrong command line or input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Admin(e) if e.code() == "bad_request" => 2,
            _ => 1,
        }
    }
}
