//! Flags shared by every command, each with an environment fallback, and the value parsers
//! every command's flags use. Values are checked by clap while it parses, before any work
//! starts, so a misconfiguration fails at once with a message that names the flag and its
//! environment variable (read from the `#[arg]` definition, so they are written once) and
//! says what to do.

use std::ffi::OsStr;
use std::fmt::Display;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Arg, Args};
use subsync_admin::audit::{Actor, ActorError, MAX_ACTOR_CHARS, Via, validate_actor_name};
use subsync_queue::schema::SchemaStatus;
use subsync_queue::{QueueConfig, Store, StoreOptions, redact_url};
use subsync_stripe::signature::Secrets;

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Database: `sqlite:<file>` (embedded, created if missing) or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:subsync.db", global = true)]
    pub database_url: String,
    /// Seconds to wait for a database connection (or SQLite's write lock) before giving up:
    /// the intake then answers 503 and Stripe retries.
    #[arg(
        long, env = "SUBSYNC_DB_TIMEOUT", default_value_t = 5, global = true,
        value_parser = Bounded::<u64>::at_least(1).unit(" second"),
    )]
    pub db_timeout: u64,
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "SUBSYNC_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    pub log_format: String,
    /// Log filter, e.g. `info` or `subsync_queue=debug,info`.
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log: String,
}

/// How the long-running processes (`serve`, `intake`, `worker`) use the database; operator
/// commands need none of it, so their `--help` does not list it.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Database connections per process.
    #[arg(
        long, env = "SUBSYNC_DB_POOL", default_value_t = 16,
        value_parser = Bounded::<u32>::at_least(1),
    )]
    pub db_pool: u32,
    /// Seconds a worker holds a job without renewing it; a crashed worker's jobs are taken
    /// over after this. Heartbeats renew it every third of it.
    #[arg(
        long, env = "SUBSYNC_LEASE", default_value_t = 30,
        value_parser = Bounded::<u64>::at_least(1).unit(" second"),
    )]
    pub lease: u64,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

impl StoreArgs {
    /// The queue settings these flags describe (clap checked each value already).
    pub fn queue_config(&self) -> QueueConfig {
        QueueConfig {
            lease: Duration::from_secs(self.lease),
            retention: self.retention.window(),
            ..QueueConfig::default()
        }
    }
}

/// How long finished jobs, and so their event ids, are kept (`serve`, `intake`, `worker`,
/// `prune`).
#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// Days finished jobs (and so their event ids) are kept for deduplication.
    #[arg(
        long, env = "SUBSYNC_RETENTION_DAYS", default_value_t = 30,
        value_parser = Bounded::<u64>::at_least(4).why(": Stripe retries deliveries for 3 days"),
    )]
    pub retention_days: u64,
}

impl RetentionArgs {
    /// The retention window.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.retention_days.saturating_mul(86_400))
    }
}

/// Connections an operator command opens at most (it runs a query or two at a time).
const OPERATOR_POOL: u32 = 4;

impl Global {
    /// Connects to the database without touching its schema, with a clear error when it is
    /// unusable: for the operator commands (a small pool, default queue settings).
    pub async fn connect(&self) -> Result<Store> {
        self.open(OPERATOR_POOL, QueueConfig::default()).await
    }

    /// [`Global::connect`] with a long-running process's pool size and queue settings.
    pub async fn connect_for(&self, store: &StoreArgs) -> Result<Store> {
        self.open(store.db_pool, store.queue_config()).await
    }

    async fn open(&self, max_connections: u32, config: QueueConfig) -> Result<Store> {
        let options = StoreOptions { max_connections, acquire_timeout: Duration::from_secs(self.db_timeout), config };
        let db = redact_url(&self.database_url);
        Store::connect(&self.database_url, options).await.map_err(|e| {
            // A refused certificate is the usual first-day TLS problem: say what to check.
            let hint = if e.to_string().contains("certificate") {
                " (TLS: the server's certificate was not accepted; point `sslrootcert` at the CA that \
                 signed it, or use sslmode=require to encrypt without verifying)"
            } else {
                ""
            };
            anyhow::Error::new(e).context(format!("cannot open the database {db}{hint}"))
        })
    }

    /// [`Global::connect`] for the operator commands: never migrates (a production schema
    /// changes only through `subsync migrate`) and refuses a schema that is missing or older
    /// than this binary, saying to run `subsync migrate`, before any query can fail on it.
    pub async fn connect_migrated(&self) -> Result<Store> {
        let store = self.connect().await?;
        let db = redact_url(&self.database_url);
        match store.schema_status().await.with_context(|| format!("cannot read the schema version of {db}"))? {
            SchemaStatus::Current => Ok(store),
            SchemaStatus::Missing => {
                bail!(
                    "the database {db} has no subsync schema: run `subsync migrate` first (with the same DATABASE_URL)"
                )
            }
            SchemaStatus::Behind { pending } => bail!(
                "the database {db} is older than this subsync ({} migration(s) not applied): run `subsync migrate` first",
                pending.len()
            ),
        }
    }

