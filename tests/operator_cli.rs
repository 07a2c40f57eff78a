//! The operator commands through the real `subsync` binary against a database `subsync
//! migrate` has not prepared: they never migrate it themselves (a production schema changes
//! only through `subsync migrate`), they say so in one line, and they leave it untouched.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use common::{Backend, TestDb};
use subsync_queue::both_backends;

both_backends!(
    operator_commands_refuse_an_unmigrated_database,
    operator_commands_refuse_an_older_schema,
    tiers_check_and_unmapped,
);

/// Every operator command, read-only and writing; none may create or change the schema.
const COMMANDS: &[&[&str]] = &[
    &["jobs", "list"],
    &["jobs", "show", "evt_1"],
    &["groups", "running"],
    &["stats"],
    &["events", "show", "evt_1"],
    &["entitlements", "list"],
    &["entitlements", "show", "usr_1"],
    &["tiers", "unmapped"],
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

/// `tiers check` validates a file offline (no database at all); `tiers unmapped` lists what
/// the worker recorded, with the closest mapped key.
async fn tiers_check_and_unmapped(b: Backend) {
    let db = TestDb::new(b).await;
    let ok = run(&db, &["tiers", "check"]).await;
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{out}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(out.contains("is valid") && out.contains("free, basic, pro, agent"), "{out}");

    let bad = std::env::temp_dir().join(format!("subsync-tiers-{}.toml", uuid::Uuid::new_v4().simple()));
    let text = format!("{}\n[[prices]]\nlookup_key = \"x\"\naddon = \"nope\"\n", subsync_domain::DEFAULT_TIERS_TOML);
    std::fs::write(&bad, text).expect("write tier file");
    let refused = run(&db, &["tiers", "check", bad.to_str().expect("utf-8 path")]).await;
    let err = String::from_utf8_lossy(&refused.stderr);
    let _ = std::fs::remove_file(&bad);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown add-on \"nope\"") && err.contains(".toml:"), "names the file and line: {err}");

    let none = run(&db, &["tiers", "unmapped"]).await;
    assert!(String::from_utf8_lossy(&none.stdout).contains("no unmapped prices seen"), "{none:?}");
    let now = match b {
        Backend::Sqlite => chrono::Utc::now().timestamp_millis().to_string(),
        Backend::Postgres => "now()".to_owned(),
    };
    db.exec(&format!(
        "INSERT INTO subsync_unmapped_prices (event_id, price_id, lookup_key, subscription_id, effect, at) VALUES \
         ('evt_a', 'price_x', 'PRO_MONTHLY', 'sub_1', 'ignored', {now}), \
         ('evt_b', 'price_x', 'PRO_MONTHLY', 'sub_2', 'dead', {now})"
    ))
    .await;
    let listed = run(&db, &["tiers", "unmapped", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(rows[0]["price_id"], "price_x", "{rows}");
    assert_eq!((rows[0]["events"].as_i64(), rows[0]["subscriptions"].as_i64()), (Some(2), Some(2)));
    assert_eq!(rows[0]["effect"], "dead", "the worst effect");
    assert_eq!(rows[0]["closest_mapped_key"], "pro_monthly", "a near miss is suggested, never matched");
    db.close().await;
}
