//! Throwaway databases for tests and benchmarks (cargo feature `testing`).
//!
//! One fixture for every crate's tests, the real-binary tests and the benchmarks, so the way
//! a test database is made, scoped and dropped cannot drift between copies:
//! - [`TestDb`]: a temp SQLite file, or a fresh schema on the PostgreSQL server named by
//!   [`POSTGRES_URL_ENV`], migrated (unless asked not to), with its [`Store`], its URL (for
//!   PostgreSQL scoped to the schema with `options=-c search_path=…`, so a `subsync` child
//!   process can be pointed at it) and raw-SQL helpers; removed by [`TestDb::close`], or on
//!   drop if a test panicked first.
//! - [`both_backends!`](crate::both_backends): one `async fn(Backend)` body, run as
//!   `sqlite::name` and `postgres::name` tests, each bounded in time.
//!
//! PostgreSQL is never optional: when [`POSTGRES_URL_ENV`] is unset or the server does not
//! answer, the panicking constructors fail the test with a message saying so.

pub mod seed;

use std::path::PathBuf;
use std::time::Duration;

use sqlx::Connection;

use crate::{Backend, QueueConfig, QueueError, Store, StoreOptions, redact_url};

/// Environment variable naming the PostgreSQL server the test suites run against.
pub const POSTGRES_URL_ENV: &str = "SUBSYNC_TEST_POSTGRES_URL";