    /// [`Global::connect_for`] and applies pending migrations (safe to run from several
    /// processes at once).
    pub async fn connect_and_migrate(&self, store: &StoreArgs) -> Result<Store> {
        let store = self.connect_for(store).await?;
        store.migrate().await.context("applying database migrations")?;
        Ok(store)
    }
}

/// Who runs an acting command (`jobs retry`, `jobs cancel`, `events replay`), recorded in the
/// audit log. Only those commands take it, so read-only commands' `--help` does not list it.
#[derive(Debug, Clone, Default, Args)]
pub struct ActorArgs {
    /// Who is acting, for the audit log (1-100 characters, no control characters; default:
    /// $USER@hostname).
    #[arg(long, env = "SUBSYNC_ACTOR", value_name = "NAME", value_parser = ActorName)]
    pub actor: Option<String>,
}

impl ActorArgs {
    /// The actor to record: `--actor` (checked by clap already), else `user@host`.
    pub fn actor(&self) -> Result<Actor, ActorError> {
        Actor::new(&self.actor.clone().unwrap_or_else(default_actor_name), Via::Cli)
    }
}

/// `$USER@hostname` (`LOGNAME` if `USER` is unset; `HOSTNAME`, else `/etc/hostname`), control
/// characters dropped and cut to the longest name allowed.
pub(crate) fn default_actor_name() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}").chars().filter(|c| !c.is_control()).take(MAX_ACTOR_CHARS).collect()
}

/// The `--actor` flag's parser: the audit log's own validation, in clap's message form.
#[derive(Debug, Clone, Copy)]
pub struct ActorName;

impl TypedValueParser for ActorName {
    type Value = String;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&Arg>, value: &OsStr) -> Result<String, clap::Error> {
        let text = value.to_str().ok_or_else(|| invalid(cmd, format!("{} is not UTF-8", flag_name(arg))))?;
        validate_actor_name(text).map_err(|e| invalid(cmd, format!("{}: {e}", flag_name(arg))))
    }
}

/// How a flag is named in messages: `--flag (ENV)`, from its clap definition.
pub(crate) fn flag_name(arg: Option<&Arg>) -> String {
    let Some(arg) = arg else { return "a value".to_string() };
    let flag = match arg.get_long() {
        Some(long) => format!("--{long}"),
        None => arg.get_id().to_string(),
    };
    match arg.get_env() {
        Some(env) => format!("{flag} ({})", env.to_string_lossy()),
        None => flag,
    }
}

/// A value clap refused, with our message (clap prefixes `error: `).
pub(crate) fn invalid(cmd: &clap::Command, message: impl Display) -> clap::Error {
    clap::Error::raw(ErrorKind::ValueValidation, format!("{message}\n")).with_cmd(cmd)
}

/// A whole-number flag that must lie in `min..=max`: `value_parser = Bounded::<u32>::at_least(1)`.
/// Its error keeps the wording operators know (`--lease (SUBSYNC_LEASE) must be at least 1
/// second`) and can say why the bound exists.
#[derive(Debug)]
pub struct Bounded<T> {
    min: u64,
    max: u64,
    unit: &'static str,
    why: &'static str,
    ty: PhantomData<fn() -> T>,
}

impl<T> Clone for Bounded<T> {
    fn clone(&self) -> Self {
        Self { ty: PhantomData, ..*self }
    }
}

impl<T> Bounded<T> {
    /// At least `min`.
    pub const fn at_least(min: u64) -> Self {
        Self { min, max: u64::MAX, unit: "", why: "", ty: PhantomData }
    }

    /// At most `max`.
    pub const fn at_most(max: u64) -> Self {
        Self { min: 0, max, unit: "", why: "", ty: PhantomData }
    }

    /// `min..=max`.
    pub const fn between(min: u64, max: u64) -> Self {
        Self { min, max, unit: "", why: "", ty: PhantomData }
    }

    /// The unit after the bound in messages, with its leading space (`" second"`).
    pub const fn unit(mut self, unit: &'static str) -> Self {
        self.unit = unit;
        self
    }

    /// Why the bound exists, appended to the message (`": every request may wait that long"`).
    pub const fn why(mut self, why: &'static str) -> Self {
        self.why = why;
        self
    }

