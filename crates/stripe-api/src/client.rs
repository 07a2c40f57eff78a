//! The client: one request, retried with backoff under the shared rate limit.

use std::error::Error as _;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::normalized_base;
use crate::date::parse_http_date;
use crate::ratelimit::TokenBucket;
use crate::retry::{self, Verdict};
use crate::{ApiConfig, ApiError, STRIPE_VERSION};

/// Sent on every request, so Stripe's logs name us.
const USER_AGENT: &str = concat!("subsync/", env!("CARGO_PKG_VERSION"), " (stripe-api client)");
/// How much of a body that is not Stripe's error shape an error message quotes.
const QUOTED_BODY: usize = 200;

/// A Stripe API client. Why `Clone` over an `Arc`: every task of a process shares one
/// connection pool and, above all, one rate limit.
#[derive(Clone, Debug)]
pub struct StripeApi {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: String,
    config: ApiConfig,
    bucket: TokenBucket,
}

/// One object as Stripe sent it.
#[derive(Debug)]
pub struct Fetched {
    /// Stripe's exact bytes (whitespace around the object trimmed).
    pub body: Box<RawValue>,
    /// Stripe's `Date` response header, unix seconds: Stripe's clock for "as of when".
    pub date: i64,
    /// Stripe's `Request-Id`, to quote to Stripe support.
    pub request_id: Option<String>,
}

/// A 2xx answer, before it is read as an object or a list.
pub(crate) struct Answer {
    pub(crate) body: Vec<u8>,
    pub(crate) date: i64,
    pub(crate) request_id: Option<String>,
}

/// What one attempt got back (any status).
struct Reply {
    status: u16,
    body: Vec<u8>,
    date: Option<i64>,
    request_id: Option<String>,
    should_retry: Option<bool>,
    retry_after: Option<std::time::Duration>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl StripeApi {
    /// A client for `config` (validated here). No request is sent until the first call.
    pub fn new(config: ApiConfig) -> Result<Self, ApiError> {
        config.validate()?;
        let base = normalized_base(&config.base)?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| ApiError::InvalidConfig(format!("cannot build the HTTP client: {e}")))?;
        let bucket = TokenBucket::new(config.requests_per_second);
        Ok(Self { inner: Arc::new(Inner { http, base, config, bucket }) })
    }

    /// The base URL requests go to (without trailing `/`), for logs and status pages.
    pub fn base(&self) -> &str {
        &self.inner.base
    }

    /// GET one object (path like `/v1/subscriptions/sub_123`), with query pairs (e.g.
    /// `expand[]`).
    pub async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Fetched, ApiError> {
        let answer = self.request(path, query).await?;
        let body: Box<RawValue> = serde_json::from_slice(&answer.body)
            .map_err(|e| ApiError::Decode(format!("{path}: the body is not JSON ({e})")))?;
        if !body.get().starts_with('{') {
            return Err(ApiError::Decode(format!("{path}: the body is not a JSON object")));
        }
        Ok(Fetched { body, date: answer.date, request_id: answer.request_id })
    }

    /// `GET /v1/subscriptions/{id}?expand[]=customer`: the subscription as Stripe has it
    /// now, with its customer (metadata resolves the user).
    pub async fn subscription(&self, id: &str) -> Result<Fetched, ApiError> {
        check_id(id)?;
        let query = [("expand[]".to_owned(), "customer".to_owned())];
        self.get(&format!("/v1/subscriptions/{id}"), &query).await
    }

