//! The worker's tables, one SQL dialect per module (`sqlite.rs`, `postgres.rs`), routed with
//! [`on_dialect!`]. The sync logic and the read API above never see SQL; they call these
//! functions with a [`Tx`] (writes, in the handler's transaction) or a [`Store`] (reads, on
//! the pool). The event log is not here: it belongs to `subsync-eventlog`.

mod postgres;
mod sqlite;
pub(crate) mod support;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use subsync_queue::{JobId, Store, Tx, on_dialect};

use crate::error::WorkerError;

/// A subscription row: the serialized domain state and the user it was attributed to.
#[derive(Debug, Clone)]
pub(crate) struct SubscriptionRow {
    pub state: serde_json::Value,
    pub user_id: Option<String>,
}

/// A subscription state to store.
#[derive(Debug)]
pub(crate) struct SubscriptionWrite<'a> {
    pub subscription_id: &'a str,
    pub state: serde_json::Value,
    pub user_id: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub event_id: &'a str,
    pub at: DateTime<Utc>,
}

/// An entitlement as stored: the decision at `evaluated_at`, before read-time lapsing.
#[derive(Debug, Clone)]
pub(crate) struct StoredEntitlement {
    pub user_id: String,
    pub user_source: String,
    pub tier: String,
    pub features: serde_json::Value,
    pub lapse_tier: String,
    pub lapse_features: serde_json::Value,
    pub subscription_id: String,
    pub status: Option<String>,
    pub reason: String,
    pub plan_tier: Option<String>,
    pub access_until: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub evaluated_at: DateTime<Utc>,
    pub last_event_id: String,
}

/// A stored entitlement with its `version`, as the readers see it. Separate from
/// [`StoredEntitlement`] because the version is the database's to assign (in
/// [`upsert_entitlement`]), never the writer's.
#[derive(Debug, Clone)]
pub(crate) struct VersionedEntitlement {
    pub row: StoredEntitlement,
    pub version: i64,
}

/// The columns whose change is a change of the user's entitlement (what readers act on):
/// everything but the bookkeeping (`updated_at`, `evaluated_at`, `last_event_id`).
const DECISION_COLUMNS: [&str; 11] = [
    "user_source",
    "tier",
    "features",
    "lapse_tier",
    "lapse_features",
    "subscription_id",
    "status",
    "reason",
    "plan_tier",
    "access_until",
    "period_end",
];

/// The `version = …` assignment of the upsert's `ON CONFLICT` branch, in a dialect's
/// null-safe "differs" operator and two-argument maximum: unchanged when no decision column
/// changes, else `max(old + 1, the inserted value)` (the write's time in ms, so a row that
/// is deleted and created again still gets a higher version than it ever had).
fn version_on_conflict(distinct: &str, greatest: &str) -> String {
    let changed = DECISION_COLUMNS
        .iter()
        .map(|c| format!("subsync_entitlements.{c} {distinct} excluded.{c}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!(
        "version = CASE WHEN {changed} \
         THEN {greatest}(subsync_entitlements.version + 1, excluded.version) \
         ELSE subsync_entitlements.version END"
    )
}

/// One history line to append.
#[derive(Debug)]
pub(crate) struct HistoryWrite<'a> {
    pub user_id: &'a str,
    pub subscription_id: &'a str,
    pub from_tier: &'a str,
    pub to_tier: &'a str,
    pub cause_event_id: &'a str,
    pub job_id: JobId,
    pub at: DateTime<Utc>,
    /// `event` or `lapse` (the table's CHECK).
    pub cause: &'a str,
}

/// One event outcome to record.
#[derive(Debug)]
pub(crate) struct OutcomeWrite<'a> {
    pub event_id: &'a str,
    pub job_id: JobId,
    pub subscription_id: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// The subscription row, locked for this transaction (PostgreSQL `FOR UPDATE`; SQLite's
/// transaction already holds the write lock).
pub(crate) async fn lock_subscription(tx: &mut Tx, id: &str) -> Result<Option<SubscriptionRow>, WorkerError> {
    on_dialect!(tx.conn(), lock_subscription(id))
}

/// Inserts or replaces a subscription row.
pub(crate) async fn save_subscription(tx: &mut Tx, row: &SubscriptionWrite<'_>) -> Result<(), WorkerError> {
    on_dialect!(tx.conn(), save_subscription(row))
}

