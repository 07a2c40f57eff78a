//! What can go wrong in an operator action, sorted by what the operator should do about it.
//! The API maps these to status codes, the dashboard to an error page, the CLI to one line.

use subsync_queue::QueueError;
use thiserror::Error;

use crate::views::ViewError;

/// An operator action that could not be done. Messages are written for the operator at 2 a.m.:
/// they say what was wrong and, where possible, what to do instead.
#[derive(Debug, Error)]
pub enum AdminError {
    /// The request itself is wrong (unknown state, bad timestamp, limit out of range).
    #[error("{0}")]
    InvalidInput(String),
    /// No such job, user or event.
    #[error("{0}")]
    NotFound(String),
    /// The job exists but is in a state the action does not apply to, or the id matches
    /// several jobs.
    #[error("{0}")]
    Conflict(String),
    /// The entitlements or events view was not wired into this server.
    #[error("the {0} view is not configured on this server")]
    NotConfigured(&'static str),
    /// A bulk action without `confirm: true`, or with an empty filter.
    #[error("{0}")]
    NotConfirmed(String),
    /// The queue's database failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// An entitlements or events view failed.
    #[error(transparent)]
    View(#[from] ViewError),
}

impl AdminError {
    /// The machine-readable code the JSON API reports in `"error"`.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::InvalidInput(_) => "bad_request",
            AdminError::NotFound(_) => "not_found",
            AdminError::Conflict(_) => "conflict",
            AdminError::NotConfigured(_) => "not_configured",
            AdminError::NotConfirmed(_) => "not_confirmed",
            AdminError::Queue(QueueError::InvalidInput(_)) => "bad_request",
            AdminError::Queue(e) if e.is_transient() => "unavailable",
            AdminError::View(ViewError::Unavailable(_)) => "unavailable",
            AdminError::Queue(_) | AdminError::View(_) => "internal",
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self.code() {
            "bad_request" | "not_confirmed" => StatusCode::BAD_REQUEST,
            "not_found" | "not_configured" => StatusCode::NOT_FOUND,
            "conflict" => StatusCode::CONFLICT,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message shown to the client. Internal errors are logged in full and answered with
    /// a generic line, so database details never reach a browser.
    pub fn public_message(&self) -> String {
        match self.code() {
            "internal" => "internal error; the details are in the server log".to_string(),
            "unavailable" => "the database is unavailable right now; try again shortly".to_string(),
            _ => self.to_string(),
        }
    }

    /// Logs server-side failures (not the operator's own mistakes).
    pub(crate) fn log(&self) {
        if matches!(self.code(), "internal" | "unavailable") {
            tracing::error!(error = %self, code = self.code(), "admin request failed");
        }
    }
}

/// The sentence every "unknown id" error uses, so API, dashboard and CLI agree.
pub(crate) fn no_such_job(id: &str) -> AdminError {
    AdminError::NotFound(format!("no job with id or event id `{id}`"))
}
