//! Webhook signing secrets, validated once at configuration time.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Every Stripe webhook signing secret starts with this.
const PREFIX: &str = "whsec_";

/// Where an operator finds a signing secret; repeated in every config error
/// so a misconfiguration can be fixed without searching the docs.
const WHERE_TO_GET_ONE: &str = "webhook signing secrets start with `whsec_`: `stripe listen` prints one \
     for local forwarding; for a deployed endpoint use Stripe Dashboard → Developers → Webhooks → \
     (your endpoint) → Signing secret";

/// Why a secrets configuration string was refused. Never contains the secret
/// itself (a wrongly pasted value may well be an API key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// Nothing configured at all: the intake cannot verify anything.
    #[error("no webhook signing secret configured; {WHERE_TO_GET_ONE}")]
    Empty,
    /// `a,,b` or a trailing comma: almost always an editing mistake.
    #[error("webhook signing secret #{position} (1-based, comma-separated) is empty; remove the stray comma")]
    EmptyEntry {
        /// 1-based position in the comma-separated list.
        position: usize,
    },
    /// Something that is not a webhook secret (an API key, a placeholder…).
    #[error(
        "webhook signing secret #{position} (1-based, {len} characters) does not start with `whsec_`; {WHERE_TO_GET_ONE}"
    )]
    MissingPrefix {
        /// 1-based position in the comma-separated list.
        position: usize,
        /// Length in characters, to help spot truncation without showing it.
        len: usize,
    },
    /// `whsec_` alone: a truncated paste.
    #[error("webhook signing secret #{position} (1-based) is just `whsec_` with nothing after it; {WHERE_TO_GET_ONE}")]
    Truncated {
        /// 1-based position in the comma-separated list.
        position: usize,
    },
    /// Whitespace inside a secret means a broken copy/paste; Stripe secrets never contain any.
    #[error(
        "webhook signing secret #{position} (1-based) contains whitespace inside it, which Stripe secrets never do (copy/paste error?)"
    )]
    InnerWhitespace {
        /// 1-based position in the comma-separated list.
        position: usize,
    },
}

impl SecretsError {
    /// Stable machine-readable code, for logs and startup diagnostics.
    pub fn code(&self) -> &'static str {
        match self {
            SecretsError::Empty => "no_webhook_secret",
            SecretsError::EmptyEntry { .. } => "empty_webhook_secret",
            SecretsError::MissingPrefix { .. } => "webhook_secret_missing_prefix",
            SecretsError::Truncated { .. } => "webhook_secret_truncated",
            SecretsError::InnerWhitespace { .. } => "webhook_secret_whitespace",
        }
    }
}

/// One `whsec_…` secret, held only as a keyed HMAC state so it can neither be
/// printed by accident nor re-keyed on every request.
#[derive(Clone)]
pub struct Secret {
    mac: HmacSha256,
}

impl Secret {
    /// Validates one secret (surrounding whitespace trimmed); used for signing in
    /// tests and generators, and by [`Secrets::parse`] for each entry.
    pub fn parse(value: &str) -> Result<Secret, SecretsError> {
        if value.trim().is_empty() {
            return Err(SecretsError::Empty);
        }
        Self::parse_at(value, 1)
    }

    fn parse_at(value: &str, position: usize) -> Result<Secret, SecretsError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(SecretsError::EmptyEntry { position });
        }
        let Some(rest) = value.strip_prefix(PREFIX) else {
            return Err(SecretsError::MissingPrefix { position, len: value.chars().count() });
        };
        if rest.is_empty() {
            return Err(SecretsError::Truncated { position });
        }
        if value.chars().any(char::is_whitespace) {
            return Err(SecretsError::InnerWhitespace { position });
        }
        // Stripe keys the HMAC with the whole string, prefix included, as UTF-8
        // (it is NOT base64-decoded). HMAC accepts keys of any length, so this
        // cannot fail; map the impossible error rather than panic.
        let mac = <HmacSha256 as KeyInit>::new_from_slice(value.as_bytes())
            .map_err(|_| SecretsError::Truncated { position })?;
        Ok(Secret { mac })
    }

    /// A fresh HMAC state keyed with this secret, so signing never re-hashes the key.
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

