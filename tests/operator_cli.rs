//! The operator commands through the real `subsync` binary against a database `subsync
//! migrate` has not prepared: they never migrate it themselves (a production schema changes
//! only through `subsync migrate`), they say so in one line, and they leave it untouched.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use common::{Backend, TestDb};
use subsync_queue::both_backends;

both_backends!(operator_commands_refuse_an_unmigrated_database, operator_commands_refuse_an_older_schema);

/// Every operator command, read-only and writing; none may create or change the schema.
const COMMANDS: &[&[&str]] = &[
    &["jobs", "list"],
    &["jobs", "show", "evt_1"],
    &["groups", "running"],
    &["stats"],
    &["events", "show", "evt_1"],
    &["entitlements", "list"],
    &["entitlements", "show", "usr_1"],
    &["jobs", "retry", "--state", "dead", "--yes"],
    &["jobs", "cancel", "evt_1"],
    &["events", "replay", "evt_1"],
    &["prune"],
];

async fn run(db: &TestDb, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(common::binary())
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "error")
        .output()
        .await
        .expect("run subsync")
}

async fn tables(db: &TestDb) -> i64 {
    match db.backend {
        Backend::Sqlite => db.count("sqlite_master", "WHERE type = 'table'").await,
        Backend::Postgres => db.count("information_schema.tables", "WHERE table_schema = current_schema()").await,
    }
}

async fn operator_commands_refuse_an_unmigrated_database(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    if let Backend::Sqlite = b {
        // A fresh, empty SQLite file: a valid database without a single table.
        let path = db.url.strip_prefix("sqlite:").expect("sqlite url");
        std::fs::File::create(path).expect("create an empty database file");
    }
    for args in COMMANDS {
        let out = run(&db, args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("has no subsync schema: run `subsync migrate` first"), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(tables(&db).await, 0, "{args:?} created tables");
    }
    // Once migrated, the same commands work.
    assert!(run(&db, &["migrate"]).await.status.success());
    let out = run(&db, &["stats", "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    db.close().await;
}

async fn operator_commands_refuse_an_older_schema(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    assert!(run(&db, &["migrate"]).await.status.success());
    let latest = db.text("SELECT CAST(max(version) AS TEXT) FROM subsync_migrations").await.expect("a migration");
    db.exec(&format!("DELETE FROM subsync_migrations WHERE version = {latest}")).await;
    for args in [&["stats"][..], &["jobs", "list"], &["prune"]] {
        let out = run(&db, args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is older than this subsync (1 migration(s) not applied): run `subsync migrate` first"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(db.count("subsync_migrations", &format!("WHERE version = {latest}")).await, 0, "nothing migrated");
    db.close().await;
}
