//! The read API for every reader — the CLI, the admin, the application's read API
//! (`subsync-appapi`): "what may this user do", and why.
//!
//! # Current access at read time: the one definition
//!
//! `effective` is the single definition of "what this user may do at instant T"; [`get_at`]
//! and [`list_at`] (and [`get`]/[`list`] at the wall clock) apply it to stored rows, and the SQL
//! view `subsync_effective_entitlements` (migration `20261204000001_effective_view`) applies the
//! same rule for applications that share the database — a test on both backends holds the two
//! together. The worker evaluates a user's entitlement when an event changes one of the user's
//! subscriptions, and stores the decision with `access_until`: the instant (exclusive) the
//! grant lapses without any further Stripe event — the end of a `past_due` grace period, or
//! the period end of a subscription that cancels then. No Stripe event marks that instant,
//! so every read here compares it with the clock: once `now >= access_until` the row is
//! reported with the stored `lapse_tier`/`lapse_features` (the `free` floor, captured with
//! the tier config used at evaluation), `lapsed = true` and the lapse reason. `stored_tier`
//! keeps what was decided at evaluation, for support. The access rules guarantee a lapse
//! always lands on `free`, so readers never need the tier config. A lapse job due at
//! `access_until` (`sync::LapseJob`) then rewrites the stored row at that instant, so history
//! and the application's notification follow; readers never wait for it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use subsync_domain::{Features, SubscriptionState};
use subsync_queue::Store;

use crate::error::WorkerError;
use crate::store::{self, StoredEntitlement};
pub use crate::store::{EventOutcomeRow, HistoryRow, UnmappedPriceRow};

/// The largest page [`list`] serves, so a listing stays cheap for the database.
pub const MAX_LIMIT: u32 = 1000;

/// One user's entitlement as the app should apply it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntitlementRow {
    /// Our user id (or the Stripe customer id until the checkout link names the user).
    pub user_id: String,
    /// Where `user_id` came from: `customer_id`, `client_reference_id`, `link_metadata`,
    /// `subscription_metadata`.
    pub user_source: String,
    /// The tier in force at read time.
    pub tier: String,
    /// Its features (what the app unlocks).
    pub features: Features,
    /// The subscription that grants the tier (the highest-ranked if the user has several).
    pub subscription_id: String,
    /// That subscription's Stripe status.
    pub status: Option<String>,
    /// Why the user has this access (`active`, `past_due_grace`, `grace_expired`, …).
    pub reason: String,
    /// The tier the subscription's prices pay for.
    pub plan_tier: Option<String>,
    /// When the stored grant lapses (exclusive); `None`: until the next status change.
    pub access_until: Option<DateTime<Utc>>,
    /// The subscription's current period end.
    pub period_end: Option<DateTime<Utc>>,
    /// True when `access_until` has passed since evaluation: `tier` is the lapse tier.
    pub lapsed: bool,
    /// The tier decided at `evaluated_at`, before any read-time lapse.
    pub stored_tier: String,
    /// The instant the worker evaluated the entitlement for.
    pub evaluated_at: DateTime<Utc>,
    /// When the row was last written.
    pub updated_at: DateTime<Utc>,
    /// The event that last changed it.
    pub last_event_id: String,
    /// Grows whenever the stored decision changes (never for a bookkeeping-only write); see
    /// the migration `20261204000001_effective_view`. 0 for rows unchanged since it.
    pub version: i64,
}

/// A page of entitlements, most recently updated first, evaluated at the current time.
pub async fn list(store: &Store, limit: u32, offset: u64) -> Result<Vec<EntitlementRow>, WorkerError> {
    list_at(store, limit, offset, Utc::now()).await
}

