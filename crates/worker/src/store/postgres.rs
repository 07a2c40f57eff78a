//! The PostgreSQL dialect: many workers on many machines. Rows a transaction will rewrite
//! are locked first (`FOR UPDATE`, per-user advisory locks) so concurrent jobs of different
//! subscriptions that share a user never lose each other's writes.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use super::{
    EventOutcomeRow, HistoryRow, HistoryWrite, OutcomeWrite, StoredEntitlement, StoredSummary, SubscriptionRow,
    SubscriptionWrite, UnmappedPriceRow, UnmappedWrite, UserView, VersionedEntitlement, effect_name, unmapped_summary,
    user_features_sql, version_on_conflict,
};
use crate::error::WorkerError;

const ENTITLEMENT_COLUMNS: &str = "user_id, user_source, tier, features, lapse_tier, lapse_features, \
     subscription_id, status, reason, plan_tier, access_until, period_end, updated_at, evaluated_at, last_event_id, version";

/// First key of our advisory locks, so they never collide with another application's.
const USER_LOCK_SPACE: i32 = 0x5355_4253; // "SUBS"
/// Advisory lock space for customers' Stripe Entitlements (taken before any user lock).
const CUSTOMER_LOCK_SPACE: i32 = 0x4355_5354; // "CUST"

fn decode_entitlement(row: &PgRow) -> Result<StoredEntitlement, WorkerError> {
    Ok(StoredEntitlement {
        user_id: row.try_get("user_id")?,
        user_source: row.try_get("user_source")?,
        tier: row.try_get("tier")?,
        features: row.try_get("features")?,
        lapse_tier: row.try_get("lapse_tier")?,
        lapse_features: row.try_get("lapse_features")?,
        subscription_id: row.try_get("subscription_id")?,
        status: row.try_get("status")?,
        reason: row.try_get("reason")?,
        plan_tier: row.try_get("plan_tier")?,
        access_until: row.try_get("access_until")?,
        period_end: row.try_get("period_end")?,
        updated_at: row.try_get("updated_at")?,
        evaluated_at: row.try_get("evaluated_at")?,
        last_event_id: row.try_get("last_event_id")?,
    })
}

fn decode_versioned(row: &PgRow) -> Result<VersionedEntitlement, WorkerError> {
    Ok(VersionedEntitlement { row: decode_entitlement(row)?, version: row.try_get("version")? })
}

fn decode_subscription(row: &PgRow) -> Result<SubscriptionRow, WorkerError> {
    Ok(SubscriptionRow { state: row.try_get("state")?, user_id: row.try_get("user_id")? })
}