    fn check(&self, name: &str, text: &str) -> Result<u64, String> {
        let (min, max, unit, why) = (self.min, self.max, self.unit, self.why);
        let n: u64 = text.trim().parse().map_err(|_| format!("{name} `{text}` is not a whole number"))?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else if max == u64::MAX {
            Err(format!("{name} must be at least {min}{unit}{why}"))
        } else if min == 0 {
            Err(format!("{name} must be at most {max}{unit}{why}"))
        } else {
            Err(format!("{name} must be between {min} and {max}{unit}{why}"))
        }
    }
}

impl<T: TryFrom<u64> + Clone + Send + Sync + 'static> TypedValueParser for Bounded<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        let name = flag_name(arg);
        let text = value.to_string_lossy();
        let n = self.check(&name, &text).map_err(|m| invalid(cmd, m))?;
        T::try_from(n).map_err(|_| invalid(cmd, format!("{name} `{text}` is too large")))
    }
}

/// A `host:port` listen address flag: `value_parser = ListenAddr`.
#[derive(Debug, Clone, Copy)]
pub struct ListenAddr;

impl TypedValueParser for ListenAddr {
    type Value = SocketAddr;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&Arg>, value: &OsStr) -> Result<SocketAddr, clap::Error> {
        let text = value.to_string_lossy();
        text.parse()
            .map_err(|_| invalid(cmd, format!("{} `{text}` is not an address like 127.0.0.1:8080", flag_name(arg))))
    }
}

/// The webhook signing secret(s) flag: `value_parser = WebhookSecrets`. The error says what is
/// wrong without ever echoing the value (a wrongly pasted value may be an API key).
#[derive(Debug, Clone, Copy)]
pub struct WebhookSecrets;

impl TypedValueParser for WebhookSecrets {
    type Value = Secrets;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&Arg>, value: &OsStr) -> Result<Secrets, clap::Error> {
        Secrets::parse(&value.to_string_lossy()).map_err(|e| invalid(cmd, format!("{}: {e}", flag_name(arg))))
    }
}

/// The application keys flag: `value_parser = AppKeysFlag`. Like the webhook secrets, the
/// error names the bad key by position, never by value.
#[derive(Debug, Clone, Copy)]
pub struct AppKeysFlag;

impl TypedValueParser for AppKeysFlag {
    type Value = subsync_appapi::AppKeys;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<subsync_appapi::AppKeys, clap::Error> {
        subsync_appapi::AppKeys::parse(&value.to_string_lossy())
            .map_err(|e| invalid(cmd, format!("{}: {e}", flag_name(arg))))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[arg(
            long, env = "SUBSYNC_TEST_BOUNDED", default_value_t = 2,
            value_parser = Bounded::<u32>::between(1, 10).unit(" rows"),
        )]
        n: u32,
        #[arg(long, default_value_t = 0, value_parser = Bounded::<u8>::at_most(1000).why(": too slow"))]
        small: u8,
        #[arg(long, value_parser = ListenAddr)]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        who: ActorArgs,
    }

    fn error(args: &[&str]) -> String {
        let mut argv = vec!["t"];
        argv.extend_from_slice(args);
        Flags::try_parse_from(argv).expect_err("refused").to_string()
    }

    #[test]
    fn the_default_actor_is_user_at_host_and_always_valid() {
        let name = default_actor_name();
        assert!(name.contains('@'), "{name}");
        assert!(validate_actor_name(&name).is_ok(), "{name}");
        assert_eq!(ActorArgs::default().actor().unwrap().via(), Via::Cli);
    }

    #[test]
    fn messages_name_the_flag_and_its_environment_variable() {
        assert_eq!(Flags::try_parse_from(["t", "--n", "10"]).unwrap().n, 10);
        assert!(error(&["--n", "0"]).contains("--n (SUBSYNC_TEST_BOUNDED) must be between 1 and 10 rows"));
        assert!(error(&["--n", "x"]).contains("--n (SUBSYNC_TEST_BOUNDED) `x` is not a whole number"));
        assert!(error(&["--small", "1001"]).contains("--small must be at most 1000: too slow"));
        assert!(error(&["--small", "300"]).contains("--small `300` is too large"));
        assert!(error(&["--listen", "8080"]).contains("--listen `8080` is not an address like 127.0.0.1:8080"));
        assert!(error(&["--actor", ""]).contains("--actor (SUBSYNC_ACTOR): the actor name is empty"));
        assert!(error(&["--actor", "a\u{1b}[31m"]).contains("control characters"));
        assert!(error(&["--actor", &"x".repeat(101)]).contains("at most 100"));
        let named = Flags::try_parse_from(["t", "--actor", " alice "]).unwrap();
        assert_eq!(named.who.actor().unwrap().name(), "alice");
        let flags = Flags::try_parse_from(["t", "--listen", "127.0.0.1:9"]).unwrap();
        assert_eq!(flags.listen, Some("127.0.0.1:9".parse().unwrap()));
    }
}
