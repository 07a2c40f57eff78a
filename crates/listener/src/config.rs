//! What a listener is allowed to spend, validated before it starts.

use std::time::Duration;

/// Default time a client has to send a request's headers (from its connection, or from the
/// first byte after an idle keep-alive wait): Stripe sends them in one packet.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time an idle keep-alive connection is kept open waiting for its next request.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a client has to send a request body (the intake answers 408 after it).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on the public (webhook) listener's open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default cap on the admin listener's open connections (operators, dashboards, scrapers).
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;
/// Default budget of request-body bytes in flight on the public listener: 32 MiB, thousands
/// of ordinary webhooks (a few KiB each) or 32 bodies at the default 1 MiB limit.
pub const DEFAULT_BODY_BUDGET: usize = 32 * 1024 * 1024;
/// Default budget of request-body bytes in flight on the admin listener.
pub const DEFAULT_ADMIN_BODY_BUDGET: usize = 8 * 1024 * 1024;

/// How long past [`ListenerConfig::body_timeout`] the listener itself closes a connection
/// still sending its body: the application answers at the body timeout (the intake's 408,
/// after discarding for up to 2 s); this is the backstop for applications that do not.
pub const BODY_TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// A listener's limits. Build with [`ListenerConfig::new`] and adjust fields, then
/// [`ListenerConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Name in logs and in the `listener` label of the metrics (`intake`, `admin`).
    pub name: &'static str,
    /// Longest time to receive a request's headers.
    pub header_timeout: Duration,
    /// Longest idle keep-alive wait between requests.
    pub idle_timeout: Duration,
    /// Longest time to receive a request body (the listener closes the connection at this
    /// plus [`BODY_TIMEOUT_GRACE`]).
    pub body_timeout: Duration,
    /// Most connections open at once; past it, idle and slow connections are shed first.
    pub max_connections: usize,
    /// Most request-body bytes in flight at once over all connections.
    pub body_budget: usize,
    /// The application's own per-request body limit: a body declared longer is refused by
    /// the application unread, so it reserves nothing up front.
    pub body_limit: usize,
}

/// A limit that makes no sense, said so before the listener starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A timeout of zero would close every connection at once.
    #[error("the {listener} listener's {what} must be at least 1 second")]
    ZeroTimeout {
        /// Which listener.
        listener: &'static str,
        /// Which timeout.
        what: &'static str,
    },
    /// No connection could ever be served.
    #[error("the {listener} listener's connection cap must be at least 1")]
    NoConnections {
        /// Which listener.
        listener: &'static str,
    },
    /// A body at the limit could never be admitted beside small webhooks.
    #[error(
        "the {listener} listener's body budget ({budget} bytes) must be at least twice its body limit \
         ({limit} bytes), or a body at the limit could never be accepted"
    )]
    BudgetTooSmall {
        /// Which listener.
        listener: &'static str,
        /// The configured budget.
        budget: usize,
        /// The per-request body limit.
        limit: usize,
    },
}

impl ListenerConfig {
    /// The defaults for a listener named `name` whose application refuses bodies over
    /// `body_limit`: 10 s headers, 30 s idle, 10 s bodies, 1,024 connections, a 32 MiB
    /// body budget.
    pub fn new(name: &'static str, body_limit: usize) -> Self {
        Self {
            name,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            body_budget: DEFAULT_BODY_BUDGET,
            body_limit,
        }
    }

    /// Checks the limits make a working listener.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let listener = self.name;
        for (what, value) in [
            ("header timeout", self.header_timeout),
            ("idle timeout", self.idle_timeout),
            ("body timeout", self.body_timeout),
        ] {
            if value < Duration::from_secs(1) {
                return Err(ConfigError::ZeroTimeout { listener, what });
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError::NoConnections { listener });
        }
        if self.body_budget < self.body_limit.saturating_mul(2) {
            return Err(ConfigError::BudgetTooSmall { listener, budget: self.body_budget, limit: self.body_limit });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        ListenerConfig::new("intake", 1024 * 1024).validate().expect("defaults");
    }

    #[test]
    fn nonsense_limits_are_refused_with_the_listener_named() {
        let mut config = ListenerConfig::new("admin", 1024 * 1024);
        config.body_budget = 1024 * 1024;
        let message = config.validate().expect_err("budget below twice the limit").to_string();
        assert!(message.contains("admin listener's body budget (1048576 bytes)"), "{message}");
        let mut config = ListenerConfig::new("intake", 1024);
        config.max_connections = 0;
        assert_eq!(config.validate(), Err(ConfigError::NoConnections { listener: "intake" }));
        let mut config = ListenerConfig::new("intake", 1024);
        config.header_timeout = Duration::ZERO;
        assert_eq!(config.validate(), Err(ConfigError::ZeroTimeout { listener: "intake", what: "header timeout" }));
    }
}