pub(super) async fn lock_subscription(c: &mut PgConnection, id: &str) -> Result<Option<SubscriptionRow>, WorkerError> {
    let row = sqlx::query("SELECT state, user_id FROM subsync_subscriptions WHERE subscription_id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(decode_subscription).transpose()
}

pub(super) async fn subscription(pool: &PgPool, id: &str) -> Result<Option<SubscriptionRow>, WorkerError> {
    let row = sqlx::query("SELECT state, user_id FROM subsync_subscriptions WHERE subscription_id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(decode_subscription).transpose()
}

pub(super) async fn save_subscription(c: &mut PgConnection, w: &SubscriptionWrite<'_>) -> Result<(), WorkerError> {
    sqlx::query(
        "INSERT INTO subsync_subscriptions (subscription_id, state, user_id, customer_id, status, updated_at, last_event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (subscription_id) DO UPDATE SET state = excluded.state, user_id = excluded.user_id, \
           customer_id = excluded.customer_id, status = excluded.status, updated_at = excluded.updated_at, \
           last_event_id = excluded.last_event_id",
    )
    .bind(w.subscription_id)
    .bind(&w.state)
    .bind(w.user_id)
    .bind(w.customer_id)
    .bind(w.status)
    .bind(w.at)
    .bind(w.event_id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

static USER_VIEW: LazyLock<String> = LazyLock::new(|| super::user_view_sql(ENTITLEMENT_COLUMNS, "$1::text"));

pub(super) async fn user_view(c: &mut PgConnection, user_id: &str) -> Result<UserView, WorkerError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(USER_VIEW.as_str())).bind(user_id).fetch_all(&mut *c).await?;
    UserView::from_rows(
        &rows,
        |row| row.try_get::<Option<String>, _>("user_id")?.map(|_| decode_versioned(row)).transpose(),
        |row| {
            let id: Option<String> = row.try_get("view_subscription_id")?;
            id.map(|id| Ok((id, row.try_get("view_state")?))).transpose()
        },
    )
}

pub(super) async fn lock_users(c: &mut PgConnection, users: &[&str]) -> Result<(), WorkerError> {
    for user in users {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(USER_LOCK_SPACE)
            .bind(*user)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

pub(super) async fn lock_customer(c: &mut PgConnection, customer_id: &str) -> Result<(), WorkerError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(CUSTOMER_LOCK_SPACE)
        .bind(customer_id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub(super) async fn upsert_entitlement(c: &mut PgConnection, e: &StoredEntitlement) -> Result<i64, WorkerError> {
    let version = version_on_conflict("IS DISTINCT FROM", "GREATEST");
    let sql = format!(
        "INSERT INTO subsync_entitlements (user_id, user_source, tier, features, lapse_tier, lapse_features, \
           subscription_id, status, reason, plan_tier, access_until, period_end, updated_at, evaluated_at, last_event_id, \
           version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (user_id) DO UPDATE SET user_source = excluded.user_source, tier = excluded.tier, \
           features = excluded.features, lapse_tier = excluded.lapse_tier, lapse_features = excluded.lapse_features, \
           subscription_id = excluded.subscription_id, status = excluded.status, reason = excluded.reason, \
           plan_tier = excluded.plan_tier, access_until = excluded.access_until, period_end = excluded.period_end, \
           updated_at = excluded.updated_at, evaluated_at = excluded.evaluated_at, last_event_id = excluded.last_event_id, \
           {version} \
         RETURNING version"
    );
    let version = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(&e.user_id)
        .bind(&e.user_source)
        .bind(&e.tier)
        .bind(&e.features)
        .bind(&e.lapse_tier)
        .bind(&e.lapse_features)
        .bind(&e.subscription_id)
        .bind(&e.status)
        .bind(&e.reason)
        .bind(&e.plan_tier)
        .bind(e.access_until)
        .bind(e.period_end)
        .bind(e.updated_at)
        .bind(e.evaluated_at)
        .bind(&e.last_event_id)
        .bind(Utc::now().timestamp_millis())
        .fetch_one(&mut *c)
        .await?;
    Ok(version)
}

pub(super) async fn delete_entitlement(c: &mut PgConnection, user_id: &str) -> Result<(), WorkerError> {
    sqlx::query("DELETE FROM subsync_entitlements WHERE user_id = $1").bind(user_id).execute(&mut *c).await?;
    Ok(())
}

pub(super) async fn insert_history(c: &mut PgConnection, h: &HistoryWrite<'_>) -> Result<(), WorkerError> {
    sqlx::query(
        "INSERT INTO subsync_entitlement_history (user_id, subscription_id, from_tier, to_tier, cause_event_id, job_id, at, \
           cause) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (cause_event_id, user_id) DO NOTHING",
    )
    .bind(h.user_id)
    .bind(h.subscription_id)
    .bind(h.from_tier)
    .bind(h.to_tier)
    .bind(h.cause_event_id)
    .bind(h.job_id)
    .bind(h.at)
    .bind(h.cause)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn record_outcome(c: &mut PgConnection, o: &OutcomeWrite<'_>) -> Result<(), WorkerError> {
    sqlx::query(
        "INSERT INTO subsync_event_outcomes (event_id, job_id, subscription_id, outcome, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(o.event_id)
    .bind(o.job_id)
    .bind(o.subscription_id)
    .bind(o.outcome)
    .bind(o.reason)
    .bind(o.at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn list_entitlements(
    pool: &PgPool,
    limit: i64,
    offset: i64,
) -> Result<Vec<VersionedEntitlement>, WorkerError> {
    let sql = format!(
        "SELECT {ENTITLEMENT_COLUMNS} FROM subsync_entitlements ORDER BY updated_at DESC, user_id LIMIT $1 OFFSET $2"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).bind(offset).fetch_all(pool).await?;
    rows.iter().map(decode_versioned).collect()
}

pub(super) async fn get_entitlement(pool: &PgPool, user_id: &str) -> Result<Option<VersionedEntitlement>, WorkerError> {
    let sql = format!("SELECT {ENTITLEMENT_COLUMNS} FROM subsync_entitlements WHERE user_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_optional(pool).await?;
    row.as_ref().map(decode_versioned).transpose()
}

pub(super) async fn history(pool: &PgPool, user_id: &str) -> Result<Vec<HistoryRow>, WorkerError> {
    let rows = sqlx::query(
        "SELECT id, user_id, subscription_id, from_tier, to_tier, cause_event_id, job_id, at, cause \
         FROM subsync_entitlement_history WHERE user_id = $1 ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HistoryRow {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                subscription_id: r.try_get("subscription_id")?,
                from_tier: r.try_get("from_tier")?,
                to_tier: r.try_get("to_tier")?,
                cause_event_id: r.try_get("cause_event_id")?,
                cause: r.try_get("cause")?,
                job_id: r.try_get("job_id")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}

pub(super) async fn outcome(pool: &PgPool, event_id: &str) -> Result<Option<EventOutcomeRow>, WorkerError> {
    let row = sqlx::query(
        "SELECT event_id, job_id, subscription_id, outcome, reason, at FROM subsync_event_outcomes WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(decode_outcome).transpose()
}

pub(super) async fn record_unmapped(c: &mut PgConnection, u: &UnmappedWrite<'_>) -> Result<(), WorkerError> {
    sqlx::query(
        "INSERT INTO subsync_unmapped_prices (event_id, price_id, lookup_key, subscription_id, effect, at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id, price_id) DO NOTHING",
    )
    .bind(u.event_id)
    .bind(u.price_id)
    .bind(u.lookup_key)
    .bind(u.subscription_id)
    .bind(u.effect)
    .bind(u.at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn unmapped_prices(pool: &PgPool, since: DateTime<Utc>) -> Result<Vec<UnmappedPriceRow>, WorkerError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(unmapped_summary("$1"))).bind(since).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(UnmappedPriceRow {
                price_id: r.try_get("price_id")?,
                lookup_key: r.try_get("lookup_key")?,
                events: r.try_get("events")?,
                subscriptions: r.try_get("subscriptions")?,
                first_seen: r.try_get("first_seen")?,
                last_seen: r.try_get("last_seen")?,
                example_event_id: r.try_get("example_event_id")?,
                effect: effect_name(r.try_get("worst")?),
            })
        })
        .collect()
}

pub(super) async fn lock_customer_features(
    c: &mut PgConnection,
    customer_id: &str,
) -> Result<Option<StoredSummary>, WorkerError> {
    let row =
        sqlx::query("SELECT event_created, event_id FROM subsync_customer_features WHERE customer_id = $1 FOR UPDATE")
            .bind(customer_id)
            .fetch_optional(&mut *c)
            .await?;
    row.map(|r| Ok(StoredSummary { event_created: r.try_get("event_created")?, event_id: r.try_get("event_id")? }))
        .transpose()
}

pub(super) async fn save_customer_features(
    c: &mut PgConnection,
    s: &subsync_domain::FeatureSummary,
    keys: &str,
    at: DateTime<Utc>,
) -> Result<(), WorkerError> {
    sqlx::query(
        "INSERT INTO subsync_customer_features (customer_id, lookup_keys, event_created, event_id, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (customer_id) DO UPDATE SET lookup_keys = excluded.lookup_keys, \
           event_created = excluded.event_created, event_id = excluded.event_id, updated_at = excluded.updated_at",
    )
    .bind(&s.customer_id)
    .bind(keys)
    .bind(s.event_created)
    .bind(&s.event_id)
    .bind(at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn customer_users(c: &mut PgConnection, customer_id: &str) -> Result<Vec<String>, WorkerError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT user_id FROM subsync_subscriptions WHERE customer_id = $1 AND user_id IS NOT NULL \
         ORDER BY user_id",
    )
    .bind(customer_id)
    .fetch_all(&mut *c)
    .await?)
}

pub(super) async fn user_stripe_features(c: &mut PgConnection, user_id: &str) -> Result<Vec<String>, WorkerError> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(user_features_sql("$1"))).bind(user_id).fetch_all(&mut *c).await?)
}

/// An `subsync_event_outcomes` row (every column); the support view reads them too.
pub(super) fn decode_outcome(r: &PgRow) -> Result<EventOutcomeRow, WorkerError> {
    Ok(EventOutcomeRow {
        event_id: r.try_get("event_id")?,
        job_id: r.try_get("job_id")?,
        subscription_id: r.try_get("subscription_id")?,
        outcome: r.try_get("outcome")?,
        reason: r.try_get("reason")?,
        at: r.try_get("at")?,
    })
}
