use serde_json::{Value, json};

use super::*;
use crate::objects::{CheckoutSession, Invoice, Subscription};

fn event(event_type: &str, object: Value) -> Value {
    json!({
        "id": "evt_1",
        "object": "event",
        "type": event_type,
        "created": 1_700_000_000,
        "livemode": false,
        "api_version": "2025-03-31.basil",
        "data": { "object": object },
    })
}

fn parse(value: &Value) -> Envelope {
    Envelope::parse(value.to_string().as_bytes()).expect("valid envelope")
}

fn code(raw: &[u8]) -> &'static str {
    Envelope::parse(raw).expect_err("must fail").code()
}

#[test]
fn parses_snapshot_event_fields() {
    let env = parse(&event("customer.subscription.updated", json!({"id": "sub_1", "object": "subscription"})));
    assert_eq!(env.id, "evt_1");
    assert_eq!(env.event_type, "customer.subscription.updated");
    assert_eq!(env.created, Some(1_700_000_000));
    assert!(!env.livemode);
    assert_eq!(env.api_version.as_deref(), Some("2025-03-31.basil"));
    assert!(!env.is_thin());
    assert_eq!(env.data_object().and_then(|o| o.get("id")), Some(&json!("sub_1")));
    assert_eq!(env.previous_attributes(), None);
}

#[test]
fn defaults_livemode_and_api_version_and_object() {
    let raw = br#"{"id":"evt_1","type":"x.y","created":5,"api_version":null,"data":{"object":{}}}"#;
    let env = Envelope::parse(raw).expect("valid");
    assert!(!env.livemode);
    assert_eq!(env.api_version, None);
    let raw = br#"{"id":"evt_1","type":"x.y","created":5,"livemode":true,"data":{"object":{},"previous_attributes":{"status":"trialing"}}}"#;
    let env = Envelope::parse(raw).expect("valid");
    assert!(env.livemode);
    assert_eq!(env.previous_attributes(), Some(&json!({"status": "trialing"})));
}

#[test]
fn stripe_fixture_event_parses() {
    let env = Envelope::parse(include_bytes!("../../tests/fixtures/event.json")).expect("fixture");
    assert_eq!(env.event_type, "plan.created");
    assert_eq!(env.created, Some(1234567890));
    assert_eq!(env.api_version, None);
    assert_eq!(env.kind(), EventKind::Ignored);
    assert_eq!(env.group_key(), GroupKey::None);
}

#[test]
fn thin_event_parses_and_is_flagged() {
    let raw = br#"{"id":"evt_test_65R","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered","livemode":false,"created":"2024-09-17T06:20:52.246Z","related_object":{"id":"mtr_1","type":"billing.meter","url":"/v1/billing/meters/mtr_1"}}"#;
    let env = Envelope::parse(raw).expect("thin");
    assert!(env.is_thin());
    assert_eq!(env.created, None);
    assert_eq!(env.data_object(), None);
    assert_eq!(env.kind(), EventKind::Thin);
    assert!(!env.kind().handled());
    assert_eq!(env.group_key(), GroupKey::None);
    assert_eq!(env.thin_subscription(), None);
    assert_eq!(env.related_object().map(|r| r.object_type.as_str()), Some("billing.meter"));
    assert_eq!(env.object::<Subscription>().expect_err("no object").code(), "no_data_object");
}

#[test]
fn thin_event_about_a_subscription_names_it_and_groups_by_it() {
    let raw = br#"{"id":"evt_thin_1","object":"v2.core.event","type":"v1.customer.subscription.updated","livemode":false,"created":"2026-11-30T10:00:00.123Z","related_object":{"id":"sub_9","type":"subscription","url":"/v1/subscriptions/sub_9"}}"#;
    let env = Envelope::parse(raw).expect("thin");
    assert_eq!(env.thin_subscription(), Some("sub_9"));
    assert_eq!(env.group_key(), GroupKey::Subscription("sub_9".into()));
    assert_eq!(env.related_object().and_then(|r| r.url.as_deref()), Some("/v1/subscriptions/sub_9"));
}

#[test]
fn thin_event_with_a_malformed_related_object_is_refused() {
    let raw = br#"{"id":"evt_thin_2","object":"v2.core.event","type":"x","related_object":{"id":7}}"#;
    assert_eq!(code(raw), "invalid_field");
    let raw = br#"{"id":"evt_thin_3","object":"v2.core.event","type":"x","related_object":null}"#;
    assert_eq!(Envelope::parse(raw).expect("no related object is fine").related_object(), None);
}