impl FromStr for Secret {
    type Err = SecretsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Secret::parse(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_[redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whsec_[redacted]")
    }
}

/// All secrets an endpoint currently accepts: while rolling a secret in Stripe,
/// events are signed with both old and new for a while, and either must verify.
#[derive(Clone)]
pub struct Secrets {
    secrets: Vec<Secret>,
}

impl Secrets {
    /// Parses the comma-separated configuration value (e.g. an environment
    /// variable), in priority order; each entry is trimmed of surrounding whitespace.
    pub fn parse(config: &str) -> Result<Secrets, SecretsError> {
        if config.trim().is_empty() {
            return Err(SecretsError::Empty);
        }
        let secrets = config
            .split(',')
            .enumerate()
            .map(|(i, entry)| Secret::parse_at(entry, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Secrets { secrets })
    }

    /// How many secrets are accepted, e.g. to log "2 webhook secrets configured".
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Always false for a parsed value; present because `len` is.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The secrets in configuration order, for signing with each of them.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.secrets.iter()
    }
}

impl From<Secret> for Secrets {
    fn from(secret: Secret) -> Self {
        Secrets { secrets: vec![secret] }
    }
}

impl FromStr for Secrets {
    type Err = SecretsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Secrets::parse(s)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} × whsec_[redacted])", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_and_many_with_whitespace_trimmed() {
        assert_eq!(Secrets::parse("whsec_abc").map(|s| s.len()), Ok(1));
        let s = Secrets::parse("  whsec_old \n,\twhsec_new  ").map(|s| s.len());
        assert_eq!(s, Ok(2));
    }

    #[test]
    fn rejects_empty_config_and_entries() {
        assert_eq!(Secrets::parse("").err(), Some(SecretsError::Empty));
        assert_eq!(Secrets::parse("  \n").err(), Some(SecretsError::Empty));
        assert_eq!(Secrets::parse("whsec_a,,whsec_b").err(), Some(SecretsError::EmptyEntry { position: 2 }));
        assert_eq!(Secrets::parse("whsec_a, ").err(), Some(SecretsError::EmptyEntry { position: 2 }));
    }

    #[test]
    fn rejects_non_whsec_with_guidance_and_without_leaking() {
        let err = Secrets::parse("whsec_a,sk_live_supersecret").expect_err("must be refused");
        assert_eq!(err.code(), "webhook_secret_missing_prefix");
        let msg = err.to_string();
        assert!(msg.contains("#2"), "{msg}");
        assert!(msg.contains("stripe listen"), "{msg}");
        assert!(msg.contains("Signing secret"), "{msg}");
        assert!(!msg.contains("supersecret"), "{msg}");
    }

    #[test]
    fn rejects_truncated_and_inner_whitespace() {
        assert_eq!(Secret::parse(" ").err(), Some(SecretsError::Empty));
        assert_eq!(Secret::parse("whsec_").err(), Some(SecretsError::Truncated { position: 1 }));
        assert_eq!(Secret::parse("whsec_ab cd").err(), Some(SecretsError::InnerWhitespace { position: 1 }));
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let secrets = Secrets::parse("whsec_topsecretvalue,whsec_other");
        let shown = format!("{secrets:?}");
        assert!(!shown.contains("topsecretvalue"), "{shown}");
        assert!(shown.contains("2"), "{shown}");
        let one = Secret::parse("whsec_topsecretvalue");
        assert!(!format!("{one:?}").contains("topsecret"));
        if let Ok(one) = one {
            assert_eq!(one.to_string(), "whsec_[redacted]");
        }
    }
}
