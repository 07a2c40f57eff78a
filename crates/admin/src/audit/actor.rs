//! Who performed an operator action, and through which face of subsync: the name every audit
//! entry carries. One validation for the CLI's `--actor`, the dashboard's "Your name" and the
//! API's `X-Subsync-Actor` header, so a name accepted in one place is accepted everywhere.

use serde::Serialize;
use thiserror::Error;

/// The longest actor name, in characters: enough for an email address or `user@host`.
pub const MAX_ACTOR_CHARS: usize = 100;

/// The actor recorded for API requests that send no `X-Subsync-Actor` header (there is one
/// admin token, so the request itself names nobody).
pub const API_DEFAULT_ACTOR: &str = "api";

/// Why an actor name was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ActorError {
    /// Nothing (or only spaces) was given.
    #[error("the actor name is empty: give who is acting, e.g. alice or alice@ops-laptop")]
    Empty,
    /// Longer than [`MAX_ACTOR_CHARS`].
    #[error("the actor name is {len} characters long; at most {MAX_ACTOR_CHARS} are allowed")]
    TooLong {
        /// Characters given.
        len: usize,
    },
    /// Control characters (newlines, escapes) would let a name forge or garble audit lines.
    #[error("the actor name contains control characters (a newline or terminal escape?)")]
    ControlCharacters,
}

/// Checks an actor name: surrounding whitespace is dropped, then 1 to [`MAX_ACTOR_CHARS`]
/// characters without control characters. Returns the name as it will be recorded.
pub fn validate_actor_name(name: &str) -> Result<String, ActorError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ActorError::Empty);
    }
    if name.chars().any(char::is_control) {
        return Err(ActorError::ControlCharacters);
    }
    let len = name.chars().count();
    if len > MAX_ACTOR_CHARS {
        return Err(ActorError::TooLong { len });
    }
    Ok(name.to_string())
}

/// The face of subsync an action came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The `subsync` command line.
    Cli,
    /// The JSON admin API (bearer token).
    Api,
    /// The dashboard (browser session).
    Dashboard,
}

impl Via {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Cli => "cli",
            Via::Api => "api",
            Via::Dashboard => "dashboard",
        }
    }
}

/// A validated actor name and where it acted from: what an operation needs to record who
/// did it. Build one with [`Actor::new`]; the name cannot be changed afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    name: String,
    via: Via,
}

impl Actor {
    /// Validates `name` (see [`validate_actor_name`]).
    pub fn new(name: &str, via: Via) -> Result<Self, ActorError> {
        Ok(Self { name: validate_actor_name(name)?, via })
    }

    /// The recorded name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the action came from.
    pub fn via(&self) -> Via {
        self.via
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_actor_name("  alice@ops  ").as_deref(), Ok("alice@ops"));
        assert_eq!(validate_actor_name("Zoë Müller").as_deref(), Ok("Zoë Müller"));
        assert_eq!(validate_actor_name(""), Err(ActorError::Empty));
        assert_eq!(validate_actor_name(" \t "), Err(ActorError::Empty));
        let hundred = "é".repeat(MAX_ACTOR_CHARS);
        assert_eq!(validate_actor_name(&hundred), Ok(hundred.clone()), "the limit counts characters, not bytes");
        let long = "a".repeat(MAX_ACTOR_CHARS + 1);
        assert_eq!(validate_actor_name(&long), Err(ActorError::TooLong { len: 101 }));
        assert!(validate_actor_name(&long).unwrap_err().to_string().contains("at most 100"));
    }

    #[test]
    fn control_characters_are_refused() {
        for bad in ["ali\nce", "bob\u{1b}[31m", "x\u{0}y", "a\rb", "mid\u{7f}dle"] {
            assert_eq!(validate_actor_name(bad), Err(ActorError::ControlCharacters), "{bad:?}");
        }
        let actor = Actor::new(" carol ", Via::Dashboard).unwrap();
        assert_eq!((actor.name(), actor.via().as_str()), ("carol", "dashboard"));
        assert!(Actor::new("", Via::Cli).is_err());
    }
}
