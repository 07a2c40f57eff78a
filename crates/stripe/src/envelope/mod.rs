//! The Stripe event envelope: the few top-level fields every consumer needs
//! (id for dedup, type for dispatch, created for ordering), with `data.object`
//! kept as JSON for typed parsing later (see [`crate::objects`]).
//!
//! Both snapshot events (`"object": "event"`, the whole object inside) and
//! thin events (`"object": "v2.core.event"`, only a reference) parse, so the
//! intake can store everything it verified. A thin event carries its
//! [`RelatedObject`]: when that is a subscription the worker fetches it from
//! Stripe's API ([`Envelope::thin_subscription`]); other thin events are kept
//! but not acted on.

mod kind;
mod routing;

use serde_json::{Map, Value};

use crate::objects::{ObjectError, StripeObject};

pub use kind::EventKind;
pub use routing::GroupKey;

/// Why a (verified) body is not a usable event. Each variant has its own
/// [`code`](Self::code) for storage and metrics.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is not UTF-8 (JSON must be).
    #[error("event body is not valid UTF-8 (first invalid byte at offset {valid_up_to})")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        valid_up_to: usize,
    },
    /// Not JSON, truncated, or nested deeper than serde_json's limit of 128.
    #[error("event body is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// JSON, but not an object at the top level.
    #[error("event body is JSON but not an object")]
    NotAnObject,
    /// No non-empty string `id`: the event cannot be deduplicated.
    #[error("event has no non-empty string `id`")]
    MissingId,
    /// No non-empty string `type`: the event cannot be dispatched.
    #[error("event has no non-empty string `type`")]
    MissingType,
    /// A snapshot event without an integer `created`: it cannot be ordered.
    #[error("snapshot event has no `created` timestamp")]
    MissingCreated,
    /// A snapshot event without `data.object` as a JSON object.
    #[error("snapshot event has no `data.object` object")]
    MissingDataObject,
    /// `object` is present but neither `event` nor `v2.core.event`: some other
    /// Stripe object was posted to the webhook endpoint.
    #[error("`object` is {found:?}, expected \"event\" or \"v2.core.event\"")]
    UnexpectedObject {
        /// The `object` value found (JSON text if not a string, truncated).
        found: String,
    },
    /// A known field has the wrong JSON type.
    #[error("event field `{field}` has the wrong type (expected {expected})")]
    InvalidField {
        /// Field path, e.g. `livemode`.
        field: &'static str,
        /// What Stripe sends there.
        expected: &'static str,
    },
}

impl EnvelopeError {
    /// Stable machine-readable code, e.g. stored with a rejected event.
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::InvalidUtf8 { .. } => "invalid_utf8",
            EnvelopeError::InvalidJson(_) => "invalid_json",
            EnvelopeError::NotAnObject => "not_an_object",
            EnvelopeError::MissingId => "missing_id",
            EnvelopeError::MissingType => "missing_type",
            EnvelopeError::MissingCreated => "missing_created",
            EnvelopeError::MissingDataObject => "missing_data_object",
            EnvelopeError::UnexpectedObject { .. } => "unexpected_object",
            EnvelopeError::InvalidField { .. } => "invalid_field",
        }
    }
}

/// A parsed event envelope; cheap to route and classify, and holding
/// `data.object` for typed parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `evt_…`: the dedup key (Stripe redelivers the same id).
    pub id: String,
    /// e.g. `customer.subscription.updated`.
    pub event_type: String,
    /// Unix seconds. Always `Some` for snapshot events (parse enforces it);
    /// `None` for thin events, whose `created` is an RFC 3339 string not read here.
    pub created: Option<i64>,
    /// Whether the event comes from live mode (false if absent).
    pub livemode: bool,
    /// API version the payload was rendered with; decides where some fields
    /// live (see [`crate::objects`]). `None` if absent or null.
    pub api_version: Option<String>,
    thin: bool,
    related_object: Option<RelatedObject>,
    data_object: Option<Value>,
    previous_attributes: Option<Value>,
}

/// What a thin event is about: a reference to fetch, instead of the object itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedObject {
    /// The object's id, e.g. `sub_…`.
    pub id: String,
    /// Its object tag, e.g. `subscription`.
    pub object_type: String,
    /// Its API path, e.g. `/v1/subscriptions/sub_…`, when given.
    pub url: Option<String>,
}

impl RelatedObject {
    fn parse(value: Option<Value>) -> Result<Option<RelatedObject>, EnvelopeError> {
        let bad = || invalid("related_object", "an object with string `id` and `type`");
        let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
        let Value::Object(mut map) = value else { return Err(bad()) };
        let id = non_empty_string(&mut map, "id").ok_or_else(bad)?;
        let object_type = non_empty_string(&mut map, "type").ok_or_else(bad)?;
        let url = non_empty_string(&mut map, "url");
        Ok(Some(RelatedObject { id, object_type, url }))
    }
}

