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
    cli_actions_are_audited_under_their_actor,
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
    &["audit", "list"],
    &["jobs", "retry", "--state", "dead", "--yes"],
    &["jobs", "cancel", "evt_1"],
    &["events", "replay", "evt_1"],
    &["prune"],
];

async fn run(db: &TestDb, args: &[&str]) -> std::process::Output {
    run_env(db, args, &[]).await
}

/// [`run`] with extra environment variables (and no inherited `SUBSYNC_ACTOR`).
async fn run_env(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(common::binary());
    cmd.args(args).env("DATABASE_URL", &db.url).env("RUST_LOG", "error").env_remove("SUBSYNC_ACTOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run subsync")
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

/// `jobs retry`, `jobs cancel` and `events replay` through the real binary are recorded under
/// `--actor`, `SUBSYNC_ACTOR` or `$USER@hostname`, failures with their error, and `audit list`
/// shows them newest first; only the acting commands take `--actor`.
async fn cli_actions_are_audited_under_their_actor(b: Backend) {
    let db = TestDb::new(b).await;
    let job = subsync_queue::testing::seed::seed_dead(&db.store, "evt_c1", "sub_c", "boom").await.to_string();
    let ok = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    ok(&run(&db, &["jobs", "retry", "evt_c1", "--actor", "alice"]).await);
    let again = run(&db, &["jobs", "retry", "evt_c1", "--actor", "alice"]).await;
    assert_eq!(again.status.code(), Some(1), "a pending job cannot be retried");
    ok(&run_env(&db, &["jobs", "cancel", "evt_c1"], &[("SUBSYNC_ACTOR", "bob")]).await);
    let default = [("USER", "carol"), ("HOSTNAME", "box-1")];
    let replay = run_env(&db, &["events", "replay", "evt_nope"], &default).await;
    assert_eq!(replay.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&replay.stderr).contains("no stored event with id `evt_nope`"));
    ok(&run_env(&db, &["jobs", "retry", "--state", "cancelled", "--yes"], &default).await);

    let bad = run(&db, &["jobs", "retry", "evt_c1", "--actor", ""]).await;
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("--actor (SUBSYNC_ACTOR): the actor name is empty"), "{err}");

    let listed = run(&db, &["audit", "list", "--json"]).await;
    ok(&listed);
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let rows: Vec<(String, String, String, String, u64, bool)> = json["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("actor"), s("via"), s("action"), s("target"), e["jobs"].as_u64().unwrap(), e["ok"] == true)
        })
        .collect();
    let row = |a: &str, action: &str, target: &str, jobs: u64, ok: bool| {
        (a.to_string(), "cli".to_string(), action.to_string(), target.to_string(), jobs, ok)
    };
    assert_eq!(
        rows,
        vec![
            row("carol@box-1", "bulk_retry", "state=cancelled", 1, true),
            row("carol@box-1", "replay", "evt_nope", 0, false),
            row("bob", "cancel", &job, 1, true),
            row("alice", "retry", &job, 0, false),
            row("alice", "retry", &job, 1, true),
        ]
    );
    let entries = json["entries"].as_array().expect("entries");
    assert_eq!(entries[1]["error"], "no stored event with id `evt_nope`");
    assert!(entries[3]["error"].as_str().unwrap_or_default().contains("is pending"), "{}", entries[3]);

    let table = run(&db, &["audit", "list", "--actor", "alice", "--since", "1h", "--limit", "1"]).await;
    ok(&table);
    let text = String::from_utf8_lossy(&table.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("AT (UTC)") && lines[0].contains("ACTOR"), "{text}");
    assert!(lines[1].contains("alice") && lines[1].contains("retry") && lines[1].contains("error: job"), "{text}");
    assert!(lines[2].starts_with("showing the newest 1"), "{text}");
    let refused = run(&db, &["audit", "list", "--limit", "0"]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));

    for (args, has_actor) in [
        (&["jobs", "retry", "--help"][..], true),
        (&["jobs", "cancel", "--help"], true),
        (&["events", "replay", "--help"], true),
        (&["jobs", "list", "--help"], false),
        (&["events", "show", "--help"], false),
        (&["audit", "list", "--help"], false), // its --actor filters; it does not act
    ] {
        let help = String::from_utf8_lossy(&run(&db, args).await.stdout).into_owned();
        assert_eq!(help.contains("Who is acting, for the audit log"), has_actor, "{args:?}: {help}");
    }
    db.close().await;
}