/// What a user's entitlement is recomputed from, read in one statement inside the
/// transaction (after [`lock_users`]): every subscription attributed to the user, by
/// subscription id, and the stored entitlement with its version.
#[derive(Debug, Default)]
pub(crate) struct UserView {
    /// `(subscription_id, state)`, by subscription id.
    pub subscriptions: Vec<(String, serde_json::Value)>,
    /// The stored entitlement, if any.
    pub entitlement: Option<VersionedEntitlement>,
}

impl UserView {
    /// Folds the rows of [`user_view_sql`] (either dialect): the entitlement, repeated on
    /// every row or null, from the first; a subscription from each row that has one.
    fn from_rows<R>(
        rows: &[R],
        entitlement: impl Fn(&R) -> Result<Option<VersionedEntitlement>, WorkerError>,
        subscription: impl Fn(&R) -> Result<Option<(String, serde_json::Value)>, WorkerError>,
    ) -> Result<Self, WorkerError> {
        let entitlement = rows.first().map(&entitlement).transpose()?.flatten();
        let subscriptions = rows.iter().filter_map(|row| subscription(row).transpose()).collect::<Result<_, _>>()?;
        Ok(Self { subscriptions, entitlement })
    }
}

/// The user's subscriptions and stored entitlement ([`UserView`]): one round trip where
/// two separate reads would take two.
pub(crate) async fn user_view(tx: &mut Tx, user_id: &str) -> Result<UserView, WorkerError> {
    on_dialect!(tx.conn(), user_view(user_id))
}

/// The `SELECT` of [`user_view`] for `dialect_columns` (the entitlement's columns) with
/// the user id as parameter `param`: the user's entitlement (or nulls) joined to each of the
/// user's subscriptions (or one row of nulls), subscription columns renamed so they do not
/// clash with the entitlement's.
fn user_view_sql(entitlement_columns: &str, param: &str) -> String {
    let columns: Vec<String> = entitlement_columns.split(',').map(|c| format!("e.{}", c.trim())).collect();
    format!(
        "SELECT s.subscription_id AS view_subscription_id, s.state AS view_state, {} \
         FROM (SELECT {param} AS user_id) u \
         LEFT JOIN subsync_entitlements e ON e.user_id = u.user_id \
         LEFT JOIN subsync_subscriptions s ON s.user_id = u.user_id \
         ORDER BY s.subscription_id",
        columns.join(", ")
    )
}

/// Serializes entitlement writes per user across processes (PostgreSQL advisory locks, taken
/// in the given order — callers sort — so two transactions never deadlock). A no-op on
/// SQLite, whose write transactions are serialized already.
pub(crate) async fn lock_users(tx: &mut Tx, users: &[&str]) -> Result<(), WorkerError> {
    on_dialect!(tx.conn(), lock_users(users))
}

/// Serializes, per customer, a Stripe Entitlements summary with the subscription syncs of that
/// customer (PostgreSQL advisory lock; taken before any user lock, by both kinds of job, so
/// whichever comes second sees the other's committed writes: a summary never misses the user
/// a concurrent subscription sync names). A no-op on SQLite.
pub(crate) async fn lock_customer(tx: &mut Tx, customer_id: &str) -> Result<(), WorkerError> {
    on_dialect!(tx.conn(), lock_customer(customer_id))
}

/// Inserts or replaces a user's entitlement and returns its `version` after the write: raised
/// (in the same statement) when any decision column changed, kept when only the bookkeeping
/// did. Whoever reacts to a change (history, notifications) can compare it with the version
/// read before.
pub(crate) async fn upsert_entitlement(tx: &mut Tx, row: &StoredEntitlement) -> Result<i64, WorkerError> {
    on_dialect!(tx.conn(), upsert_entitlement(row))
}

/// Removes a user's entitlement (the user has no subscription any more, e.g. it moved from
/// the customer id to the app user id).
pub(crate) async fn delete_entitlement(tx: &mut Tx, user_id: &str) -> Result<(), WorkerError> {
    on_dialect!(tx.conn(), delete_entitlement(user_id))
}

/// Appends a history line; a second line for the same (event, user) is ignored.
pub(crate) async fn insert_history(tx: &mut Tx, row: &HistoryWrite<'_>) -> Result<(), WorkerError> {
    on_dialect!(tx.conn(), insert_history(row))
}

