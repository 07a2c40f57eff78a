//! Flags shared by every command, each with an environment fallback, validated before any
//! work starts so a misconfiguration fails at once with a message that says what to do.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use subsync_queue::schema::{self, SchemaStatus};
use subsync_queue::{QueueConfig, Store, StoreOptions, redact_url};

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Database: `sqlite:<file>` (embedded, created if missing) or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:subsync.db", global = true)]
    pub database_url: String,
    /// Database connections per process.
    #[arg(long, env = "SUBSYNC_DB_POOL", default_value_t = 16, global = true)]
    pub db_pool: u32,
    /// Seconds to wait for a database connection (or SQLite's write lock) before giving up:
    /// the intake then answers 503 and Stripe retries.
    #[arg(long, env = "SUBSYNC_DB_TIMEOUT", default_value_t = 5, global = true)]
    pub db_timeout: u64,
    /// Seconds a worker holds a job without renewing it; a crashed worker's jobs are taken
    /// over after this. Heartbeats renew it every third of it.
    #[arg(long, env = "SUBSYNC_LEASE", default_value_t = 30, global = true)]
    pub lease: u64,
    /// Days finished jobs (and so their event ids) are kept for deduplication.
    #[arg(long, env = "SUBSYNC_RETENTION_DAYS", default_value_t = 30, global = true)]
    pub retention_days: u64,
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "SUBSYNC_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    pub log_format: String,
    /// Log filter, e.g. `info` or `subsync_queue=debug,info`.
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log: String,
}

impl Global {
    /// Connects to the database without touching its schema, with a clear error when it is
    /// unusable.
    pub async fn connect(&self) -> Result<Store> {
        if self.db_pool == 0 {
            bail!("--db-pool (SUBSYNC_DB_POOL) must be at least 1");
        }
        let options = StoreOptions {
            max_connections: self.db_pool,
            acquire_timeout: positive_secs("--db-timeout (SUBSYNC_DB_TIMEOUT)", self.db_timeout)?,
            config: self.queue_config()?,
        };
        Store::connect(&self.database_url, options)
            .await
            .with_context(|| format!("cannot open the database {}", redact_url(&self.database_url)))
    }

    /// [`Global::connect`] for the operator commands: never migrates (a production schema
    /// changes only through `subsync migrate`) and refuses a schema that is missing or older
    /// than this binary, saying to run `subsync migrate`, before any query can fail on it.
    pub async fn connect_migrated(&self) -> Result<Store> {
        let store = self.connect().await?;
        let db = redact_url(&self.database_url);
        match schema::status(&store).await.with_context(|| format!("cannot read the schema version of {db}"))? {
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

    /// The queue settings these flags describe.
    pub fn queue_config(&self) -> Result<QueueConfig> {
        if self.retention_days < 4 {
            bail!("--retention-days (SUBSYNC_RETENTION_DAYS) must be at least 4: Stripe retries deliveries for 3 days");
        }
        Ok(QueueConfig {
            lease: positive_secs("--lease (SUBSYNC_LEASE)", self.lease)?,
            retention: Duration::from_secs(self.retention_days.saturating_mul(86_400)),
            ..QueueConfig::default()
        })
    }

    /// Connects and applies pending migrations (safe to run from several processes at once).
    pub async fn connect_and_migrate(&self) -> Result<Store> {
        let store = self.connect().await?;
        store.migrate().await.context("applying database migrations")?;
        Ok(store)
    }
}

/// Parses `host:port` with a message naming the flag.
pub fn parse_listen(flag: &str, value: &str) -> Result<SocketAddr> {
    value.parse().with_context(|| format!("{flag} `{value}` is not an address like 127.0.0.1:8080"))
}

/// Seconds as a duration, refusing zero where zero makes no sense.
pub fn positive_secs(flag: &str, secs: u64) -> Result<Duration> {
    if secs == 0 {
        bail!("{flag} must be at least 1 second");
    }
    Ok(Duration::from_secs(secs))
}
