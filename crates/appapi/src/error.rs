//! The API's errors, in the admin API's JSON shape (`{"error": code, "message": …}`), so an
//! application handles both the same way.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subsync_domain::Features;
use subsync_worker::WorkerError;
use thiserror::Error;

/// Why a request was not answered.
#[derive(Debug, Error)]
pub enum ApiError {
    /// No application key, or one that is not (or no longer) configured.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A malformed path or user id.
    #[error("{0}")]
    BadRequest(String),
    /// No such endpoint.
    #[error("{0}")]
    NotFound(String),
    /// A feature name that is not one; the answer lists the valid names.
    #[error("unknown feature `{0}`")]
    UnknownFeature(String),
    /// Reading the entitlement failed.
    #[error(transparent)]
    Read(#[from] WorkerError),
}

impl ApiError {
    /// The machine-readable code in `"error"` (the admin API's vocabulary).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::UnknownFeature(_) => "unknown_feature",
            ApiError::Read(e) if e.is_transient() => "unavailable",
            ApiError::Read(_) => "internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self.code() {
            "unauthorized" => StatusCode::UNAUTHORIZED,
            "bad_request" => StatusCode::BAD_REQUEST,
            "not_found" | "unknown_feature" => StatusCode::NOT_FOUND,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = self.status();
        let body = match &self {
            ApiError::UnknownFeature(_) => {
                json!({ "error": code, "message": self.to_string(), "features": Features::NAMES })
            }
            ApiError::Read(e) => {
                tracing::error!(error = %e, code, "entitlement read failed");
                let message = if code == "unavailable" {
                    "the database is unavailable right now; try again shortly"
                } else {
                    "internal error; the details are in the server log"
                };
                json!({ "error": code, "message": message })
            }
            _ => json!({ "error": code, "message": self.to_string() }),
        };
        let mut res = (status, Json(body)).into_response();
        match code {
            "unauthorized" => {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"subsync\""));
            }
            "unavailable" => {
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        res
    }
}
