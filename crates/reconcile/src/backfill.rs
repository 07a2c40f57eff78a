//! Import every subscription of the account, so a new install starts with correct
//! entitlements instead of `free` until each customer's next event.
//!
//! Each subscription (`/v1/subscriptions?status=all`, customer expanded) is stored as a
//! fetched snapshot (`EventRecord::fetched_subscription`): a job on the same queue, in the
//! same per-subscription order as webhooks, keyed by Stripe's `Date` so a newer webhook still
//! wins and an older one is stale. The user is resolved as for webhooks: the subscription's
//! metadata, its customer's metadata, and, when neither names one, the Checkout Session that
//! created it (one extra request per such subscription). The record's id is derived from the
//! content, so re-running with nothing changed in Stripe creates nothing.

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use subsync_eventlog::{EventRecord, FetchMeta, FetchedSubscription};
use subsync_queue::Store;
use subsync_stripe::objects::APP_USER_ID_KEY;
use subsync_stripe_api::StripeApi;

use crate::ReconcileError;

/// What a backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackfillReport {
    /// Subscriptions Stripe listed.
    pub listed: u64,
    /// Stored now with a job (in a dry run: would be).
    pub new: u64,
    /// Already stored with the same content by an earlier backfill: nothing created.
    pub unchanged: u64,
    /// Refused as malformed (logged with the reason).
    pub refused: u64,
    /// Checkout Sessions looked up to find a user.
    pub checkout_lookups: u64,
    /// Nothing was stored.
    pub dry_run: bool,
}

fn names_user(object: Option<&Value>) -> bool {
    object
        .and_then(|o| o.get("metadata"))
        .and_then(|m| m.get(APP_USER_ID_KEY))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
}

/// The subscription's Checkout Session, when neither it nor its customer names our user.
async fn session_for(
    api: &StripeApi,
    sub: &Value,
    report: &mut BackfillReport,
) -> Result<Option<Value>, ReconcileError> {
    if names_user(Some(sub)) || names_user(sub.get("customer").filter(|c| c.is_object())) {
        return Ok(None);
    }
    let Some(id) = sub.get("id").and_then(Value::as_str) else { return Ok(None) };
    report.checkout_lookups += 1;
    let query = [("subscription".to_owned(), id.to_owned()), ("limit".to_owned(), "1".to_owned())];
    let page = api.list_page("/v1/checkout/sessions", &query, None).await?;
    Ok(page.data.first().and_then(|raw| serde_json::from_str(raw.get()).ok()))
}

/// Stores every subscription of the account as a fetched snapshot (see the module docs).
pub async fn backfill(store: &Store, api: &StripeApi, dry_run: bool) -> Result<BackfillReport, ReconcileError> {
    let mut report = BackfillReport { dry_run, ..Default::default() };
    let query = vec![
        ("status".to_owned(), "all".to_owned()),
        ("limit".to_owned(), "100".to_owned()),
        ("expand[]".to_owned(), "data.customer".to_owned()),
    ];
    let mut pager = api.pages("/v1/subscriptions", query);
    while let Some(page) = pager.next().await? {
        let mut records = Vec::with_capacity(page.data.len());
        for raw in &page.data {
            report.listed += 1;
            let sub: Value = match serde_json::from_str(raw.get()) {
                Ok(sub) => sub,
                Err(e) => {
                    report.refused += 1;
                    tracing::warn!(error = %e, "Stripe listed a subscription that is not JSON");
                    continue;
                }
            };
            let session = session_for(api, &sub, &mut report).await?;
            let fetched_at = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
            let meta = FetchMeta { fetched_at, source: "backfill".into(), checkout_session: session };
            match EventRecord::fetched_subscription(&FetchedSubscription { subscription: &sub, date: page.date, meta })
            {
                Ok(record) => records.push(record),
                Err(e) => {
                    report.refused += 1;
                    tracing::warn!(code = e.code(), error = %e, "a listed subscription cannot be stored");
                }
            }
        }
        if dry_run {
            for record in &records {
                match subsync_eventlog::get(store, &record.event_id).await? {
                    Some(_) => report.unchanged += 1,
                    None => report.new += 1,
                }
            }
            continue;
        }
        let refs: Vec<&EventRecord> = records.iter().collect();
        for (record, stored) in records.iter().zip(subsync_eventlog::store_batch(store, &refs).await?) {
            if stored.duplicate {
                report.unchanged += 1;
            } else {
                report.new += 1;
                tracing::info!(event_id = %record.event_id, subscription_id = %record.group_key, "subscription backfilled");
            }
        }
    }
    Ok(report)
}
