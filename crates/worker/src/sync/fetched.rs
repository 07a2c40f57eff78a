//! Snapshots from Stripe's API instead of an event's copy: a backfill's stored fetch, a thin
//! event, a same-second conflict, or every event in [`RefetchMode::Always`].
//!
//! The fetch happens before the job's transaction opens (no database lock is held across
//! an HTTP call); jobs of one subscription run one at a time, so nothing else changes its
//! state meanwhile. The fetched snapshot is applied together with the event's own input in
//! the job's one transaction, keyed by Stripe's `Date` and our fetch instant (see
//! `subsync_domain::OrderKey`), so it beats the event's copy and any other event of that
//! second.

use chrono::Utc;
use subsync_domain::{Input, Link, SubscriptionState};
use subsync_eventlog::FetchMeta;
use subsync_queue::JobError;
use subsync_stripe::{CheckoutSession, Envelope, Expandable, StripeObject, Subscription, app_user_id};

use super::SyncContext;
use super::input::{self, Decision};
use crate::fetch::{FetchError, FetchedObject, RefetchMode};

/// The inputs of a subscription Stripe's API returned at `date` (fetched at our
/// `fetched_at`): its snapshot, and the links its expanded customer's metadata and its
/// checkout session make to our user.
pub(crate) fn inputs_of(
    object: &serde_json::Value,
    date: i64,
    fetched_at: i64,
    event_id: &str,
    session: Option<&serde_json::Value>,
) -> Result<Vec<Input>, JobError> {
    let sub = Subscription::from_value(object)
        .map_err(|e| JobError::permanent(format!("fetched subscription does not parse: {e} [{}]", e.code())))?;
    let mut inputs = vec![Input::Snapshot(input::snapshot(&sub, date, event_id, Some(fetched_at)))];
    if let Some(Expandable::Object(customer)) = &sub.customer
        && let Some(user) = app_user_id(&customer.metadata)
    {
        inputs.push(Input::Link(Link {
            subscription_id: sub.id.clone(),
            customer_id: customer.id.clone(),
            app_user_id: Some(user.to_owned()),
            client_reference_id: None,
            event_created: date,
        }));
    }
    if let Some(session) = session {
        let session = CheckoutSession::from_value(session)
            .map_err(|e| JobError::permanent(format!("fetched checkout session does not parse: {e}")))?;
        if let Decision::Apply(links) = input::link(&session, date)
            && links.iter().all(|l| l.subscription_id() == sub.id)
        {
            inputs.extend(links);
        }
    }
    Ok(inputs)
}

/// A fetched subscription stored in the event log (a backfill): its inputs.
pub(crate) fn stored_fetch(env: &Envelope, payload: &str) -> Result<Decision, JobError> {
    let body: serde_json::Value = serde_json::from_str(payload)
        .map_err(|e| JobError::permanent(format!("stored fetch {} is not JSON: {e}", env.id)))?;
    let meta = FetchMeta::of_payload(&body)
        .ok_or_else(|| JobError::permanent(format!("stored fetch {} carries no fetch metadata", env.id)))?;
    let (Some(object), Some(date)) = (env.data_object(), env.created) else {
        return Err(JobError::permanent(format!("stored fetch {} has no subscription or date", env.id)));
    };
    Ok(Decision::Apply(inputs_of(object, date, meta.fetched_at, &env.id, meta.checkout_session.as_ref())?))
}

/// Our clock in unix nanoseconds, for ordering fetches made within one Stripe second.
fn now_nanos() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Turns a decision that needs Stripe's answer before the transaction into one that has
/// it: thin events are fetched (skipped with a reason without an API key), and so is every
/// snapshot in [`RefetchMode::Always`]. A same-second conflict is found only inside the
/// transaction, where the stored state is read anyway ([`needs_conflict_fetch`]), and
/// settled by [`fetch_beside`] before the job runs again.
pub(crate) async fn resolve(ctx: &SyncContext, event_id: &str, decision: Decision) -> Result<Decision, JobError> {
    if let Decision::FetchThin { subscription_id } = &decision {
        let Some(fetcher) = ctx.fetcher() else {
            return Ok(Decision::Ignore {
                subscription_id: Some(subscription_id.clone()),
                reason: "thin event: applying it needs Stripe's API (set STRIPE_API_KEY), skipped".into(),
            });
        };
        let fetched = fetcher.subscription(subscription_id).await.map_err(|e| fetch_failed(subscription_id, e))?;
        return Ok(Decision::Apply(inputs_of(&fetched.object, fetched.date, now_nanos(), event_id, None)?));
    }
    if ctx.refetch_mode() == RefetchMode::Always && decision.event_snapshot().is_some() {
        return fetch_beside(ctx, event_id, decision).await;
    }
    Ok(decision)
}

/// Whether the event's snapshot conflicts, within one Stripe second, with the `stored`
/// state, and Stripe's API can settle it (the job then rolls back, asks, and runs again).
/// Without an API key the conflict is decided by the status rank, with a warning.
pub(crate) fn needs_conflict_fetch(ctx: &SyncContext, stored: Option<&SubscriptionState>, decision: &Decision) -> bool {
    let Some(snapshot) = decision.event_snapshot() else { return false };
    if ctx.refetch_mode() != RefetchMode::OnConflict || !stored.is_some_and(|s| s.same_second_conflict(snapshot)) {
        return false;
    }
    if ctx.fetcher().is_none() {
        tracing::warn!(
            subscription_id = %snapshot.subscription_id,
            "two different snapshots in one second: decided by the status rank, without Stripe (no API key)"
        );
        return false;
    }
    true
}

/// Appends the subscription as Stripe's API returns it now to the event's inputs: in
/// [`RefetchMode::Always`], or to settle a same-second conflict [`needs_conflict_fetch`]
/// found. A conflict whose fetch fails falls back to the rank rule (no worse than without a
/// key) and says so.
pub(crate) async fn fetch_beside(ctx: &SyncContext, event_id: &str, decision: Decision) -> Result<Decision, JobError> {
    let (Some(fetcher), Some(snapshot)) = (ctx.fetcher(), decision.event_snapshot()) else { return Ok(decision) };
    let sub_id = snapshot.subscription_id.clone();
    match fetcher.subscription(&sub_id).await {
        Ok(FetchedObject { object, date }) => {
            let Decision::Apply(mut inputs) = decision else { return Ok(decision) };
            inputs.extend(inputs_of(&object, date, now_nanos(), event_id, None)?);
            tracing::info!(subscription_id = %sub_id, stripe_date = date, "applied the subscription as fetched from Stripe");
            Ok(Decision::Apply(inputs))
        }
        Err(e) if ctx.refetch_mode() == RefetchMode::Always => Err(fetch_failed(&sub_id, e)),
        Err(e) => {
            tracing::warn!(subscription_id = %sub_id, error = %e, "could not ask Stripe about a same-second conflict: decided by the status rank");
            Ok(decision)
        }
    }
}

fn fetch_failed(subscription_id: &str, err: FetchError) -> JobError {
    let message = format!("fetching subscription {subscription_id}: {err}");
    match err {
        FetchError::Unavailable(_) => JobError::retry(message),
        FetchError::Refused(_) => JobError::permanent(message),
    }
}