const THIN_OBJECT: &str = "v2.core.event";
const SNAPSHOT_OBJECT: &str = "event";

impl Envelope {
    /// Parses raw body bytes (after signature verification). Never panics, and
    /// deeply nested input yields [`EnvelopeError::InvalidJson`], not a stack overflow.
    pub fn parse(raw: &[u8]) -> Result<Envelope, EnvelopeError> {
        let text = std::str::from_utf8(raw).map_err(|e| EnvelopeError::InvalidUtf8 { valid_up_to: e.valid_up_to() })?;
        let value: Value = serde_json::from_str(text).map_err(EnvelopeError::InvalidJson)?;
        let Value::Object(mut map) = value else {
            return Err(EnvelopeError::NotAnObject);
        };

        let thin = match map.get("object") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) if s == SNAPSHOT_OBJECT => false,
            Some(Value::String(s)) if s == THIN_OBJECT => true,
            Some(other) => {
                return Err(EnvelopeError::UnexpectedObject { found: describe(other) });
            }
        };
        let id = non_empty_string(&mut map, "id").ok_or(EnvelopeError::MissingId)?;
        let event_type = non_empty_string(&mut map, "type").ok_or(EnvelopeError::MissingType)?;
        let livemode = match map.get("livemode") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("livemode", "a boolean")),
        };
        let api_version = match map.remove("api_version") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(invalid("api_version", "a string or null")),
        };

        let related_object = if thin { RelatedObject::parse(map.remove("related_object"))? } else { None };
        let (created, data_object, previous_attributes) = if thin {
            (None, None, None)
        } else {
            let created = match map.get("created") {
                None | Some(Value::Null) => return Err(EnvelopeError::MissingCreated),
                Some(Value::Number(n)) => n.as_i64().ok_or_else(|| invalid("created", "an integer (Unix seconds)"))?,
                Some(_) => return Err(invalid("created", "an integer (Unix seconds)")),
            };
            let mut data = match map.remove("data") {
                Some(Value::Object(data)) => data,
                _ => return Err(EnvelopeError::MissingDataObject),
            };
            let object = match data.remove("object") {
                Some(object @ Value::Object(_)) => object,
                _ => return Err(EnvelopeError::MissingDataObject),
            };
            let previous = data.remove("previous_attributes").filter(|v| !v.is_null());
            (Some(created), Some(object), previous)
        };

        Ok(Envelope {
            id,
            event_type,
            created,
            livemode,
            api_version,
            thin,
            related_object,
            data_object,
            previous_attributes,
        })
    }

    /// Thin (v2) events carry no object, only a [`RelatedObject`] to fetch.
    pub fn is_thin(&self) -> bool {
        self.thin
    }

    /// A thin event's related object, if it names one.
    pub fn related_object(&self) -> Option<&RelatedObject> {
        self.related_object.as_ref()
    }

    /// The subscription a thin event is about, when its related object is one: applying it
    /// means fetching that subscription from Stripe's API.
    pub fn thin_subscription(&self) -> Option<&str> {
        self.related_object.as_ref().filter(|r| r.object_type == "subscription").map(|r| r.id.as_str())
    }

    /// `data.object` of a snapshot event (always a JSON object); `None` for thin events.
    pub fn data_object(&self) -> Option<&Value> {
        self.data_object.as_ref()
    }

    /// `data.previous_attributes` of `*.updated` events: which fields changed.
    pub fn previous_attributes(&self) -> Option<&Value> {
        self.previous_attributes.as_ref()
    }

    /// Which handler, if any, the worker runs for this event.
    pub fn kind(&self) -> EventKind {
        if self.thin { EventKind::Thin } else { EventKind::from_type(&self.event_type) }
    }

    /// Which subscription (or customer) this event is about, so events for
    /// the same one are processed one at a time, in order.
    pub fn group_key(&self) -> GroupKey {
        match (&self.data_object, self.thin_subscription()) {
            (Some(object), _) => routing::group_key(&self.event_type, object),
            (None, Some(subscription)) => GroupKey::Subscription(subscription.to_owned()),
            (None, None) => GroupKey::None,
        }
    }

    /// `data.object` as a typed Stripe object, refusing an object of another
    /// kind (e.g. an invoice read as a subscription) when `object` says so.
    pub fn object<T: StripeObject>(&self) -> Result<T, ObjectError> {
        match &self.data_object {
            Some(object) => T::from_value(object),
            None => Err(ObjectError::NoObject),
        }
    }
}

fn non_empty_string(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn invalid(field: &'static str, expected: &'static str) -> EnvelopeError {
    EnvelopeError::InvalidField { field, expected }
}

/// A short description of an unexpected value for an error message (bounded length).
fn describe(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