/// How long creating or dropping a schema may wait for the server before giving up.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a throwaway database could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TestDbError {
    /// PostgreSQL tests were asked for but no server was named.
    #[error(
        "{POSTGRES_URL_ENV} is not set: these tests need PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/test). \
         Run `bash scripts/test.sh`, which starts one and sets it."
    )]
    NoPostgresUrl,
    /// The PostgreSQL server did not answer (or refused us) in time.
    #[error("cannot reach PostgreSQL at {url}: {reason}")]
    Unreachable {
        /// The server URL, password redacted.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Creating the schema failed.
    #[error("cannot create schema {schema}: {source}")]
    CreateSchema {
        /// The schema we tried to create.
        schema: String,
        /// The server's answer.
        source: sqlx::Error,
    },
    /// Connecting the store or migrating failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// How to make a [`TestDb`].
#[derive(Debug, Clone)]
pub struct TestDbOptions {
    /// Options of the [`Store`] the fixture opens (queue settings, pool size).
    pub store: StoreOptions,
    /// Apply the migrations. Off for databases a `subsync` child process migrates itself.
    pub migrate: bool,
    /// Start of the schema and file names, so a leftover says who made it.
    pub prefix: &'static str,
}

impl Default for TestDbOptions {
    fn default() -> Self {
        Self { store: StoreOptions::default(), migrate: true, prefix: "subsync_test" }
    }
}

impl TestDbOptions {
    /// Defaults with these queue settings.
    pub fn with_config(config: QueueConfig) -> Self {
        Self { store: StoreOptions { config, ..StoreOptions::default() }, ..Self::default() }
    }
}

/// Queue settings with fast retries (20 ms base, 200 ms cap), so failure paths finish
/// within a test.
pub fn fast_config() -> QueueConfig {
    let mut cfg = QueueConfig::default();
    cfg.retry.base = Duration::from_millis(20);
    cfg.retry.cap = Duration::from_millis(200);
    cfg
}

/// The PostgreSQL server named by [`POSTGRES_URL_ENV`].
pub fn postgres_url_from_env() -> Result<String, TestDbError> {
    std::env::var(POSTGRES_URL_ENV).ok().filter(|url| !url.is_empty()).ok_or(TestDbError::NoPostgresUrl)
}

/// `url` with every connection's `search_path` set to `schema`.
pub fn scoped_url(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// What to remove when the database is no longer needed.
#[derive(Debug)]
enum Cleanup {
    File(PathBuf),
    Schema { server_url: String, schema: String },
}

/// A throwaway database: a temp SQLite file, or a fresh schema on a PostgreSQL server.
#[derive(Debug)]
pub struct TestDb {
    /// Which database this is.
    pub backend: Backend,
    /// URL of this database: `sqlite:<temp file>`, or the server URL scoped to the schema.
    pub url: String,
    /// A store on it, opened with the options the fixture was given.
    pub store: Store,
    /// `None` once cleaned up.
    cleanup: Option<Cleanup>,
}

impl TestDb {
    /// A migrated database with default queue settings. Panics (never skips) when it cannot
    /// be made, e.g. PostgreSQL is not configured or does not answer.
    pub async fn new(backend: Backend) -> Self {
        Self::with_options(backend, TestDbOptions::default()).await
    }

    /// A database for a `subsync` child process, which migrates it itself: created and
    /// scoped like [`TestDb::new`], but not migrated.
    pub async fn unmigrated(backend: Backend) -> Self {
        Self::with_options(backend, TestDbOptions { migrate: false, ..TestDbOptions::default() }).await
    }

    /// [`TestDb::new`] with these queue settings.
    pub async fn with_config(backend: Backend, config: QueueConfig) -> Self {
        Self::with_options(backend, TestDbOptions::with_config(config)).await
    }

    /// [`TestDb::new`] with these options; PostgreSQL from [`POSTGRES_URL_ENV`].
    pub async fn with_options(backend: Backend, options: TestDbOptions) -> Self {
        let made = match backend {
            Backend::Sqlite => Self::open_sqlite(options).await,
            Backend::Postgres => match postgres_url_from_env() {
                Ok(url) => Self::open_postgres(&url, options).await,
                Err(e) => Err(e),
            },
        };
        made.unwrap_or_else(|e| match backend {
            Backend::Sqlite => panic!("cannot make a SQLite test database: {e}"),
            Backend::Postgres => panic!("cannot make a PostgreSQL test database (server: {POSTGRES_URL_ENV}): {e}"),
        })
    }

    /// A temp SQLite file.
    pub async fn open_sqlite(options: TestDbOptions) -> Result<Self, TestDbError> {
        let path = std::env::temp_dir().join(format!("{}-{}.db", options.prefix, uuid::Uuid::new_v4()));
        let url = format!("sqlite:{}", path.display());
        Self::open(Backend::Sqlite, url, Cleanup::File(path), &options).await
    }

    /// A fresh schema on the PostgreSQL server at `server_url`.
    pub async fn open_postgres(server_url: &str, options: TestDbOptions) -> Result<Self, TestDbError> {
        let schema = format!("{}_{}", options.prefix, uuid::Uuid::new_v4().simple());
        let mut admin = admin_connection(server_url).await?;
        let created = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut admin).await;
        let _ = admin.close().await;
        created.map_err(|source| TestDbError::CreateSchema { schema: schema.clone(), source })?;
        let url = scoped_url(server_url, &schema);
        let cleanup = Cleanup::Schema { server_url: server_url.to_string(), schema };
        Self::open(Backend::Postgres, url, cleanup, &options).await
    }

    /// Opens the store on a database just made, and migrates it; removes the database if
    /// either fails.
    async fn open(
        backend: Backend,
        url: String,
        cleanup: Cleanup,
        options: &TestDbOptions,
    ) -> Result<Self, TestDbError> {
        let store = match Store::connect(&url, options.store.clone()).await {
            Ok(store) => store,
            Err(e) => {
                clean(cleanup).await;
                return Err(e.into());
            }
        };
        let mut db = Self { backend, url, store, cleanup: Some(cleanup) };
        if options.migrate
            && let Err(e) = db.store.migrate().await
        {
            if let Some(cleanup) = db.cleanup.take() {
                clean(cleanup).await;
            }
            return Err(e.into());
        }
        Ok(db)
    }

    /// Another store on the same database with its own pool: another process, in effect.
    pub async fn another_process(&self, config: QueueConfig) -> Store {
        Store::connect(&self.url, StoreOptions { config, ..StoreOptions::default() })
            .await
            .unwrap_or_else(|e| panic!("cannot open another store on the test database: {e}"))
    }

    /// PostgreSQL: the schema's URL through another `host:port` (a proxy in front of the
    /// server, say). `None` on SQLite.
    pub fn url_via(&self, host_port: &str) -> Option<String> {
        let Some(Cleanup::Schema { server_url, schema }) = &self.cleanup else { return None };
        let (scheme, rest) = server_url.split_once("://")?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let user = authority.rfind('@').map(|at| &authority[..=at]).unwrap_or("");
        Some(scoped_url(&format!("{scheme}://{user}{host_port}{tail}"), schema))
    }

    /// Runs one SQL statement on its own connection (not the store's pool).
    pub async fn exec(&self, sql: &str) {
        let raw = || sqlx::AssertSqlSafe(sql.to_string());
        let done = match self.backend {
            Backend::Sqlite => {
                let mut conn = self.sqlite_connection().await;
                let done = sqlx::query(raw()).execute(&mut conn).await.map(drop);
                let _ = conn.close().await;
                done
            }
            Backend::Postgres => {
                let mut conn = self.postgres_connection().await;
                let done = sqlx::query(raw()).execute(&mut conn).await.map(drop);
                let _ = conn.close().await;
                done
            }
        };
        done.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Counts rows of `table`, `condition` being empty or e.g. `WHERE state = 'dead'`.
    pub async fn count(&self, table: &str, condition: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table} {condition}");
        let raw = || sqlx::AssertSqlSafe(sql.clone());
        let n = match self.backend {
            Backend::Sqlite => {
                let mut conn = self.sqlite_connection().await;
                let n = sqlx::query_scalar(raw()).fetch_one(&mut conn).await;
                let _ = conn.close().await;
                n
            }
            Backend::Postgres => {
                let mut conn = self.postgres_connection().await;
                let n = sqlx::query_scalar(raw()).fetch_one(&mut conn).await;
                let _ = conn.close().await;
                n
            }
        };
        n.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The text column of the first row `sql` returns, if any.
    pub async fn text(&self, sql: &str) -> Option<String> {
        let raw = || sqlx::AssertSqlSafe(sql.to_string());
        let v = match self.backend {
            Backend::Sqlite => {
                let mut conn = self.sqlite_connection().await;
                let v = sqlx::query_scalar(raw()).fetch_optional(&mut conn).await;
                let _ = conn.close().await;
                v
            }
            Backend::Postgres => {
                let mut conn = self.postgres_connection().await;
                let v = sqlx::query_scalar(raw()).fetch_optional(&mut conn).await;
                let _ = conn.close().await;
                v
            }
        };
        v.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn sqlite_connection(&self) -> sqlx::SqliteConnection {
        sqlx::SqliteConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot open the test database {}: {e}", self.url))
    }

    async fn postgres_connection(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot open the test database {}: {e}", redact_url(&self.url)))
    }

    /// Drops the schema or deletes the file (with its `-wal`/`-shm`). Dropping a `TestDb`
    /// without calling this does the same, blocking.
    pub async fn close(mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            clean(cleanup).await;
        }
    }
}

impl Drop for TestDb {
    /// The fallback for a test that panicked (or forgot) before [`TestDb::close`].
    fn drop(&mut self) {
        let Some(cleanup) = self.cleanup.take() else { return };
        // Drop cannot await, and may run inside a runtime: clean up on a thread of our own.
        let cleaner = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(clean(cleanup));
            }
        });
        let _ = cleaner.join();
    }
}

