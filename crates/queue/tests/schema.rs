//! `schema::status` on a real database, SQLite and PostgreSQL: missing on an empty database
//! (and creating nothing), current after `migrate`, behind when a migration is not applied.

mod support;

use subsync_queue::schema::{self, MIGRATIONS_TABLE, SchemaStatus};
use subsync_queue::{Backend, Dialect, Store, StoreOptions};
use support::PG_ENV;

/// An empty database and a way to count its tables and drop it.
struct Empty {
    store: Store,
    pg: Option<(String, String)>,
    file: Option<std::path::PathBuf>,
}

impl Empty {
    async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("subsync-schema-{}.db", uuid::Uuid::new_v4()));
                let store = Store::connect(&format!("sqlite:{}", path.display()), StoreOptions::default())
                    .await
                    .expect("connect sqlite");
                Self { store, pg: None, file: Some(path) }
            }
            Backend::Postgres => {
                let admin_url = std::env::var(PG_ENV).unwrap_or_else(|_| panic!("{PG_ENV} is not set"));
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let admin = sqlx::PgPool::connect(&admin_url).await.expect("reach PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&admin)
                    .await
                    .expect("create schema");
                admin.close().await;
                let sep = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
                let store = Store::connect(&url, StoreOptions::default()).await.expect("connect postgres");
                Self { store, pg: Some((admin_url, schema)), file: None }
            }
        }
    }

    async fn tables(&self) -> i64 {
        match self.store.pool() {
            Dialect::Sqlite(pool) => sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
                .fetch_one(pool)
                .await
                .unwrap(),
            Dialect::Postgres(pool) => sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            )
            .fetch_one(pool)
            .await
            .unwrap(),
        }
    }

    async fn exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self.store.pool() {
            Dialect::Sqlite(pool) => drop(sqlx::query(sql).execute(pool).await.expect("exec")),
            Dialect::Postgres(pool) => drop(sqlx::query(sql).execute(pool).await.expect("exec")),
        }
    }

    async fn close(self) {
        if let Some((admin_url, schema)) = &self.pg
            && let Ok(admin) = sqlx::PgPool::connect(admin_url).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await;
        }
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

async fn missing_then_current_then_behind(backend: Backend) {
    let db = Empty::new(backend).await;
    assert_eq!(schema::status(&db.store).await.unwrap(), SchemaStatus::Missing);
    assert_eq!(db.tables().await, 0, "checking the schema creates nothing");

    db.store.migrate().await.expect("migrate");
    assert!(schema::status(&db.store).await.unwrap().is_current());

    let last = schema::migrator(backend).iter().map(|m| m.version).max().expect("a migration");
    db.exec(&format!("DELETE FROM {MIGRATIONS_TABLE} WHERE version = {last}")).await;
    assert_eq!(schema::status(&db.store).await.unwrap(), SchemaStatus::Behind { pending: vec![last] });
    db.close().await;
}

#[tokio::test]
async fn sqlite_status() {
    missing_then_current_then_behind(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_status() {
    missing_then_current_then_behind(Backend::Postgres).await;
}
