//! Reading stored events back, for operators (`events show`, the admin API).

use serde::Serialize;
use sqlx::Row;
use subsync_queue::{QueueError, Store};

/// An event as the intake stored it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    /// `evt_…`.
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// `event.created`, unix seconds.
    pub created: Option<i64>,
    /// Live or test mode.
    pub livemode: bool,
    /// API version of the payload.
    pub api_version: Option<String>,
    /// `event` or `v2.core.event`.
    pub object_kind: String,
    /// The subscription (or customer) it was grouped under.
    pub group_key: String,
    /// handled, ignored or unsupported.
    pub disposition: String,
    /// Its sync job.
    pub job_id: Option<String>,
    /// The body exactly as received (parsed back to JSON for display when it is JSON).
    pub payload: serde_json::Value,
}

/// The stored event `event_id`, if any.
pub async fn get(store: &Store, event_id: &str) -> Result<Option<StoredEvent>, QueueError> {
    const COLUMNS: &str =
        "event_id, event_type, created, livemode, api_version, object_kind, group_key, disposition, payload";
    let event = if let Some(pool) = store.sqlite_pool() {
        let sql = format!("SELECT {COLUMNS}, job_id FROM subsync_events WHERE event_id = ?1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(event_id)
            .fetch_optional(pool)
            .await?
            .map(|row| decode(&row, row.try_get::<Option<String>, _>("job_id")))
    } else if let Some(pool) = store.postgres_pool() {
        let sql = format!("SELECT {COLUMNS}, job_id::text AS job_id FROM subsync_events WHERE event_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(event_id)
            .fetch_optional(pool)
            .await?
            .map(|row| decode(&row, row.try_get::<Option<String>, _>("job_id")))
    } else {
        None
    };
    event.transpose()
}

fn decode<R: Row>(row: &R, job_id: Result<Option<String>, sqlx::Error>) -> Result<StoredEvent, QueueError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let raw: String = row.try_get("payload")?;
    Ok(StoredEvent {
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        created: row.try_get("created")?,
        livemode: row.try_get("livemode")?,
        api_version: row.try_get("api_version")?,
        object_kind: row.try_get("object_kind")?,
        group_key: row.try_get("group_key")?,
        disposition: row.try_get("disposition")?,
        job_id: job_id?,
        payload: serde_json::from_str(&raw).unwrap_or(serde_json::Value::String(raw)),
    })
}