/// Records an event's outcome unless one is recorded already (the first run's stays).
pub(crate) async fn record_outcome(tx: &mut Tx, row: &OutcomeWrite<'_>) -> Result<(), WorkerError> {
    on_dialect!(tx.conn(), record_outcome(row))
}

/// A page of entitlements, most recently updated first.
pub(crate) async fn list_entitlements(
    store: &Store,
    limit: u32,
    offset: u64,
) -> Result<Vec<VersionedEntitlement>, WorkerError> {
    let offset = i64::try_from(offset).map_err(|_| WorkerError::InvalidInput("offset is too large".into()))?;
    on_dialect!(store.pool(), list_entitlements(i64::from(limit), offset))
}

/// One user's stored entitlement.
pub(crate) async fn get_entitlement(store: &Store, user_id: &str) -> Result<Option<VersionedEntitlement>, WorkerError> {
    on_dialect!(store.pool(), get_entitlement(user_id))
}

/// A user's tier changes, oldest first.
pub(crate) async fn history(store: &Store, user_id: &str) -> Result<Vec<HistoryRow>, WorkerError> {
    on_dialect!(store.pool(), history(user_id))
}

/// What the worker did with one event.
pub(crate) async fn outcome(store: &Store, event_id: &str) -> Result<Option<EventOutcomeRow>, WorkerError> {
    on_dialect!(store.pool(), outcome(event_id))
}

/// One subscription row.
pub(crate) async fn subscription(store: &Store, id: &str) -> Result<Option<SubscriptionRow>, WorkerError> {
    on_dialect!(store.pool(), subscription(id))
}

/// One change of a user's tier: the audit trail support reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    /// Order of changes.
    pub id: i64,
    /// The user.
    pub user_id: String,
    /// The subscription whose event caused the change.
    pub subscription_id: String,
    /// Tier before (`free` when the user had no entitlement).
    pub from_tier: String,
    /// Tier after (`free` when the entitlement moved away or ended).
    pub to_tier: String,
    /// The Stripe event that caused it, or `lapse:<unix ms>` for a timed lapse.
    pub cause_event_id: String,
    /// `event` (a Stripe event), `lapse` (`access_until` passed) or `operator`.
    pub cause: String,
    /// The job that applied it.
    pub job_id: Option<JobId>,
    /// When it was written.
    pub at: DateTime<Utc>,
}

/// What the worker did with one event, so operators see stale events as skipped, not as
/// failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventOutcomeRow {
    /// `evt_…`.
    pub event_id: String,
    /// The job that first processed it successfully.
    pub job_id: Option<JobId>,
    /// The subscription it concerns, if any.
    pub subscription_id: Option<String>,
    /// `applied`, `stale`, `unchanged` or `ignored`.
    pub outcome: String,
    /// Why it was stale or ignored.
    pub reason: Option<String>,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// The stored Stripe Entitlements summary of one customer: its order key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSummary {
    pub event_created: i64,
    pub event_id: String,
}

/// The customer's stored summary, locked for this transaction.
pub(crate) async fn lock_customer_features(
    tx: &mut Tx,
    customer_id: &str,
) -> Result<Option<StoredSummary>, WorkerError> {
    on_dialect!(tx.conn(), lock_customer_features(customer_id))
}

/// Inserts or replaces a customer's summary.
pub(crate) async fn save_customer_features(
    tx: &mut Tx,
    summary: &subsync_domain::FeatureSummary,
    at: DateTime<Utc>,
) -> Result<(), WorkerError> {
    let keys = serde_json::to_string(&summary.lookup_keys).map_err(|e| WorkerError::Corrupt(e.to_string()))?;
    on_dialect!(tx.conn(), save_customer_features(summary, &keys, at))
}

/// The users a customer's subscriptions are attributed to, sorted.
pub(crate) async fn customer_users(tx: &mut Tx, customer_id: &str) -> Result<Vec<String>, WorkerError> {
    on_dialect!(tx.conn(), customer_users(customer_id))
}

/// The Stripe feature lookup keys of every customer that belongs to `user_id`: the customers
/// of the user's subscriptions, and the customer whose id the user id is while no
/// subscription names a user for it. `None` when no such customer has a summary.
pub(crate) async fn user_stripe_features(tx: &mut Tx, user_id: &str) -> Result<Option<Vec<String>>, WorkerError> {
    let lists: Vec<String> = on_dialect!(tx.conn(), user_stripe_features(user_id))?;
    if lists.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for list in lists {
        let parsed: Vec<String> = serde_json::from_str(&list)
            .map_err(|e| WorkerError::Corrupt(format!("stored Stripe feature keys are not a JSON list: {e}")))?;
        keys.extend(parsed);
    }
    keys.sort();
    keys.dedup();
    Ok(Some(keys))
}

