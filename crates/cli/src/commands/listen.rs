//! The limits of the two HTTP listeners (`serve`, `intake`): flags, the open-file limit, and
//! the connection caps that fit in it.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args as ClapArgs;
use subsync_listener::ListenerConfig;
use subsync_listener::config as defaults;

use crate::options::Bounded;

/// Largest body the admin listener reserves up front: its forms and JSON are tiny; a longer
/// body still counts against the admin budget as it arrives.
const ADMIN_BODY_LIMIT: usize = 64 * 1024;

/// File descriptors kept for everything but the listeners' connections: the listening
/// sockets, logs, the worker's and intake's outbound calls, and this many per database
/// connection (SQLite: the database, its WAL and shared-memory files).
const FILES_RESERVED: u64 = 32;
const FILES_PER_DB_CONNECTION: u64 = 3;

/// Connection limits of the public listener, and the timeouts both listeners use.
#[derive(Debug, Clone, ClapArgs)]
pub struct ListenArgs {
    /// Seconds a client has to send a request's headers (from connecting, or from the first
    /// byte after an idle keep-alive wait).
    #[arg(
        long, env = "SUBSYNC_HEADER_TIMEOUT", default_value_t = defaults::DEFAULT_HEADER_TIMEOUT.as_secs(),
        value_parser = Bounded::<u64>::between(1, 3600).unit(" seconds"),
    )]
    pub header_timeout: u64,
    /// Seconds an idle keep-alive connection stays open waiting for its next request.
    #[arg(
        long, env = "SUBSYNC_IDLE_TIMEOUT", default_value_t = defaults::DEFAULT_IDLE_TIMEOUT.as_secs(),
        value_parser = Bounded::<u64>::between(1, 3600).unit(" seconds"),
    )]
    pub idle_timeout: u64,
    /// Seconds a client has to send a request body (408 after it).
    #[arg(
        long, env = "SUBSYNC_BODY_TIMEOUT", default_value_t = defaults::DEFAULT_BODY_TIMEOUT.as_secs(),
        value_parser = Bounded::<u64>::between(1, 3600).unit(" seconds"),
    )]
    pub body_timeout: u64,
    /// Most connections open at once on the webhook address; past it, idle and slow
    /// connections are closed first. Lowered to fit the open-file limit.
    #[arg(
        long, env = "SUBSYNC_MAX_CONNECTIONS", default_value_t = defaults::DEFAULT_MAX_CONNECTIONS,
        value_parser = Bounded::<usize>::between(1, 1_000_000),
    )]
    pub max_connections: usize,
    /// Most request-body bytes in flight at once on the webhook address; past it, new
    /// bodies get 503 with Retry-After (at least twice --body-limit).
    #[arg(
        long, env = "SUBSYNC_BODY_BUDGET", default_value_t = defaults::DEFAULT_BODY_BUDGET,
        value_parser = Bounded::<usize>::at_least(2048).unit(" bytes"),
    )]
    pub body_budget: usize,
}

/// Connection limits of the admin listener.
#[derive(Debug, Clone, ClapArgs)]
pub struct AdminListenArgs {
    /// Most connections open at once on the admin address. Lowered to fit the open-file limit.
    #[arg(
        long, env = "SUBSYNC_ADMIN_MAX_CONNECTIONS", default_value_t = defaults::DEFAULT_ADMIN_MAX_CONNECTIONS,
        value_parser = Bounded::<usize>::between(1, 1_000_000),
    )]
    pub admin_max_connections: usize,
    /// Most request-body bytes in flight at once on the admin address.
    #[arg(
        long, env = "SUBSYNC_ADMIN_BODY_BUDGET", default_value_t = defaults::DEFAULT_ADMIN_BODY_BUDGET,
        value_parser = Bounded::<usize>::at_least(2 * ADMIN_BODY_LIMIT as u64).unit(" bytes"),
    )]
    pub admin_body_budget: usize,
}

/// Both listeners' configurations, with caps that fit the open-file limit.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// The webhook listener.
    pub intake: ListenerConfig,
    /// The admin listener.
    pub admin: ListenerConfig,
}

