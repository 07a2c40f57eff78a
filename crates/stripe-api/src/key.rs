//! The Stripe API key: parsed once, never shown.

use std::fmt;
use std::str::FromStr;

use crate::ApiError;

/// A Stripe secret (`sk_…`) or restricted (`rk_…`) API key.
///
/// Why a type: the key must never reach a log, an error or a `{:?}` dump, so its
/// `Debug` and `Display` show only the prefix up to the mode (`rk_live_…(redacted)`)
/// and the secret itself is reachable only through [`ApiKey::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The secret itself, for the `Authorization` header (and nothing else).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What may be shown: `sk_test_`, `rk_live_`, … (the part before the secret).
    pub fn redacted(&self) -> String {
        format!("{}…(redacted)", visible_prefix(&self.0))
    }
}

/// `sk_live_`, `rk_test_`, … or just `sk_` for a key without a known mode.
fn visible_prefix(key: &str) -> &str {
    for mode in ["live_", "test_"] {
        let end = 3 + mode.len();
        if key.len() > end && &key[3..end] == mode {
            return &key[..end];
        }
    }
    &key[..3]
}

impl FromStr for ApiKey {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ApiError::InvalidConfig("the Stripe API key is empty".into()));
        }
        if !(s.starts_with("sk_") || s.starts_with("rk_")) {
            let hint = if s.starts_with("pk_") {
                " (pk_ is a publishable key, which cannot read the API)"
            } else if s.starts_with("whsec_") {
                " (whsec_ is a webhook signing secret, not an API key)"
            } else {
                ""
            };
            return Err(ApiError::InvalidConfig(format!(
                "the Stripe API key must be a secret key (sk_…) or a restricted key (rk_…){hint}"
            )));
        }
        if s.len() <= 3 {
            return Err(ApiError::InvalidConfig("the Stripe API key has nothing after its prefix".into()));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ApiError::InvalidConfig(
                "the Stripe API key contains whitespace or control characters (a stray newline when it was pasted?)"
                    .into(),
            ));
        }
        if !s.is_ascii() {
            return Err(ApiError::InvalidConfig("the Stripe API key contains non-ASCII characters".into()));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.redacted())
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_secret_and_restricted_keys() {
        for key in ["sk_test_abc123", "sk_live_XYZ", "rk_live_51Habc", "rk_test_1", "sk_abc"] {
            let parsed: ApiKey = key.parse().expect(key);
            assert_eq!(parsed.expose(), key);
        }
    }

    #[test]
    fn refuses_other_keys_with_a_clear_reason() {
        let cases = [
            ("", "empty"),
            ("pk_live_abc", "publishable"),
            ("whsec_abc", "webhook signing secret"),
            ("abc", "sk_"),
            ("sk_", "nothing after"),
            ("sk_test_abc\n", "whitespace"),
            ("sk_test_a bc", "whitespace"),
            ("sk_test_a\u{7}bc", "control"),
            ("sk_test_é", "non-ASCII"),
        ];
        for (key, why) in cases {
            let err = key.parse::<ApiKey>().expect_err(key).to_string();
            assert!(err.contains(why), "{key:?}: {err}");
        }
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let cases = [
            ("rk_live_51Hsecretsecret", "rk_live_…(redacted)"),
            ("sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_…(redacted)"),
            ("sk_oddsecret", "sk_…(redacted)"),
            ("sk_live_", "sk_…(redacted)"),
        ];
        for (key, shown) in cases {
            let parsed: ApiKey = key.parse().expect(key);
            assert_eq!(parsed.to_string(), shown);
            assert_eq!(format!("{parsed:?}"), format!("ApiKey({shown})"));
            let secret = &key[key.len().min(8)..];
            if !secret.is_empty() {
                assert!(!format!("{parsed} {parsed:?} {parsed:#?}").contains(secret), "{key}");
            }
        }
    }
}