/// The customers a user's Stripe features come from (both dialects; `{user}` is the
/// dialect's placeholder for the user id, used twice).
fn user_features_sql(user: &str) -> String {
    format!(
        "SELECT f.lookup_keys FROM subsync_customer_features f \
         WHERE f.customer_id IN (SELECT s.customer_id FROM subsync_subscriptions s WHERE s.user_id = {user}) \
            OR (f.customer_id = {user} AND NOT EXISTS (SELECT 1 FROM subsync_subscriptions s \
                 WHERE s.customer_id = f.customer_id AND s.user_id IS NOT NULL)) \
         ORDER BY f.customer_id"
    )
}

/// One unmapped price carried by an event's subscription.
#[derive(Debug)]
pub(crate) struct UnmappedWrite<'a> {
    pub event_id: &'a str,
    pub price_id: &'a str,
    pub lookup_key: Option<&'a str>,
    pub subscription_id: &'a str,
    /// `ignored`, `dead` or `free` (the table's CHECK).
    pub effect: &'a str,
    pub at: DateTime<Utc>,
}

/// An unmapped price, summed over the events that carried it: what operators map next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmappedPriceRow {
    /// `price_…`.
    pub price_id: String,
    /// Its lookup key, if it has one.
    pub lookup_key: Option<String>,
    /// Events that carried it.
    pub events: i64,
    /// Distinct subscriptions that carried it.
    pub subscriptions: i64,
    /// First and last time an event with it was synced.
    pub first_seen: DateTime<Utc>,
    /// See `first_seen`.
    pub last_seen: DateTime<Utc>,
    /// One such event, to look at with `subsync events show`.
    pub example_event_id: String,
    /// The worst effect it had: `dead` (a job waits for an operator), `free`, or `ignored`
    /// (beside a mapped plan: access unaffected).
    pub effect: String,
}

/// Records an unmapped price an event carried (once per event and price).
pub(crate) async fn record_unmapped(tx: &mut Tx, row: &UnmappedWrite<'_>) -> Result<(), WorkerError> {
    on_dialect!(tx.conn(), record_unmapped(row))
}

/// Unmapped prices seen since `since`, most frequent first.
pub(crate) async fn unmapped_prices(store: &Store, since: DateTime<Utc>) -> Result<Vec<UnmappedPriceRow>, WorkerError> {
    on_dialect!(store.pool(), unmapped_prices(since))
}

/// The aggregate both dialects run, `since` being their placeholder for the lower bound of `at`.
fn unmapped_summary(since: &str) -> String {
    format!(
        "SELECT price_id, lookup_key, count(*) AS events, \
       count(DISTINCT subscription_id) AS subscriptions, min(at) AS first_seen, max(at) AS last_seen, \
       max(event_id) AS example_event_id, \
       max(CASE effect WHEN 'dead' THEN 3 WHEN 'free' THEN 2 ELSE 1 END) AS worst \
     FROM subsync_unmapped_prices WHERE at >= {since} GROUP BY price_id, lookup_key \
     ORDER BY events DESC, price_id"
    )
}

fn effect_name(worst: i32) -> String {
    match worst {
        3 => "dead",
        2 => "free",
        _ => "ignored",
    }
    .to_owned()
}

/// Milliseconds → time (SQLite stores INTEGER milliseconds).
pub(crate) fn from_ms(ms: i64) -> Result<DateTime<Utc>, WorkerError> {
    Utc.timestamp_millis_opt(ms).single().ok_or_else(|| WorkerError::Corrupt(format!("timestamp {ms} out of range")))
}

fn from_ms_opt(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, WorkerError> {
    ms.map(from_ms).transpose()
}

pub(crate) fn parse_job_id(s: Option<String>) -> Result<Option<JobId>, WorkerError> {
    s.map(|s| JobId::parse_str(&s).map_err(|_| WorkerError::Corrupt(format!("job id `{s}` is not a UUID")))).transpose()
}

pub(crate) fn parse_json(s: &str, what: &str) -> Result<serde_json::Value, WorkerError> {
    serde_json::from_str(s).map_err(|e| WorkerError::Corrupt(format!("{what} is not JSON: {e}")))
}