impl ListenArgs {
    /// Builds and checks both listeners' configurations. `body_limit` is the intake's;
    /// `db_pool` and `admin` (whether the admin listener runs) size the file reserve.
    pub fn listeners(
        &self,
        admin_args: &AdminListenArgs,
        body_limit: usize,
        db_pool: u32,
        admin: bool,
    ) -> Result<Listeners> {
        let mut intake = ListenerConfig::new("intake", body_limit);
        intake.header_timeout = Duration::from_secs(self.header_timeout);
        intake.idle_timeout = Duration::from_secs(self.idle_timeout);
        intake.body_timeout = Duration::from_secs(self.body_timeout);
        intake.max_connections = self.max_connections;
        intake.body_budget = self.body_budget;
        let mut admin_config = ListenerConfig { name: "admin", body_limit: ADMIN_BODY_LIMIT, ..intake.clone() };
        admin_config.max_connections = admin_args.admin_max_connections;
        admin_config.body_budget = admin_args.admin_body_budget;
        if let Err(e) = intake.validate() {
            bail!("{e}: raise --body-budget (SUBSYNC_BODY_BUDGET) or lower --body-limit (SUBSYNC_BODY_LIMIT)");
        }
        admin_config.validate()?;

        let files = raise_file_limit();
        let reserved = FILES_RESERVED + FILES_PER_DB_CONNECTION * u64::from(db_pool);
        let admin_cap = if admin { admin_config.max_connections } else { 0 };
        // A fifth of what is left is kept for connections being closed (a quarter of the
        // caps: `subsync_listener::closing_slack`), and two files per listener.
        let for_connections = files.saturating_sub(reserved) * 4 / 5;
        let Some((intake_cap, admin_cap)) = fit(for_connections.saturating_sub(4), intake.max_connections, admin_cap)
        else {
            bail!(
                "the open-file limit ({files}) leaves no room for connections beside the {reserved} files kept for \
                 the database pool and the process: raise it (`ulimit -n`, systemd LimitNOFILE=, docker --ulimit nofile=)"
            );
        };
        if intake_cap < intake.max_connections || (admin && admin_cap < admin_config.max_connections) {
            tracing::warn!(
                open_file_limit = files,
                max_connections = intake_cap,
                admin_max_connections = admin_cap,
                "connection caps lowered to fit the open-file limit; raise it (LimitNOFILE=) to allow more"
            );
        }
        intake.max_connections = intake_cap;
        admin_config.max_connections = admin_cap.max(1);
        Ok(Listeners { intake, admin: admin_config })
    }
}

/// Splits `available` file descriptors between the two caps, in proportion, when both do not
/// fit; `None` if not even one connection per running listener fits.
fn fit(available: u64, intake: usize, admin: usize) -> Option<(usize, usize)> {
    let wanted = intake as u64 + admin as u64;
    let needed = 1 + u64::from(admin > 0);
    if available < needed {
        return None;
    }
    if wanted <= available {
        return Some((intake, admin));
    }
    let admin_share = if admin == 0 { 0 } else { (admin as u64 * available / wanted).max(1) };
    let intake_share = (available - admin_share).max(1);
    Some((intake_share as usize, admin_share as usize))
}

/// Raises the soft open-file limit to the hard limit, as Go's runtime does at start, and
/// returns the soft limit in force.
fn raise_file_limit() -> u64 {
    match file_limit::raise() {
        Ok((before, after)) => {
            if after > before {
                tracing::debug!(before, after, "raised the soft open-file limit to the hard limit");
            }
            after
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit; assuming 1024");
            1024
        }
    }
}

/// getrlimit/setrlimit for RLIMIT_NOFILE: the only `unsafe` in subsync, two libc calls.
mod file_limit {
    /// The soft limit before and after raising it to the hard limit (capped at 1,048,576, which
    /// Linux's default `nr_open` allows; "unlimited" hard limits cannot be set as soft).
    pub fn raise() -> std::io::Result<(u64, u64)> {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let before = limit.rlim_cur;
        let target = limit.rlim_max.min(1 << 20);
        if target <= before {
            return Ok((before, before));
        }
        let raised = libc::rlimit { rlim_cur: target, rlim_max: limit.rlim_max };
        // SAFETY: `raised` is a valid rlimit that outlives the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Ok((before, before));
        }
        Ok((before, target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_that_fit_are_kept() {
        assert_eq!(fit(10_000, 1024, 64), Some((1024, 64)));
        assert_eq!(fit(1088, 1024, 64), Some((1024, 64)));
        assert_eq!(fit(10, 1024, 0), Some((10, 0)));
    }

    #[test]
    fn caps_that_do_not_fit_share_the_files_in_proportion() {
        let (intake, admin) = fit(176, 1024, 64).expect("fits");
        assert!(intake + admin <= 176, "{intake} + {admin}");
        assert_eq!(admin, 10);
        assert_eq!(intake, 166);
        assert_eq!(fit(2, 1024, 64), Some((1, 1)), "one connection each at least");
        assert_eq!(fit(1, 1024, 64), None);
        assert_eq!(fit(0, 1024, 0), None);
    }

    #[test]
    fn the_file_limit_is_raised_to_at_most_the_hard_limit() {
        let (before, after) = file_limit::raise().expect("getrlimit");
        assert!(after >= before);
        let (again, unchanged) = file_limit::raise().expect("getrlimit");
        assert_eq!((again, unchanged), (after, after), "a second raise changes nothing");
    }
}
