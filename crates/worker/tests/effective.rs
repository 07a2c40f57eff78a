//! The one definition of current access, held to the SQL view applications read
//! (`subsync_effective_entitlements`), and the per-user `version` the upsert assigns. Both
//! backends; the view reads the database's clock, so rows are seeded around the real now.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::Row;
use subsync_queue::testing::TestDb;
use subsync_queue::{Backend, Dialect, both_backends};
use subsync_worker::entitlements::{self, EntitlementRow};
use subsync_worker::testing::{Seed, put_entitlement, remove_entitlement};

both_backends!(60; view_agrees_with_the_rust_definition, version_grows_only_on_a_change);

/// One row of the view, in Rust types (SQLite: INTEGER ms and 0/1; PostgreSQL: timestamptz, bool).
#[derive(Debug, PartialEq)]
struct ViewRow {
    user_id: String,
    tier: String,
    features: Value,
    status: Option<String>,
    reason: String,
    access_until: Option<DateTime<Utc>>,
    period_end: Option<DateTime<Utc>>,
    version: i64,
    evaluated_at: DateTime<Utc>,
    lapsed: bool,
}

const VIEW: &str = "SELECT user_id, tier, features, status, reason, access_until, period_end, version, \
     evaluated_at, lapsed FROM subsync_effective_entitlements ORDER BY user_id";

fn ms(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(|ms| Utc.timestamp_millis_opt(ms).single().expect("ms in range"))
}

async fn read_view(t: &TestDb) -> Vec<ViewRow> {
    match t.store.pool() {
        Dialect::Sqlite(pool) => sqlx::query(VIEW)
            .fetch_all(pool)
            .await
            .expect("view")
            .iter()
            .map(|r| ViewRow {
                user_id: r.get("user_id"),
                tier: r.get("tier"),
                features: serde_json::from_str(r.get::<&str, _>("features")).expect("features JSON"),
                status: r.get("status"),
                reason: r.get("reason"),
                access_until: ms(r.get("access_until")),
                period_end: ms(r.get("period_end")),
                version: r.get("version"),
                evaluated_at: ms(Some(r.get("evaluated_at"))).expect("evaluated_at"),
                lapsed: r.get::<i64, _>("lapsed") != 0,
            })
            .collect(),
        Dialect::Postgres(pool) => sqlx::query(VIEW)
            .fetch_all(pool)
            .await
            .expect("view")
            .iter()
            .map(|r| ViewRow {
                user_id: r.get("user_id"),
                tier: r.get("tier"),
                features: r.get("features"),
                status: r.get("status"),
                reason: r.get("reason"),
                access_until: r.get("access_until"),
                period_end: r.get("period_end"),
                version: r.get("version"),
                evaluated_at: r.get("evaluated_at"),
                lapsed: r.get("lapsed"),
            })
            .collect(),
    }
}

fn as_view(e: EntitlementRow) -> ViewRow {
    ViewRow {
        user_id: e.user_id,
        tier: e.tier,
        features: serde_json::to_value(&e.features).expect("features"),
        status: e.status,
        reason: e.reason,
        access_until: e.access_until,
        period_end: e.period_end,
        version: e.version,
        evaluated_at: e.evaluated_at,
        lapsed: e.lapsed,
    }
}

/// The view and `list_at` at (about) the same instant; seeded instants are far enough from it.
async fn both_now(t: &TestDb) -> (Vec<ViewRow>, Vec<ViewRow>) {
    let view = read_view(t).await;
    let mut rust: Vec<ViewRow> =
        entitlements::list_at(&t.store, 100, 0, Utc::now()).await.expect("list").into_iter().map(as_view).collect();
    rust.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    (view, rust)
}

