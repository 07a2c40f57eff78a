//! The event log's rows: what the intake (or any other writer) stores, and what readers get
//! back.

use serde::{Serialize, Serializer};
use subsync_stripe::Envelope;
use uuid::Uuid;

/// Longest event id, type or group key accepted. Stripe ids are short printable ASCII;
/// anything longer cannot be a real event and would only fail later in the database
/// (indexes refuse huge keys).
pub const MAX_ID_LEN: usize = 255;

/// The `object_kind` of a thin event (`"object": "v2.core.event"`).
pub const THIN_OBJECT: &str = "v2.core.event";

/// What the worker will do with an event, decided when it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    /// A subscription sync job is enqueued.
    Handled,
    /// Stored for the record; no job (the worker has nothing to do for this type).
    Ignored,
    /// Stored but not acted on (thin `v2.core.event` events about objects the worker does
    /// not fetch).
    Unsupported,
}

impl Disposition {
    /// The stored text (the column's CHECK constraint allows exactly these).
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Handled => "handled",
            Disposition::Ignored => "ignored",
            Disposition::Unsupported => "unsupported",
        }
    }

    /// Reads the stored text back; `None` for anything else (a corrupt row).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "handled" => Some(Disposition::Handled),
            "ignored" => Some(Disposition::Ignored),
            "unsupported" => Some(Disposition::Unsupported),
            _ => None,
        }
    }
}

impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a verified body cannot become an event record. The intake answers 400 with
/// [`RecordError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    code: &'static str,
    message: String,
}

impl RecordError {
    pub(crate) fn new(code: &'static str, message: String) -> Self {
        Self { code, message }
    }

    /// Stable, machine-readable reason (`invalid_json`, `invalid_event_id`, …).
    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// A verified, parsed Stripe event ready to store.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// `evt_…`.
    pub event_id: String,
    /// e.g. `customer.subscription.updated`.
    pub event_type: String,
    /// `event.created`, unix seconds (absent on thin events).
    pub created: Option<i64>,
    /// Live or test mode.
    pub livemode: bool,
    /// Stripe API version of the payload.
    pub api_version: Option<String>,
    /// `event` or `v2.core.event`.
    pub object_kind: &'static str,
    /// Subscription id, else customer id, else empty: the sync job's group.
    pub group_key: String,
    /// Handled, ignored or unsupported.
    pub disposition: Disposition,
    /// The raw body, exactly as signed.
    pub payload: String,
}

impl EventRecord {
    /// The record for a body whose signature was verified: parses the envelope, checks its
    /// ids are plausible, and decides the disposition (handled types and thin events about a
    /// subscription get a sync job; other thin events are kept).
    pub fn from_body(body: &[u8]) -> Result<Self, RecordError> {
        let bad = |code: &'static str, message: String| RecordError { code, message };
        let envelope = Envelope::parse(body).map_err(|e| bad(e.code(), e.to_string()))?;
        // PostgreSQL refuses NUL in text; control characters are never in a Stripe id.
        let plausible = |s: &str| !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control);
        if !plausible(&envelope.id) || !plausible(&envelope.event_type) {
            return Err(bad(
                "invalid_event_id",
                format!("event id and type must be 1..={MAX_ID_LEN} bytes without control characters"),
            ));
        }
        let group_key = envelope.group_key().as_queue_group();
        if group_key.len() > MAX_ID_LEN || group_key.chars().any(char::is_control) {
            return Err(bad(
                "invalid_field",
                format!(
                    "the subscription or customer id must be at most {MAX_ID_LEN} bytes without control characters"
                ),
            ));
        }
        // Envelope::parse accepted it as UTF-8 already.
        let payload = String::from_utf8_lossy(body).into_owned();
        let (disposition, object_kind) = if envelope.is_thin() {
            // A thin event about a subscription is applied by fetching it; others are kept.
            let disposition =
                if envelope.thin_subscription().is_some() { Disposition::Handled } else { Disposition::Unsupported };
            (disposition, THIN_OBJECT)
        } else if envelope.kind().handled() {
            (Disposition::Handled, "event")
        } else {
            (Disposition::Ignored, "event")
        };
        Ok(EventRecord {
            group_key,
            event_id: envelope.id,
            event_type: envelope.event_type,
            created: envelope.created,
            livemode: envelope.livemode,
            api_version: envelope.api_version,
            object_kind,
            disposition,
            payload,
        })
    }
}

