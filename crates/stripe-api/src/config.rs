//! How to reach Stripe: key, base URL, timeout, retries, rate limit.

use std::fmt;
use std::time::Duration;

use crate::{ApiError, ApiKey};

/// Stripe's API address, the default [`ApiConfig::base`].
pub const DEFAULT_BASE: &str = "https://api.stripe.com";
/// The longest a single retry waits, whatever the backoff or `Retry-After` say: a
/// scheduled run should fail and let the next one catch up rather than hang.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The client's settings. Why public fields: the binary fills them from flags; call
/// [`ApiConfig::validate`] (done by `StripeApi::new`) to check them.
#[derive(Clone)]
pub struct ApiConfig {
    /// The secret or restricted key (a read-only restricted key is enough).
    pub key: ApiKey,
    /// `https://api.stripe.com`, or a local server in tests; no query, trailing `/` trimmed.
    pub base: String,
    /// Per request (connect, answer and body), default 30 s.
    pub timeout: Duration,
    /// Retries after the first attempt on 429, 409, 5xx, connection errors and timeouts; default 4.
    pub max_retries: u32,
    /// Client-side limit shared by every clone of the client; default 20, well under
    /// Stripe's live read limit (100/s) so webhooks' own API use keeps headroom.
    pub requests_per_second: u32,
    /// First retry delay, default 500 ms, doubling with jitter up to [`MAX_BACKOFF`].
    pub backoff: Duration,
}

impl ApiConfig {
    /// The defaults above for `key`, against the real Stripe API.
    pub fn new(key: ApiKey) -> Self {
        Self {
            key,
            base: DEFAULT_BASE.to_owned(),
            timeout: Duration::from_secs(30),
            max_retries: 4,
            requests_per_second: 20,
            backoff: Duration::from_millis(500),
        }
    }

    /// Checks the settings, so a bad flag fails at start with a clear message rather
    /// than at the first scheduled run.
    pub fn validate(&self) -> Result<(), ApiError> {
        normalized_base(&self.base)?;
        if self.timeout.is_zero() {
            return Err(ApiError::InvalidConfig("the Stripe API timeout must be more than 0".into()));
        }
        if self.requests_per_second == 0 {
            return Err(ApiError::InvalidConfig(
                "the Stripe API rate limit must be at least 1 request per second".into(),
            ));
        }
        if self.max_retries > 20 {
            return Err(ApiError::InvalidConfig(format!(
                "at most 20 Stripe API retries (got {}); each waits up to {MAX_BACKOFF:?}",
                self.max_retries
            )));
        }
        Ok(())
    }
}

/// `base` checked (http or https, a host, no query or fragment) and without trailing `/`.
pub(crate) fn normalized_base(base: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::InvalidConfig(format!("the Stripe API base {base:?} {why}"));
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with https:// (or http:// for a local test server)"))?;
    if rest.contains('?') || rest.contains('#') {
        return Err(bad("must not have a query or fragment"));
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace"));
    }
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(bad("must name a host (and no user info)"));
    }
    let trimmed = base.trim_end_matches('/');
    reqwest::Url::parse(trimmed).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    Ok(trimmed.to_owned())
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("key", &self.key) // ApiKey's Debug is redacted
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("requests_per_second", &self.requests_per_second)
            .field("backoff", &self.backoff)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ApiConfig {
        ApiConfig::new("rk_live_supersecretvalue".parse().expect("key"))
    }

    #[test]
    fn defaults_are_valid_and_debug_hides_the_key() {
        let c = config();
        c.validate().expect("defaults");
        assert_eq!(c.base, "https://api.stripe.com");
        let shown = format!("{c:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("rk_live_…(redacted)"), "{shown}");
    }

    #[test]
    fn base_is_checked_and_trimmed() {
        assert_eq!(normalized_base("http://127.0.0.1:1234/").expect("ok"), "http://127.0.0.1:1234");
        assert_eq!(normalized_base("https://api.stripe.com").expect("ok"), "https://api.stripe.com");
        assert_eq!(normalized_base("https://proxy.example/stripe//").expect("ok"), "https://proxy.example/stripe");
        for bad in
            ["api.stripe.com", "ftp://x", "https://", "https://x?a=b", "https://x#f", "https://u@x", "https://x y"]
        {
            let err = normalized_base(bad).expect_err(bad);
            assert!(err.to_string().contains("Stripe API base"), "{bad}: {err}");
        }
    }

    #[test]
    fn limits_are_checked() {
        let mut c = config();
        c.requests_per_second = 0;
        assert!(c.validate().expect_err("rps").to_string().contains("at least 1"));
        let mut c = config();
        c.timeout = Duration::ZERO;
        assert!(c.validate().is_err());
        let mut c = config();
        c.max_retries = 21;
        assert!(c.validate().is_err());
        let mut c = config();
        c.base = "nope".into();
        assert!(c.validate().is_err());
    }
}