async fn view_agrees_with_the_rust_definition(b: Backend) {
    let t = TestDb::new(b).await;
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);
    let soon = now + chrono::Duration::milliseconds(1500);
    let mut seeds = vec![
        Seed::active("u_active", "pro"),
        Seed::active("u_grace_live", "pro").until(now + hour, "past_due_grace"),
        Seed::active("u_grace_over", "pro").until(now - hour, "past_due_grace"),
        Seed::active("u_cancel_over", "basic").until(now - hour, "cancels_at_period_end"),
        Seed::active("u_grace_to_period", "agent").until(now - hour, "past_due_grace"),
        Seed::active("u_soon", "agent").until(soon, "cancels_at_period_end"),
    ];
    seeds[2].period_end = Some(now + hour * 20);
    seeds[4].period_end = Some(now - hour);
    seeds[5].period_end = Some(soon);
    for s in &seeds {
        put_entitlement(&t.store, s).await.expect("seed");
    }

    let (view, rust) = both_now(&t).await;
    assert_eq!(view.len(), seeds.len());
    assert_eq!(view, rust, "the view and the Rust definition agree");
    let by = |rows: &[ViewRow], user: &str| -> (String, String, bool) {
        let r = rows.iter().find(|r| r.user_id == user).expect("row");
        (r.tier.clone(), r.reason.clone(), r.lapsed)
    };
    // The lapse rule itself, not just agreement.
    assert_eq!(by(&view, "u_active"), ("pro".into(), "active".into(), false));
    assert_eq!(by(&view, "u_grace_live"), ("pro".into(), "past_due_grace".into(), false));
    assert_eq!(by(&view, "u_grace_over"), ("free".into(), "grace_expired".into(), true));
    assert_eq!(by(&view, "u_cancel_over"), ("free".into(), "period_ended".into(), true));
    assert_eq!(by(&view, "u_grace_to_period"), ("free".into(), "period_ended".into(), true));
    assert_eq!(by(&view, "u_soon"), ("agent".into(), "cancels_at_period_end".into(), false));
    let free = serde_json::to_value(subsync_domain::TierConfig::default_config().free_features()).unwrap();
    assert_eq!(view.iter().find(|r| r.user_id == "u_grace_over").unwrap().features, free);

    // Across `access_until`: nothing is written, both readers see the lapse.
    let wait = (soon - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(300);
    tokio::time::sleep(wait).await;
    let (view, rust) = both_now(&t).await;
    assert_eq!(view, rust, "the view and the Rust definition agree after access_until");
    assert_eq!(by(&view, "u_soon"), ("free".into(), "period_ended".into(), true));
    t.close().await;
}

async fn version_grows_only_on_a_change(b: Backend) {
    let t = TestDb::new(b).await;
    let seed = Seed::active("u_v", "basic");
    let v1 = put_entitlement(&t.store, &seed).await.expect("insert");
    assert!(v1 > 0, "a written row has a version");
    let read = entitlements::get(&t.store, "u_v").await.unwrap().expect("row");
    assert_eq!(read.version, v1, "readers see the version the upsert returned");

    // The same decision again (another event that changed nothing): same version.
    let mut same = seed.clone();
    same.event_id = "evt_other".into();
    assert_eq!(put_entitlement(&t.store, &same).await.unwrap(), v1, "bookkeeping alone is not a change");

    // Each decision column raises it.
    let mut last = v1;
    let mut changes = Vec::new();
    let mut s = seed.clone();
    s.tier = "pro".into();
    changes.push(s.clone());
    s.features.vat.returns = true;
    changes.push(s.clone());
    s.status = Some("past_due".into());
    changes.push(s.clone());
    s = s.until(Utc::now() + chrono::Duration::days(3), "past_due_grace");
    changes.push(s.clone());
    s.period_end = Some(Utc::now() + chrono::Duration::days(30));
    changes.push(s.clone());
    for (i, change) in changes.iter().enumerate() {
        let v = put_entitlement(&t.store, change).await.unwrap();
        assert!(v > last, "change {i} raised the version: {v} > {last}");
        last = v;
    }

    // Removed and created again: higher than it ever was, not back to 1.
    remove_entitlement(&t.store, "u_v").await.unwrap();
    assert!(entitlements::get(&t.store, "u_v").await.unwrap().is_none());
    let again = put_entitlement(&t.store, &seed).await.unwrap();
    assert!(again > last, "re-created: {again} > {last}");
    t.close().await;
}
