//! Subscriptions fetched from Stripe's API (a backfill), stored as events so they travel the
//! same log and queue as webhooks: the same unique keys, the same per-subscription order, the
//! same worker.
//!
//! A fetched subscription becomes a synthetic event of type [`FETCHED_TYPE`] whose
//! `created` is Stripe's `Date` response header (Stripe's clock at the fetch) and whose body
//! also carries [`FetchMeta`] under `"subsync"`. Its id is derived from the object's content,
//! so fetching an unchanged subscription again stores nothing new, while any change gives a
//! new id (and a new job).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::record::{Disposition, EventRecord, MAX_ID_LEN, RecordError};

/// The `object_kind` of an event row holding a fetched subscription.
pub const FETCHED_OBJECT: &str = "subsync.fetched";

/// The event type of a fetched subscription (never a Stripe type, so no reader mistakes it
/// for a webhook).
pub const FETCHED_TYPE: &str = "subsync.subscription.fetched";

/// How and when a stored snapshot was fetched; the worker orders it by these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchMeta {
    /// Our clock at the fetch (unix nanoseconds): orders fetches within Stripe's second.
    pub fetched_at: i64,
    /// What fetched it (`backfill`).
    pub source: String,
    /// The checkout session that created the subscription, if one was found: it can name
    /// our user (`client_reference_id`, metadata) as the webhook would have.
    #[serde(default)]
    pub checkout_session: Option<Value>,
}

impl FetchMeta {
    /// The metadata of a stored fetched event's body, if it is one.
    pub fn of_payload(payload: &Value) -> Option<FetchMeta> {
        serde_json::from_value(payload.get("subsync")?.clone()).ok()
    }
}

/// A subscription as Stripe's API returned it, about to be stored.
#[derive(Debug, Clone)]
pub struct FetchedSubscription<'a> {
    /// The subscription object (its customer may be expanded).
    pub subscription: &'a Value,
    /// Stripe's `Date` response header (unix seconds): when Stripe said this was true.
    pub date: i64,
    /// See [`FetchMeta`].
    pub meta: FetchMeta,
}

impl EventRecord {
    /// The record storing a fetched subscription (see the module docs). Refuses an object
    /// without a plausible subscription id.
    pub fn fetched_subscription(fetched: &FetchedSubscription<'_>) -> Result<Self, RecordError> {
        let object = fetched.subscription;
        let id = object.get("id").and_then(Value::as_str).unwrap_or_default();
        let is_subscription = object.get("object").and_then(Value::as_str).is_none_or(|o| o == "subscription");
        if !is_subscription || !id.starts_with("sub_") || id.len() > 64 || id.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(RecordError::new(
                "invalid_fetched_object",
                format!("a fetched object is not a subscription with a plausible id (got {:.64?})", id),
            ));
        }
        let event_id = format!("fetch_{id}_{}", content_hash(object, fetched.meta.checkout_session.as_ref()));
        debug_assert!(event_id.len() <= MAX_ID_LEN);
        let livemode = object.get("livemode").and_then(Value::as_bool).unwrap_or(false);
        let body = json!({
            "id": event_id,
            "object": "event",
            "type": FETCHED_TYPE,
            "created": fetched.date,
            "livemode": livemode,
            "api_version": null,
            "data": { "object": object },
            "subsync": fetched.meta,
        });
        Ok(EventRecord {
            event_id,
            event_type: FETCHED_TYPE.to_owned(),
            created: Some(fetched.date),
            livemode,
            api_version: None,
            object_kind: FETCHED_OBJECT,
            group_key: id.to_owned(),
            disposition: Disposition::Handled,
            payload: body.to_string(),
        })
    }
}

/// 24 hex digits of SHA-256 over the object (serde_json's maps are sorted, so the text is
/// canonical) and the checkout session's id: equal content, equal id.
fn content_hash(object: &Value, session: Option<&Value>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(object.to_string().as_bytes());
    if let Some(session_id) = session.and_then(|s| s.get("id")).and_then(Value::as_str) {
        hasher.update(b"\0");
        hasher.update(session_id.as_bytes());
    }
    let digest = hasher.finalize();
    hex::encode(&digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use subsync_stripe::Envelope;

    fn fetched(object: &Value, date: i64) -> EventRecord {
        let meta = FetchMeta { fetched_at: 7, source: "backfill".into(), checkout_session: None };
        EventRecord::fetched_subscription(&FetchedSubscription { subscription: object, date, meta }).expect("record")
    }

    #[test]
    fn the_same_content_gives_the_same_id_and_a_change_a_new_one() {
        let sub = json!({"id": "sub_1", "object": "subscription", "status": "active", "customer": "cus_1"});
        let a = fetched(&sub, 100);
        assert_eq!(a.event_id, fetched(&sub, 200).event_id, "the fetch time is not content");
        let changed = json!({"id": "sub_1", "object": "subscription", "status": "past_due", "customer": "cus_1"});
        assert_ne!(a.event_id, fetched(&changed, 100).event_id);
        assert!(a.event_id.starts_with("fetch_sub_1_"));
        assert_eq!(
            (a.group_key.as_str(), a.disposition, a.object_kind),
            ("sub_1", Disposition::Handled, FETCHED_OBJECT)
        );
    }

    #[test]
    fn the_stored_body_parses_as_an_event_and_carries_the_fetch() {
        let sub = json!({"id": "sub_1", "object": "subscription", "status": "active", "customer": "cus_1"});
        let record = fetched(&sub, 100);
        let env = Envelope::parse(record.payload.as_bytes()).expect("parses");
        assert_eq!((env.id.as_str(), env.created), (record.event_id.as_str(), Some(100)));
        assert_eq!(env.data_object(), Some(&sub));
        let body: Value = serde_json::from_str(&record.payload).expect("json");
        let meta = FetchMeta::of_payload(&body).expect("meta");
        assert_eq!((meta.fetched_at, meta.source.as_str()), (7, "backfill"));
    }

    #[test]
    fn anything_but_a_subscription_is_refused() {
        let meta = FetchMeta { fetched_at: 0, source: "backfill".into(), checkout_session: None };
        for bad in [json!({"id": "cus_1", "object": "customer"}), json!({"id": "sub_\u{0}"}), json!({})] {
            let fetched = FetchedSubscription { subscription: &bad, date: 1, meta: meta.clone() };
            let err = EventRecord::fetched_subscription(&fetched).expect_err("refused");
            assert_eq!(err.code(), "invalid_fetched_object");
        }
    }
}
