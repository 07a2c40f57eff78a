//! What the deliverer needs, validated once at start.

use std::time::Duration;

use thiserror::Error;

use crate::signature::{SecretError, WebhookSecret};

/// Why a notification setting was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The receiver's URL is not an absolute http(s) URL.
    #[error("the notification URL `{0}` is not an absolute http:// or https:// URL")]
    Url(String),
    /// The secret is not a Standard Webhooks secret.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A duration or count out of range.
    #[error("{0}")]
    Range(String),
}

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The application's receiver (`SUBSYNC_NOTIFY_URL`).
    pub url: reqwest::Url,
    /// The signing secret (`SUBSYNC_NOTIFY_SECRET`, `whsec_…`).
    pub secret: WebhookSecret,
    /// One POST's deadline (connect, send, answer); past it the attempt failed.
    pub timeout: Duration,
    /// A change still undelivered this long after it was written stops being retried: its
    /// job goes `dead` (an operator can retry it).
    pub give_up_after: Duration,
    /// Users delivered to at once.
    pub concurrency: usize,
}

impl NotifyConfig {
    /// Defaults: 10 s per POST, give up after 3 days, 16 users at once.
    pub fn new(url: &str, secret: &str) -> Result<Self, ConfigError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| ConfigError::Url(url.to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ConfigError::Url(url.to_owned()));
        }
        Ok(Self {
            url: parsed,
            secret: WebhookSecret::parse(secret)?,
            timeout: Duration::from_secs(10),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
            concurrency: 16,
        })
    }

    /// Refuses values the deliverer cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::Range("the notification timeout must be positive".into()));
        }
        if self.concurrency == 0 {
            return Err(ConfigError::Range("notification concurrency must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn accepts_http_and_https_only() {
        assert!(NotifyConfig::new("https://app.example/hooks/subsync", SECRET).is_ok());
        assert!(NotifyConfig::new("http://127.0.0.1:9/x", SECRET).is_ok());
        for bad in ["ftp://x/y", "not a url", "/relative", "mailto:a@b"] {
            assert!(matches!(NotifyConfig::new(bad, SECRET), Err(ConfigError::Url(_))), "{bad}");
        }
        assert!(matches!(NotifyConfig::new("https://x/", "nope"), Err(ConfigError::Secret(_))));
    }
}
