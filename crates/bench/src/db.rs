//! Throwaway databases for a benchmark run: a temp SQLite file, or a fresh schema on the
//! given PostgreSQL server; both dropped at the end.

use anyhow::{Context, Result};
use subsync_queue::{QueueConfig, Store, StoreOptions};

/// A database that exists for one benchmark.
pub struct BenchDb {
    pub label: &'static str,
    pub store: Store,
    drop_schema: Option<(String, String)>,
    file: Option<std::path::PathBuf>,
}

impl BenchDb {
    pub async fn sqlite(config: QueueConfig) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("subsync-bench-{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite:{}", path.display()), options(config)).await?;
        store.migrate().await?;
        Ok(Self { label: "SQLite", store, drop_schema: None, file: Some(path) })
    }

    pub async fn postgres(url: &str, config: QueueConfig) -> Result<Self> {
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(url).await.context("connect to PostgreSQL")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await?;
        admin.close().await;
        let sep = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        let store = Store::connect(&scoped, options(config)).await?;
        store.migrate().await?;
        Ok(Self { label: "PostgreSQL", store, drop_schema: Some((url.to_string(), schema)), file: None })
    }

    pub async fn close(self) {
        if let Some((url, schema)) = self.drop_schema
            && let Ok(admin) = sqlx::PgPool::connect(&url).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await;
        }
        if let Some(path) = self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

fn options(config: QueueConfig) -> StoreOptions {
    StoreOptions { max_connections: 24, config, ..StoreOptions::default() }
}
