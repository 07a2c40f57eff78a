//! `Store::schema_status` on a real database, SQLite and PostgreSQL: missing on an empty database
//! (and creating nothing), current after `migrate`, behind when a migration is not applied.

use subsync_queue::schema::{self, MIGRATIONS_TABLE, SchemaStatus};
use subsync_queue::testing::TestDb;
use subsync_queue::{Backend, both_backends};

/// How many tables the test database has.
async fn tables(db: &TestDb) -> i64 {
    match db.backend {
        Backend::Sqlite => db.count("sqlite_master", "WHERE type = 'table'").await,
        Backend::Postgres => db.count("information_schema.tables", "WHERE table_schema = current_schema()").await,
    }
}

async fn missing_then_current_then_behind(backend: Backend) {
    let db = TestDb::unmigrated(backend).await;
    assert_eq!(db.store.schema_status().await.unwrap(), SchemaStatus::Missing);
    assert_eq!(tables(&db).await, 0, "checking the schema creates nothing");

    db.store.migrate().await.expect("migrate");
    assert!(db.store.schema_status().await.unwrap().is_current());

    let last = schema::migrator(backend).iter().map(|m| m.version).max().expect("a migration");
    db.exec(&format!("DELETE FROM {MIGRATIONS_TABLE} WHERE version = {last}")).await;
    assert_eq!(db.store.schema_status().await.unwrap(), SchemaStatus::Behind { pending: vec![last] });
    db.close().await;
}

both_backends!(missing_then_current_then_behind);
