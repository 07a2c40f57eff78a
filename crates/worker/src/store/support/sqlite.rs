//! The support reads in SQLite (times are INTEGER milliseconds).

use sqlx::{Row, SqlitePool};

use super::SubscriptionLine;
use crate::error::WorkerError;
use crate::store::{EventOutcomeRow, from_ms, parse_json};

pub(super) async fn user_of(pool: &SqlitePool, id: &str) -> Result<Option<String>, WorkerError> {
    let row = sqlx::query(
        "SELECT user_id FROM subsync_subscriptions \
         WHERE (subscription_id = ?1 OR customer_id = ?1) AND user_id IS NOT NULL \
         ORDER BY subscription_id = ?1 DESC, updated_at DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| r.try_get("user_id")).transpose()?)
}

pub(super) async fn subscriptions_of(pool: &SqlitePool, user_id: &str) -> Result<Vec<SubscriptionLine>, WorkerError> {
    let rows = sqlx::query(
        "SELECT subscription_id, customer_id, status, state, last_event_id, updated_at \
         FROM subsync_subscriptions WHERE user_id = ?1 ORDER BY subscription_id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SubscriptionLine {
                subscription_id: r.try_get("subscription_id")?,
                customer_id: r.try_get("customer_id")?,
                status: r.try_get("status")?,
                state: parse_json(r.try_get("state")?, "subscription state")?,
                last_event_id: r.try_get("last_event_id")?,
                updated_at: from_ms(r.try_get("updated_at")?)?,
            })
        })
        .collect()
}

pub(super) async fn outcomes_of(
    pool: &SqlitePool,
    subscription_id: &str,
    limit: u32,
) -> Result<Vec<EventOutcomeRow>, WorkerError> {
    let rows = sqlx::query(
        "SELECT event_id, job_id, subscription_id, outcome, reason, at FROM subsync_event_outcomes \
         WHERE subscription_id = ?1 ORDER BY at DESC, event_id DESC LIMIT ?2",
    )
    .bind(subscription_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(crate::store::sqlite::decode_outcome).collect()
}