    /// Sends one GET, retrying per [`retry::verdict`] up to `max_retries` times.
    pub(crate) async fn request(&self, path: &str, query: &[(String, String)]) -> Result<Answer, ApiError> {
        check_path(path)?;
        let url = format!("{}{path}", self.inner.base);
        let config = &self.inner.config;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.inner.bucket.acquire().await;
            let outcome = tokio::time::timeout(config.timeout, self.attempt(&url, query)).await;
            let (error, retry_after) = match outcome {
                Err(_) => {
                    tracing::debug!(method = "GET", path, attempt, "stripe api request timed out");
                    (ApiError::Timeout, None)
                }
                Ok(Err(error)) => {
                    tracing::debug!(method = "GET", path, attempt, error = %error, "stripe api request failed");
                    (error, None)
                }
                Ok(Ok(reply)) => {
                    tracing::debug!(
                        method = "GET",
                        path,
                        status = reply.status,
                        attempt,
                        request_id = reply.request_id.as_deref().unwrap_or(""),
                        "stripe api request"
                    );
                    if (200..300).contains(&reply.status) {
                        let date = reply
                            .date
                            .ok_or_else(|| ApiError::Decode(format!("{path}: the answer has no valid Date header")))?;
                        return Ok(Answer { body: reply.body, date, request_id: reply.request_id });
                    }
                    let verdict = retry::verdict(reply.status, reply.should_retry);
                    let retry_after = reply.retry_after;
                    let error = self.error_from(path, reply, attempt);
                    if verdict == Verdict::Stop {
                        return Err(error);
                    }
                    (error, retry_after)
                }
            };
            if attempt > config.max_retries {
                return Err(error);
            }
            let wait = retry::delay(config.backoff, attempt - 1, retry_after);
            tracing::warn!(path, attempt, wait_ms = wait.as_millis() as u64, error = %error, "retrying stripe api request");
            tokio::time::sleep(wait).await;
        }
    }

    /// One HTTP exchange, body included (the caller bounds it with the timeout).
    async fn attempt(&self, url: &str, query: &[(String, String)]) -> Result<Reply, ApiError> {
        let response = self
            .inner
            .http
            .get(url)
            .query(query)
            .bearer_auth(self.inner.config.key.expose())
            .header("Stripe-Version", STRIPE_VERSION)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let status = response.status().as_u16();
        let date = header("date").as_deref().and_then(parse_http_date);
        let request_id = header("request-id");
        let should_retry = retry::should_retry_header(header("stripe-should-retry").as_deref());
        let retry_after = retry::retry_after(header("retry-after").as_deref());
        let body = response.bytes().await.map_err(transport)?.to_vec();
        Ok(Reply { status, body, date, request_id, should_retry, retry_after })
    }

    /// The error for a non-2xx reply, with Stripe's message (the key scrubbed from it).
    fn error_from(&self, path: &str, reply: Reply, attempts: u32) -> ApiError {
        let (kind, code, message) = match serde_json::from_slice::<ErrorBody>(&reply.body) {
            Ok(ErrorBody { error }) => (
                error.kind.unwrap_or_else(|| "unknown".into()),
                error.code,
                error.message.unwrap_or_else(|| "(no message)".into()),
            ),
            Err(_) => {
                let text = String::from_utf8_lossy(&reply.body);
                let quoted: String = text.trim().chars().take(QUOTED_BODY).collect();
                let message = if quoted.is_empty() { "(empty body)".to_owned() } else { format!("body: {quoted}") };
                ("not_stripe_error_body".to_owned(), None, message)
            }
        };
        let key = &self.inner.config.key;
        let message = message.replace(key.expose(), &key.redacted());
        let request_id = reply.request_id;
        match reply.status {
            401 => ApiError::Unauthorized { message: format!("HTTP 401: {message}") },
            403 => ApiError::Unauthorized {
                message: format!("HTTP 403 (a restricted key needs read permission for {path}): {message}"),
            },
            404 => ApiError::NotFound { path: path.to_owned(), message, request_id },
            429 => ApiError::RateLimited { message, attempts, request_id },
            status => ApiError::Stripe { status, kind, code, message, request_id },
        }
    }
}

/// A reqwest failure as our error; its chain of causes says what happened (refused, reset, DNS).
fn transport(error: reqwest::Error) -> ApiError {
    if error.is_timeout() {
        return ApiError::Timeout;
    }
    let mut message = error.to_string();
    let mut source = error.source();
    let mut depth = 0;
    while let Some(cause) = source
        && depth < 8
    {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
        depth += 1;
    }
    ApiError::Transport(message)
}

/// Paths are ours (`/v1/…`), but a caller-built id must not smuggle a query or `..` in.
fn check_path(path: &str) -> Result<(), ApiError> {
    let ok = path.starts_with("/v1/")
        && !path.contains("..")
        && !path.chars().any(|c| matches!(c, '?' | '#' | '%') || c.is_whitespace() || c.is_control());
    if ok { Ok(()) } else { Err(ApiError::InvalidConfig(format!("not a Stripe API path: {path:?}"))) }
}

/// Stripe ids are ASCII letters, digits and `_`.
pub(crate) fn check_id(id: &str) -> Result<(), ApiError> {
    if !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(ApiError::InvalidConfig(format!("not a Stripe id: {id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids_are_checked() {
        for ok in ["/v1/events", "/v1/subscriptions/sub_123", "/v1/checkout/sessions"] {
            check_path(ok).expect(ok);
        }
        for bad in ["/v2/x", "v1/events", "/v1/events?x=1", "/v1/../x", "/v1/a b", "/v1/a%2f", "https://x/v1/"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        check_id("sub_1MowQVLkdIwHu7ixeRlqHVzs").expect("id");
        for bad in ["", "sub/1", "sub?x", "sub 1", "süb"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_agent_names_subsync() {
        assert!(USER_AGENT.starts_with("subsync/"));
    }
}