/// [`list`] evaluated at `now` (tests, "what will this user have on date X").
pub async fn list_at(
    store: &Store,
    limit: u32,
    offset: u64,
    now: DateTime<Utc>,
) -> Result<Vec<EntitlementRow>, WorkerError> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(WorkerError::InvalidInput(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    store::list_entitlements(store, limit, offset)
        .await?
        .into_iter()
        .map(|v| effective(v.row, v.version, now))
        .collect()
}

/// One user's entitlement at the current time; `None` when the user has none (never bought,
/// or unknown: the app should then apply the `free` tier).
pub async fn get(store: &Store, user_id: &str) -> Result<Option<EntitlementRow>, WorkerError> {
    get_at(store, user_id, Utc::now()).await
}

/// [`get`] evaluated at `now`.
pub async fn get_at(store: &Store, user_id: &str, now: DateTime<Utc>) -> Result<Option<EntitlementRow>, WorkerError> {
    store::get_entitlement(store, user_id).await?.map(|v| effective(v.row, v.version, now)).transpose()
}

/// A user's tier changes, oldest first.
pub async fn history(store: &Store, user_id: &str) -> Result<Vec<HistoryRow>, WorkerError> {
    store::history(store, user_id).await
}

/// What the worker did with an event; `None` until a run of its job succeeded.
pub async fn event_outcome(store: &Store, event_id: &str) -> Result<Option<EventOutcomeRow>, WorkerError> {
    store::outcome(store, event_id).await
}

/// The stored domain state of a subscription (support and tests: "what does subsync know").
pub async fn subscription_state(
    store: &Store,
    subscription_id: &str,
) -> Result<Option<SubscriptionState>, WorkerError> {
    store::subscription(store, subscription_id)
        .await?
        .map(|row| {
            serde_json::from_value(row.state)
                .map_err(|e| WorkerError::Corrupt(format!("state of {subscription_id} does not decode: {e}")))
        })
        .transpose()
}

/// Whether a grant stored with `access_until` has lapsed at `now`: `access_until` is
/// exclusive, so the instant itself is already lapsed. The view's `lapsed` column is the same
/// comparison.
pub fn is_lapsed(access_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    access_until.is_some_and(|until| now >= until)
}

/// The definition of current access: a stored row as it holds at `now` (see the module docs).
/// Every reader goes through it; the worker's own reads of a row inside its transaction may
/// use it too (`store::entitlement_in` gives the stored row).
pub(crate) fn effective(
    row: StoredEntitlement,
    version: i64,
    now: DateTime<Utc>,
) -> Result<EntitlementRow, WorkerError> {
    let lapsed = is_lapsed(row.access_until, now);
    let (tier, features, reason) = if lapsed {
        (row.lapse_tier, row.lapse_features, lapse_reason(&row.reason, row.access_until, row.period_end))
    } else {
        (row.tier.clone(), row.features, row.reason)
    };
    let features: Features = serde_json::from_value(features)
        .map_err(|e| WorkerError::Corrupt(format!("features of user {} do not decode: {e}", row.user_id)))?;
    Ok(EntitlementRow {
        user_id: row.user_id,
        user_source: row.user_source,
        tier,
        features,
        subscription_id: row.subscription_id,
        status: row.status,
        reason,
        plan_tier: row.plan_tier,
        access_until: row.access_until,
        period_end: row.period_end,
        lapsed,
        stored_tier: row.tier,
        evaluated_at: row.evaluated_at,
        updated_at: row.updated_at,
        last_event_id: row.last_event_id,
        version,
    })
}

/// The reason the access rules give once a grant with this reason has lapsed: a grant that
/// ends at the period end becomes `period_ended`, a `past_due` grace period `grace_expired`.
fn lapse_reason(reason: &str, access_until: Option<DateTime<Utc>>, period_end: Option<DateTime<Utc>>) -> String {
    match reason {
        "cancels_at_period_end" => "period_ended",
        "past_due_grace" if access_until.is_some() && access_until == period_end => "period_ended",
        "past_due_grace" => "grace_expired",
        other => other,
    }
    .to_owned()
}

/// Prices the tier file did not map, seen on events synced since `since`, most frequent
/// first (`subsync tiers unmapped`): what to add to the tier file next.
pub async fn unmapped_prices(store: &Store, since: DateTime<Utc>) -> Result<Vec<UnmappedPriceRow>, WorkerError> {
    store::unmapped_prices(store, since).await
}