/// The result of storing one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The event was already stored (a redelivery): nothing new was written.
    pub duplicate: bool,
    /// The event's sync job (the first one, for a duplicate); none for ignored events.
    pub job_id: Option<Uuid>,
}

/// An event as stored, read back for the worker and for operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// Handled, ignored or unsupported.
    pub disposition: Disposition,
    /// Its sync job.
    pub job_id: Option<Uuid>,
    /// The body exactly as received; shown as JSON (it is, for every accepted event).
    #[serde(serialize_with = "as_json")]
    pub payload: String,
}

/// Serializes the raw body as the JSON it contains, so operators read an object rather than
/// an escaped string; falls back to the string itself.
fn as_json<S: Serializer>(raw: &str, serializer: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(value) => value.serialize(serializer),
        Err(_) => serializer.serialize_str(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(id: &str, event_type: &str, object: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": id, "object": "event", "type": event_type, "created": 1_700_000_000,
            "livemode": false, "api_version": "2025-03-31.basil", "data": { "object": object }
        }))
        .expect("json")
    }

    #[test]
    fn a_subscription_event_is_handled_and_grouped_by_its_subscription() {
        let raw = body(
            "evt_1",
            "customer.subscription.updated",
            serde_json::json!({ "id": "sub_1", "object": "subscription", "customer": "cus_1" }),
        );
        let record = EventRecord::from_body(&raw).expect("record");
        assert_eq!(record.disposition, Disposition::Handled);
        assert_eq!(record.group_key, "sub_1");
        assert_eq!(record.object_kind, "event");
        assert_eq!(record.payload.as_bytes(), raw.as_slice());
    }

    #[test]
    fn an_unhandled_type_is_ignored() {
        let raw = body("evt_2", "plan.created", serde_json::json!({ "id": "plan_1", "object": "plan" }));
        assert_eq!(EventRecord::from_body(&raw).expect("record").disposition, Disposition::Ignored);
    }

    #[test]
    fn implausible_ids_are_refused_with_a_code() {
        let long = "e".repeat(MAX_ID_LEN + 1);
        let raw = body(&long, "plan.created", serde_json::json!({ "id": "plan_1", "object": "plan" }));
        assert_eq!(EventRecord::from_body(&raw).expect_err("too long").code(), "invalid_event_id");
        assert!(EventRecord::from_body(b"not json").is_err());
    }

    #[test]
    fn dispositions_round_trip_through_their_stored_text() {
        for d in [Disposition::Handled, Disposition::Ignored, Disposition::Unsupported] {
            assert_eq!(Disposition::parse(d.as_str()), Some(d));
            assert_eq!(serde_json::to_value(d).expect("json"), serde_json::json!(d.as_str()));
        }
        assert_eq!(Disposition::parse("Handled"), None);
    }

    #[test]
    fn a_stored_payload_is_shown_as_json() {
        let event = StoredEvent {
            event_id: "evt_1".into(),
            event_type: "t".into(),
            created: None,
            livemode: false,
            api_version: None,
            object_kind: "event".into(),
            group_key: String::new(),
            disposition: Disposition::Ignored,
            job_id: None,
            payload: r#"{"id":"evt_1"}"#.into(),
        };
        let json = serde_json::to_value(&event).expect("json");
        assert_eq!(json["payload"], serde_json::json!({ "id": "evt_1" }));
        assert_eq!(json["disposition"], "ignored");
    }
}
