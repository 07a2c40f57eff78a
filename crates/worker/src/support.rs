//! "Why can't this user file their quarterly update?": everything subsync knows about one
//! user in one read — the effective tier and its features as a readable list, the user's
//! subscriptions, the tier history with the events that caused it, and what became of the
//! user's events (applied, stale, unchanged, ignored, or a dead job waiting for an operator).
//! Found by our user id, a Stripe customer id or a subscription id: support is asked with
//! whichever the customer has at hand.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use subsync_domain::SubscriptionState;
use subsync_eventlog::SYNC_QUEUE;
use subsync_queue::{JobFilter, JobState, Page, Store};

use crate::entitlements::{self, EntitlementRow, HistoryRow};
use crate::error::WorkerError;
use crate::store::support as reads;

/// How many of a subscription's newest events the view lists.
pub const EVENTS_PER_SUBSCRIPTION: u32 = 50;

/// One feature as support reads it: `itsa.quarterly` allowed `yes`, `sources.max` `5`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureLine {
    /// Dotted name, as the tier file and the application's API spell it.
    pub feature: String,
    /// Whether it grants anything (a numeric limit above zero counts).
    pub allowed: bool,
    /// The value: `yes`/`no`, a number, or `unlimited`.
    pub value: String,
}

/// One of the user's subscriptions, as its newest applied snapshot describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionLine {
    /// `sub_…`
    pub subscription_id: String,
    /// `cus_…`
    pub customer_id: Option<String>,
    /// Stripe status of the newest snapshot.
    pub status: Option<String>,
    /// The lookup keys (or price ids) of its prices, with quantities above one.
    pub prices: Vec<String>,
    /// It ends at the period end.
    pub cancel_at_period_end: bool,
    /// The current period's end.
    pub current_period_end: Option<DateTime<Utc>>,
    /// When the current `past_due` episode began, if it is `past_due`.
    pub past_due_since: Option<DateTime<Utc>>,
    /// The event that last changed it.
    pub last_event_id: String,
    /// When that was applied.
    pub updated_at: DateTime<Utc>,
}

/// What became of one of the user's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventLine {
    /// `evt_…` (or a fetched snapshot's id).
    pub event_id: String,
    /// Its type, when the event log still has it.
    pub event_type: Option<String>,
    /// Its subscription.
    pub subscription_id: Option<String>,
    /// `applied`, `stale`, `unchanged`, `ignored`, or `dead job`.
    pub outcome: String,
    /// Why (stale, ignored, the dead job's error).
    pub reason: Option<String>,
    /// When it was processed (or last failed).
    pub at: DateTime<Utc>,
}

/// Everything about one user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupportView {
    /// The user.
    pub user_id: String,
    /// Which id found them: `user_id`, `customer_id` or `subscription_id`.
    pub found_by: &'static str,
    /// The effective entitlement now (`None`: subsync has nothing for them: `free`).
    pub entitlement: Option<EntitlementRow>,
    /// Its features, readable.
    pub features: Vec<FeatureLine>,
    /// The user's subscriptions.
    pub subscriptions: Vec<SubscriptionLine>,
    /// Tier changes, oldest first, each with its causing event.
    pub history: Vec<HistoryRow>,
    /// The user's events, newest first.
    pub events: Vec<EventLine>,
}

/// The support view for `key` (a user id, `cus_…` or `sub_…`) at `now`; `None` when no id
/// subsync knows matches.
pub async fn support(store: &Store, key: &str, now: DateTime<Utc>) -> Result<Option<SupportView>, WorkerError> {
    let key = key.trim();
    let (user_id, found_by) = if entitlements::get_at(store, key, now).await?.is_some()
        || !reads::subscriptions_of(store, key).await?.is_empty()
    {
        (key.to_owned(), "user_id")
    } else if let Some(user) = reads::user_of(store, key).await? {
        (user, if key.starts_with("sub_") { "subscription_id" } else { "customer_id" })
    } else {
        return Ok(None);
    };
    let entitlement = entitlements::get_at(store, &user_id, now).await?;
    let features = entitlement.as_ref().map(|e| feature_lines(&e.features)).unwrap_or_default();
    let mut subscriptions = Vec::new();
    let mut events = Vec::new();
    for row in reads::subscriptions_of(store, &user_id).await? {
        events.extend(outcome_lines(store, &row.subscription_id).await?);
        events.extend(dead_lines(store, &row.subscription_id).await?);
        subscriptions.push(subscription_line(row)?);
    }
    events.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.event_id.cmp(&a.event_id)));
    let history = entitlements::history(store, &user_id).await?;
    Ok(Some(SupportView { user_id, found_by, entitlement, features, subscriptions, history, events }))
}

fn at(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.and_then(|s| Utc.timestamp_opt(s, 0).single())
}

