//! Application keys: who may read entitlements. Several at once, so a key can be rotated
//! without downtime (add the new one, move the applications, drop the old one).

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use thiserror::Error;

/// Why the configured keys were refused at start.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    /// Nothing but commas and spaces.
    #[error("no application key given: set a comma-separated list of keys, 16+ characters each")]
    Empty,
    /// A short key can be guessed.
    #[error(
        "application key {position} is too short: {len} characters, need at least {min} (generate one with `openssl rand -hex 32`)"
    )]
    TooShort {
        /// 1-based position in the list.
        position: usize,
        /// Characters given.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// Whitespace inside a key or control characters: a copy-paste accident that would never
    /// match a header.
    #[error("application key {position} contains whitespace or control characters; remove them")]
    BadCharacters {
        /// 1-based position in the list.
        position: usize,
    },
    /// The same key twice is harmless but always a mistake (usually a rotation half done).
    #[error("application key {position} is listed twice")]
    Duplicate {
        /// 1-based position of the second occurrence.
        position: usize,
    },
}

/// The accepted application keys, kept only as SHA-256 digests: `Debug` and logs can never
/// show one, and comparing digests hides the keys' lengths.
#[derive(Clone)]
pub struct AppKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for AppKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppKeys({} keys)", self.digests.len())
    }
}

impl AppKeys {
    /// The shortest key accepted (the admin token's floor too).
    pub const MIN_LEN: usize = 16;

    /// Parses `SUBSYNC_APP_KEYS`: comma-separated, spaces around a key ignored.
    pub fn parse(list: &str) -> Result<Self, KeyError> {
        let mut digests: Vec<[u8; 32]> = Vec::new();
        let keys = list.split(',').map(str::trim).filter(|k| !k.is_empty());
        for (i, key) in keys.enumerate() {
            let position = i + 1;
            if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(KeyError::BadCharacters { position });
            }
            let len = key.chars().count();
            if len < Self::MIN_LEN {
                return Err(KeyError::TooShort { position, len, min: Self::MIN_LEN });
            }
            let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            if digests.contains(&digest) {
                return Err(KeyError::Duplicate { position });
            }
            digests.push(digest);
        }
        if digests.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { digests })
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Always false: [`AppKeys::parse`] refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys. Constant time: every key is compared, with no
    /// early exit, over digests of equal length.
    pub fn matches(&self, presented: &str) -> bool {
        let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut any = Choice::from(0);
        for want in &self.digests {
            any |= want.ct_eq(&got);
        }
        any.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "app-key-aaaaaaaaaaaa";
    const B: &str = "app-key-bbbbbbbbbbbb";

    #[test]
    fn every_listed_key_matches_and_nothing_else() {
        let keys = AppKeys::parse(&format!(" {A} ,{B},")).expect("two keys");
        assert_eq!(keys.len(), 2);
        assert!(keys.matches(A) && keys.matches(B));
        assert!(!keys.matches("app-key-cccccccccccc"));
        assert!(!keys.matches(""));
        assert!(!keys.matches(&A[..A.len() - 1]), "a prefix is not the key");
        assert_eq!(format!("{keys:?}"), "AppKeys(2 keys)", "Debug never shows a key");
    }

    #[test]
    fn bad_lists_are_refused_with_the_position() {
        assert_eq!(AppKeys::parse(" , ").unwrap_err(), KeyError::Empty);
        assert_eq!(
            AppKeys::parse(&format!("{A},short")).unwrap_err(),
            KeyError::TooShort { position: 2, len: 5, min: 16 }
        );
        assert_eq!(AppKeys::parse("app key with spaces!").unwrap_err(), KeyError::BadCharacters { position: 1 });
        assert_eq!(AppKeys::parse(&format!("{A},{B},{A}")).unwrap_err(), KeyError::Duplicate { position: 3 });
        let message = AppKeys::parse("short").unwrap_err().to_string();
        assert!(message.contains("at least 16"), "{message}");
    }
}