#[test]
fn error_codes() {
    assert_eq!(code(b"\xff"), "invalid_utf8");
    assert_eq!(code(b""), "invalid_json");
    assert_eq!(code(b"{"), "invalid_json");
    assert_eq!(code(b"[1]"), "not_an_object");
    assert_eq!(code(b"\"evt\""), "not_an_object");
    assert_eq!(code(br#"{"type":"a","created":1,"data":{"object":{}}}"#), "missing_id");
    assert_eq!(code(br#"{"id":"","type":"a","created":1,"data":{"object":{}}}"#), "missing_id");
    assert_eq!(code(br#"{"id":7,"type":"a","created":1,"data":{"object":{}}}"#), "missing_id");
    assert_eq!(code(br#"{"id":"e","created":1,"data":{"object":{}}}"#), "missing_type");
    assert_eq!(code(br#"{"id":"e","type":null,"created":1,"data":{"object":{}}}"#), "missing_type");
    assert_eq!(code(br#"{"id":"e","type":"a","data":{"object":{}}}"#), "missing_created");
    assert_eq!(code(br#"{"id":"e","type":"a","created":"1","data":{"object":{}}}"#), "invalid_field");
    assert_eq!(code(br#"{"id":"e","type":"a","created":1.5,"data":{"object":{}}}"#), "invalid_field");
    assert_eq!(code(br#"{"id":"e","type":"a","created":1}"#), "missing_data_object");
    assert_eq!(code(br#"{"id":"e","type":"a","created":1,"data":{"object":[]}}"#), "missing_data_object");
    assert_eq!(
        code(br#"{"id":"e","type":"a","created":1,"data":{"object":{}},"object":"customer"}"#),
        "unexpected_object"
    );
    assert_eq!(code(br#"{"id":"e","type":"a","created":1,"data":{"object":{}},"object":5}"#), "unexpected_object");
    assert_eq!(code(br#"{"id":"e","type":"a","created":1,"data":{"object":{}},"livemode":"yes"}"#), "invalid_field");
    assert_eq!(code(br#"{"id":"e","type":"a","created":1,"data":{"object":{}},"api_version":1}"#), "invalid_field");
}

#[test]
fn error_messages_are_human() {
    let err = Envelope::parse(b"\"x\"").expect_err("not object");
    assert_eq!(err.to_string(), "event body is JSON but not an object");
    let err = Envelope::parse(b"{\"a\":\xff}").expect_err("utf8");
    assert!(err.to_string().contains("offset 5"), "{err}");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let depth = 100_000;
        let mut raw = String::with_capacity(depth * (open.len() + close.len()));
        for _ in 0..depth {
            raw.push_str(open);
        }
        for _ in 0..depth {
            raw.push_str(close);
        }
        assert_eq!(code(raw.as_bytes()), "invalid_json");
        // Nested inside data.object of an otherwise valid event, too.
        let wrapped = format!(r#"{{"id":"e","type":"a","created":1,"data":{{"object":{{"x":{raw}}}}}}}"#);
        assert_eq!(code(wrapped.as_bytes()), "invalid_json");
    }
}

#[test]
fn event_kinds() {
    let handled = [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
        "customer.subscription.trial_will_end",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "entitlements.active_entitlement_summary.updated",
    ];
    for t in handled {
        let kind = EventKind::from_type(t);
        assert!(kind.handled(), "{t}");
        assert_eq!(kind.event_type(), Some(t));
    }
    assert_eq!(EventKind::handled_event_types().count(), handled.len());
    for t in ["invoice.created", "customer.created", "checkout.session.expired", "plan.created", ""] {
        assert_eq!(EventKind::from_type(t), EventKind::Ignored, "{t}");
        assert!(!EventKind::Ignored.handled());
    }
    assert_eq!(EventKind::Thin.event_type(), None);
    assert_eq!(parse(&event("invoice.paid", json!({}))).kind(), EventKind::InvoicePaid);
    // A Stripe Entitlements summary names a customer, not a subscription: grouped by customer.
    let summary = json!({"object": "entitlements.active_entitlement_summary", "customer": "cus_9"});
    let env = parse(&event("entitlements.active_entitlement_summary.updated", summary));
    assert_eq!(env.kind(), EventKind::EntitlementSummaryUpdated);
    assert_eq!(env.group_key(), GroupKey::Customer("cus_9".into()));
}

fn key(event_type: &str, object: Value) -> GroupKey {
    parse(&event(event_type, object)).group_key()
}

fn sub(id: &str) -> GroupKey {
    GroupKey::Subscription(id.to_owned())
}

fn cus(id: &str) -> GroupKey {
    GroupKey::Customer(id.to_owned())
}

#[test]
fn routing_checkout() {
    for t in [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
    ] {
        let plain = json!({"id": "cs_1", "mode": "subscription", "subscription": "sub_A", "customer": "cus_B"});
        assert_eq!(key(t, plain), sub("sub_A"), "{t}");
        let expanded = json!({"id": "cs_1", "mode": "subscription", "subscription": {"id": "sub_A", "status": "active"}, "customer": {"id": "cus_B"}});
        assert_eq!(key(t, expanded), sub("sub_A"), "{t}");
        // Payment mode never names a subscription; falls back to the customer.
        let payment = json!({"id": "cs_1", "mode": "payment", "subscription": "sub_A", "customer": "cus_B"});
        assert_eq!(key(t, payment), cus("cus_B"), "{t}");
        let nothing = json!({"id": "cs_1", "mode": "payment", "subscription": null, "customer": null});
        assert_eq!(key(t, nothing), GroupKey::None, "{t}");
    }
    // checkout.session.expired is not in the checkout rule: customer only.
    let expired = json!({"id": "cs_1", "mode": "subscription", "subscription": "sub_A", "customer": "cus_B"});
    assert_eq!(key("checkout.session.expired", expired), cus("cus_B"));
}

#[test]
fn routing_subscription_events() {
    let object = json!({"id": "sub_A", "object": "subscription", "customer": "cus_B"});
    for t in ["customer.subscription.updated", "customer.subscription.deleted", "customer.subscription.trial_will_end"]
    {
        assert_eq!(key(t, object.clone()), sub("sub_A"), "{t}");
    }
}

#[test]
fn routing_invoice_both_api_shapes() {
    let basil = json!({"id": "in_1", "customer": "cus_B", "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_NEW"}}});
    assert_eq!(key("invoice.paid", basil), sub("sub_NEW"));
    let legacy = json!({"id": "in_1", "customer": "cus_B", "subscription": "sub_OLD"});
    assert_eq!(key("invoice.payment_failed", legacy), sub("sub_OLD"));
    let both = json!({"id": "in_1", "subscription": "sub_OLD", "parent": {"subscription_details": {"subscription": {"id": "sub_NEW"}}}});
    assert_eq!(key("invoice.payment_succeeded", both), sub("sub_NEW"));
    let parent_without_sub = json!({"id": "in_1", "customer": {"id": "cus_B"}, "subscription": null, "parent": {"type": "quote_details", "subscription_details": null}});
    assert_eq!(key("invoice.paid", parent_without_sub), cus("cus_B"));
    let fixture: Value = serde_json::from_str(include_str!("../../tests/fixtures/invoice.json")).expect("fixture");
    assert_eq!(key("invoice.paid", fixture), sub("subscription"));
}

#[test]
fn routing_customer_fallbacks() {
    assert_eq!(key("customer.updated", json!({"id": "cus_C", "object": "customer"})), cus("cus_C"));
    assert_eq!(key("payment_intent.succeeded", json!({"id": "pi_1", "customer": "cus_D"})), cus("cus_D"));
    assert_eq!(key("charge.refunded", json!({"id": "ch_1", "customer": {"id": "cus_E"}})), cus("cus_E"));
    assert_eq!(key("plan.created", json!({"id": "plan_1", "object": "plan"})), GroupKey::None);
    assert_eq!(key("customer.subscription.updated", json!({"id": ""})), GroupKey::None);
    assert_eq!(key("customer.subscription.updated", json!({"id": 5, "customer": 7})), GroupKey::None);
}

#[test]
fn queue_group_strings() {
    assert_eq!(sub("sub_A").as_queue_group(), "sub_A");
    assert_eq!(cus("cus_B").as_queue_group(), "cus_B");
    assert_eq!(GroupKey::None.as_queue_group(), "");
    assert_eq!(sub("sub_A").subscription_id(), Some("sub_A"));
    assert_eq!(cus("cus_B").subscription_id(), None);
}

#[test]
fn typed_object_access_checks_object_kind() {
    let env = parse(&event(
        "customer.subscription.created",
        json!({"id": "sub_A", "object": "subscription", "status": "active", "customer": "cus_B"}),
    ));
    let subscription: Subscription = env.object().expect("subscription");
    assert_eq!(subscription.customer_id(), Some("cus_B"));
    let err = env.object::<Invoice>().expect_err("not an invoice");
    assert_eq!(err.code(), "wrong_object_type");
    let err = env.object::<CheckoutSession>().expect_err("not a session");
    assert!(err.to_string().contains("checkout.session"), "{err}");

    let env = parse(&event("customer.subscription.created", json!({"id": "sub_A", "object": "subscription"})));
    assert_eq!(env.object::<Subscription>().expect_err("no status").code(), "invalid_object");
}