fn subscription_line(row: reads::SubscriptionLine) -> Result<SubscriptionLine, WorkerError> {
    let state: SubscriptionState = serde_json::from_value(row.state)
        .map_err(|e| WorkerError::Corrupt(format!("state of {}: {e}", row.subscription_id)))?;
    let current = state.current();
    let prices = current
        .map(|c| {
            c.prices
                .iter()
                .map(|p| {
                    let name = p.lookup_key.clone().unwrap_or_else(|| p.id.clone());
                    if p.quantity > 1 { format!("{name} × {}", p.quantity) } else { name }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(SubscriptionLine {
        subscription_id: row.subscription_id,
        customer_id: row.customer_id,
        status: row.status,
        prices,
        cancel_at_period_end: current.is_some_and(|c| c.cancel_at_period_end),
        current_period_end: at(current.and_then(|c| c.current_period_end)),
        past_due_since: at(state.past_due_since()),
        last_event_id: row.last_event_id,
        updated_at: row.updated_at,
    })
}

async fn outcome_lines(store: &Store, subscription_id: &str) -> Result<Vec<EventLine>, WorkerError> {
    let mut out = Vec::new();
    for o in reads::outcomes_of(store, subscription_id, EVENTS_PER_SUBSCRIPTION).await? {
        let event_type = subsync_eventlog::get(store, &o.event_id).await?.map(|e| e.event_type);
        out.push(EventLine {
            event_id: o.event_id,
            event_type,
            subscription_id: o.subscription_id,
            outcome: o.outcome,
            reason: o.reason,
            at: o.at,
        });
    }
    Ok(out)
}

/// Dead sync jobs of the subscription: events that never got an outcome.
async fn dead_lines(store: &Store, subscription_id: &str) -> Result<Vec<EventLine>, WorkerError> {
    let filter = JobFilter {
        states: vec![JobState::Dead],
        queue: Some(SYNC_QUEUE.to_owned()),
        group_key: Some(subscription_id.to_owned()),
        ..JobFilter::default()
    };
    let jobs = store.list(&filter, Page { limit: EVENTS_PER_SUBSCRIPTION, offset: 0 }).await?;
    let mut out = Vec::new();
    for job in jobs {
        let Some(event_id) = job.payload.get("event_id").and_then(|v| v.as_str()).map(str::to_owned) else { continue };
        let event_type = subsync_eventlog::get(store, &event_id).await?.map(|e| e.event_type);
        out.push(EventLine {
            event_id,
            event_type,
            subscription_id: Some(subscription_id.to_owned()),
            outcome: "dead job".to_owned(),
            reason: job.last_error.map(|e| format!("job {}: {e}", job.id)),
            at: job.finished_at.unwrap_or(job.created_at),
        });
    }
    Ok(out)
}

/// The features as dotted names with readable values, in the tier file's order.
pub fn feature_lines(features: &impl Serialize) -> Vec<FeatureLine> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<FeatureLine>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&name, v, out);
                }
            }
            serde_json::Value::Bool(b) => out.push(FeatureLine {
                feature: prefix.to_owned(),
                allowed: *b,
                value: if *b { "yes" } else { "no" }.to_owned(),
            }),
            serde_json::Value::Number(n) => out.push(FeatureLine {
                feature: prefix.to_owned(),
                allowed: n.as_f64().is_some_and(|v| v > 0.0),
                value: n.to_string(),
            }),
            serde_json::Value::String(s) => {
                out.push(FeatureLine { feature: prefix.to_owned(), allowed: s != "0", value: s.clone() })
            }
            serde_json::Value::Null => {
                out.push(FeatureLine { feature: prefix.to_owned(), allowed: false, value: "none".to_owned() })
            }
            serde_json::Value::Array(items) => out.push(FeatureLine {
                feature: prefix.to_owned(),
                allowed: !items.is_empty(),
                value: serde_json::Value::Array(items.clone()).to_string(),
            }),
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(features) {
        walk("", &value, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_read_as_dotted_names_with_plain_values() {
        let json = serde_json::json!({"itsa": {"quarterly": true, "final_declaration": false},
                                      "sources": {"max": 5}, "agent": {"clients": "unlimited"}});
        let lines = feature_lines(&json);
        let find = |name: &str| lines.iter().find(|l| l.feature == name).cloned().expect(name);
        assert_eq!((find("itsa.quarterly").allowed, find("itsa.quarterly").value.as_str()), (true, "yes"));
        assert_eq!(
            (find("itsa.final_declaration").allowed, find("itsa.final_declaration").value.as_str()),
            (false, "no")
        );
        assert_eq!((find("sources.max").allowed, find("sources.max").value.as_str()), (true, "5"));
        assert_eq!(find("agent.clients").value, "unlimited");
    }
}