/// One connection to the server, for creating and dropping schemas.
async fn admin_connection(server_url: &str) -> Result<sqlx::PgConnection, TestDbError> {
    let unreachable = |reason: String| TestDbError::Unreachable { url: redact_url(server_url), reason };
    match tokio::time::timeout(ADMIN_TIMEOUT, sqlx::PgConnection::connect(server_url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {ADMIN_TIMEOUT:?}"))),
    }
}

/// Removes what `cleanup` names; best effort (a leftover must not fail a test).
async fn clean(cleanup: Cleanup) {
    match cleanup {
        Cleanup::File(path) => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        Cleanup::Schema { server_url, schema } => {
            let deadline = tokio::time::Instant::now() + ADMIN_TIMEOUT;
            let dropping = async {
                let mut admin = admin_connection(&server_url).await.ok()?;
                // A worker the test left running may still hold locks on the schema's tables,
                // and the server may pick our DROP as a deadlock victim: try again.
                while sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                    .execute(&mut admin)
                    .await
                    .is_err()
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = admin.close().await;
                Some(())
            };
            let _ = tokio::time::timeout_at(deadline, dropping).await;
        }
    }
}

/// Runs each named `async fn(Backend)` as two tests, `sqlite::name` and `postgres::name`,
/// each bounded in time (seconds; 120 unless given first, as in `both_backends!(90; a, b)`).
///
/// The calling crate needs `tokio` with the `macros`, `rt-multi-thread` and `time` features.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $crate::both_backends!(120; $($name),*);
    };
    ($limit:expr; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let run = super::$name($crate::Backend::Sqlite);
                    tokio::time::timeout(std::time::Duration::from_secs($limit), run).await.expect("test timed out");
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let run = super::$name($crate::Backend::Postgres);
                    tokio::time::timeout(std::time::Duration::from_secs($limit), run).await.expect("test timed out");
                }
            )*
        }
    };
}
