//! What can go wrong talking to Stripe, said so an operator can act on it.

/// An error from the Stripe API client.
///
/// Why so many variants: callers act differently on each (a refused key needs an
/// operator, a missing object is an answer, a rate limit or outage means "try the next
/// run"). No variant ever carries the API key.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The configuration (key, base URL, limits) is unusable; nothing was sent.
    #[error("invalid Stripe API configuration: {0}")]
    InvalidConfig(String),
    /// 401/403: Stripe refused the key (wrong, revoked, or missing a permission). Never retried.
    #[error("Stripe refused the API key: {message}")]
    Unauthorized {
        /// The status and Stripe's own message (Stripe masks the key in it); a 403 says
        /// the restricted key lacks a permission.
        message: String,
    },
    /// 404 `resource_missing`: the object does not exist (or not in this mode/account).
    #[error("Stripe has no such object ({path}): {message}")]
    NotFound {
        /// The request path that was not found.
        path: String,
        /// Stripe's message, e.g. "No such subscription: 'sub_123'".
        message: String,
        /// Stripe's `Request-Id`, to quote to Stripe support.
        request_id: Option<String>,
    },
    /// 429 still answered after every retry.
    #[error("Stripe rate limited the request after {attempts} attempts (HTTP 429): {message}")]
    RateLimited {
        /// Stripe's message.
        message: String,
        /// How many requests were sent in all.
        attempts: u32,
        /// Stripe's `Request-Id` of the last answer.
        request_id: Option<String>,
    },
    /// Any other error answer from Stripe (4xx, or 5xx after retries).
    #[error("Stripe answered HTTP {status} ({kind}{}): {message}{}", code_suffix(.code), request_suffix(.request_id))]
    Stripe {
        /// The HTTP status.
        status: u16,
        /// Stripe's `error.type` (`invalid_request_error`, `api_error`, …).
        kind: String,
        /// Stripe's `error.code`, when given.
        code: Option<String>,
        /// Stripe's `error.message` (or the start of a body that was not Stripe's).
        message: String,
        /// Stripe's `Request-Id`, to quote to Stripe support.
        request_id: Option<String>,
    },
    /// No answer: connection refused or reset, DNS, TLS (after retries).
    #[error("cannot reach the Stripe API: {0}")]
    Transport(String),
    /// No complete answer within the configured per-request timeout (after retries).
    #[error("the Stripe API did not answer within the timeout")]
    Timeout,
    /// A 2xx answer that is not what Stripe sends (not JSON, not a list, no `Date`).
    #[error("unexpected answer from the Stripe API: {0}")]
    Decode(String),
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(", code {c}")).unwrap_or_default()
}

fn request_suffix(request_id: &Option<String>) -> String {
    request_id.as_ref().map(|r| format!(" (request {r})")).unwrap_or_default()
}

impl ApiError {
    /// Whether a later attempt (the next scheduled run) may succeed without an operator:
    /// rate limits, outages, timeouts and Stripe's 5xx/409. A refused key, a missing
    /// object, a bad request or a bad configuration will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::RateLimited { .. } | ApiError::Transport(_) | ApiError::Timeout => true,
            ApiError::Stripe { status, .. } => *status >= 500 || *status == 409,
            ApiError::InvalidConfig(_)
            | ApiError::Unauthorized { .. }
            | ApiError::NotFound { .. }
            | ApiError::Decode(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_status_and_stripes_message() {
        let err = ApiError::Stripe {
            status: 400,
            kind: "invalid_request_error".into(),
            code: Some("parameter_unknown".into()),
            message: "Received unknown parameter: foo".into(),
            request_id: Some("req_1".into()),
        };
        assert_eq!(
            err.to_string(),
            "Stripe answered HTTP 400 (invalid_request_error, code parameter_unknown): Received unknown parameter: foo (request req_1)"
        );
        let err = ApiError::Unauthorized { message: "HTTP 401: Invalid API Key provided: sk_test_****abcd".into() };
        assert_eq!(err.to_string(), "Stripe refused the API key: HTTP 401: Invalid API Key provided: sk_test_****abcd");
    }

    #[test]
    fn retryable_errors_are_the_transient_ones() {
        let stripe =
            |status| ApiError::Stripe { status, kind: "x".into(), code: None, message: "m".into(), request_id: None };
        assert!(stripe(500).is_retryable());
        assert!(stripe(409).is_retryable());
        assert!(!stripe(400).is_retryable());
        assert!(ApiError::Timeout.is_retryable());
        assert!(ApiError::Transport("refused".into()).is_retryable());
        assert!(!ApiError::Unauthorized { message: "m".into() }.is_retryable());
        assert!(!ApiError::NotFound { path: "/v1/x".into(), message: "m".into(), request_id: None }.is_retryable());
    }
}
