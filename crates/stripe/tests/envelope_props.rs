//! Property tests for the envelope parser: it must survive any (verified but
//! possibly nonsensical) body, and read back every field of a well-formed event.

use proptest::prelude::*;
use serde_json::{Value, json};
use subsync_stripe::{Envelope, GroupKey};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![Just("id"), Just("type"), Just("created"), Just("object"), Just("data"), Just("event")]
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z_]{1,8}",
                    Just("id".to_owned()),
                    Just("type".to_owned()),
                    Just("created".to_owned()),
                    Just("object".to_owned()),
                    Just("data".to_owned()),
                    Just("livemode".to_owned()),
                    Just("api_version".to_owned()),
                    Just("customer".to_owned()),
                    Just("subscription".to_owned()),
                    Just("mode".to_owned()),
                    Just("parent".to_owned()),
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("customer.subscription.updated".to_owned()),
        Just("checkout.session.completed".to_owned()),
        Just("invoice.paid".to_owned()),
        Just("customer.updated".to_owned()),
        "[a-z_]{1,10}(\\.[a-z_]{1,10}){0,3}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_on_arbitrary_bytes(raw in prop::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(env) = Envelope::parse(&raw) {
            let _ = (env.group_key(), env.kind());
        }
    }

    #[test]
    fn never_panics_on_arbitrary_json(value in arb_json()) {
        let raw = value.to_string();
        match Envelope::parse(raw.as_bytes()) {
            Ok(env) => { let _ = (env.group_key().as_queue_group(), env.kind().handled()); }
            Err(err) => { prop_assert!(!err.code().is_empty()); }
        }
    }

    #[test]
    fn never_panics_on_arbitrary_data_object(event_type in event_type(), object in arb_json()) {
        let value = json!({"id": "evt_1", "object": "event", "type": event_type, "created": 1, "data": {"object": object}});
        if let Ok(env) = Envelope::parse(value.to_string().as_bytes()) {
            let _ = (env.group_key(), env.kind());
            let _ = env.object::<subsync_stripe::Subscription>();
            let _ = env.object::<subsync_stripe::Invoice>();
            let _ = env.object::<subsync_stripe::CheckoutSession>();
        }
    }

    #[test]
    fn generated_envelopes_roundtrip(id in "evt_[A-Za-z0-9]{1,24}",
                                     event_type in event_type(),
                                     created in any::<i64>(),
                                     livemode in any::<bool>(),
                                     api_version in prop::option::of("20[0-9]{2}-[0-9]{2}-[0-9]{2}(\\.[a-z]+)?"),
                                     sub_id in "sub_[A-Za-z0-9]{1,24}",
                                     cus_id in "cus_[A-Za-z0-9]{1,24}",
                                     extra in arb_json()) {
        let object = json!({"id": sub_id, "object": "subscription", "customer": cus_id, "status": "active", "extra": extra});
        let value = json!({
            "id": id, "object": "event", "type": event_type, "created": created,
            "livemode": livemode, "api_version": api_version,
            "data": {"object": object},
            "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
        });
        let env = Envelope::parse(value.to_string().as_bytes()).expect("generated envelope parses");
        prop_assert_eq!(&env.id, &id);
        prop_assert_eq!(&env.event_type, &event_type);
        prop_assert_eq!(env.created, Some(created));
        prop_assert_eq!(env.livemode, livemode);
        prop_assert_eq!(&env.api_version, &api_version);
        prop_assert!(!env.is_thin());
        // Compare with serde_json's own reading of the same text: without its
        // `float_roundtrip` feature a float may differ in the last bit from `object`.
        let reread: Value = serde_json::from_str(&object.to_string()).expect("valid JSON");
        prop_assert_eq!(env.data_object(), Some(&reread));
        let expected = if event_type.starts_with("customer.subscription.") {
            GroupKey::Subscription(sub_id)
        } else {
            GroupKey::Customer(cus_id)
        };
        prop_assert_eq!(env.group_key(), expected);
    }
}
