//! Throwaway databases for a benchmark run: the queue's shared test fixture
//! (`subsync_queue::testing`) with a bench-sized pool; both dropped at the end.

use anyhow::{Context, Result, bail};
use subsync_queue::testing::{TestDb, TestDbOptions};
use subsync_queue::{Dialect, QueueConfig, Store, StoreOptions};

/// A database that exists for one benchmark.
pub struct BenchDb {
    pub label: &'static str,
    pub store: Store,
    db: TestDb,
}

impl BenchDb {
    pub async fn sqlite(config: QueueConfig) -> Result<Self> {
        let db = TestDb::open_sqlite(options(config)).await?;
        Ok(Self { label: "SQLite", store: db.store.clone(), db })
    }

    pub async fn postgres(url: &str, config: QueueConfig) -> Result<Self> {
        let url = plain_unless_asked(url);
        let db = TestDb::open_postgres(&url, options(config)).await.context("PostgreSQL for the benchmark")?;
        Ok(Self { label: "PostgreSQL", store: db.store.clone(), db })
    }

    /// Closes the pool, then drops the scratch database. A stage's tasks (a stopped worker's
    /// wake-up listener, say) can outlive it holding a clone of the store, and with it up to
    /// a pool's worth of idle connections: over a report's many stages that ran the server
    /// out of connections (`too many clients already`), and a later stage's intake out of
    /// any (503).
    pub async fn close(self) {
        let closing = async {
            match self.store.pool() {
                Dialect::Sqlite(pool) => pool.close().await,
                Dialect::Postgres(pool) => pool.close().await,
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(10), closing).await.is_err() {
            eprintln!("[{}] a connection was still in use 10 s after the stage ended", self.label);
        }
        self.db.close().await;
    }
}

fn options(config: QueueConfig) -> TestDbOptions {
    TestDbOptions {
        store: StoreOptions { max_connections: 24, config, ..StoreOptions::default() },
        migrate: true,
        prefix: "bench",
    }
}

/// The benchmarks measure the database path on loopback as their peers do (graphile-worker
/// connects without TLS): a URL that does not choose an `sslmode` gets `sslmode=disable`
/// (subsync's own default, libpq's `prefer`, would encrypt against a server offering TLS).
/// Pass `?sslmode=require` to measure with TLS.
fn plain_unless_asked(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_owned()
    } else {
        format!("{url}{}sslmode=disable", if url.contains('?') { '&' } else { '?' })
    }
}

/// Which databases a benchmark command runs on (`--postgres URL`, and SQLite unless
/// `--no-sqlite`): one fresh database each, SQLite first.
#[derive(Debug, Clone, clap::Args)]
pub struct Backends {
    /// PostgreSQL server to benchmark (a scratch schema is created and dropped).
    #[arg(long, env = "SUBSYNC_BENCH_POSTGRES_URL")]
    pub postgres: Option<String>,
    /// Skip the SQLite run.
    #[arg(long)]
    pub no_sqlite: bool,
}

impl Backends {
    /// The chosen backends, as the PostgreSQL URL or `None` for SQLite; an error when none is.
    pub fn chosen(&self) -> Result<Vec<Option<String>>> {
        let mut out = Vec::new();
        if !self.no_sqlite {
            out.push(None);
        }
        if let Some(url) = &self.postgres {
            out.push(Some(url.clone()));
        }
        if out.is_empty() {
            bail!("nothing to run: give --postgres URL or drop --no-sqlite");
        }
        Ok(out)
    }
}

impl BenchDb {
    /// A fresh database on a backend [`Backends::chosen`] named.
    pub async fn open(backend: Option<&str>, config: QueueConfig) -> Result<Self> {
        match backend {
            Some(url) => Self::postgres(url, config).await,
            None => Self::sqlite(config).await,
        }
    }
}
