use serde_json::json;

use super::*;

const SUBSCRIPTION: &[u8] = include_bytes!("../../tests/fixtures/subscription.json");
const CHECKOUT: &[u8] = include_bytes!("../../tests/fixtures/checkout.session.json");
const INVOICE: &[u8] = include_bytes!("../../tests/fixtures/invoice.json");
const CUSTOMER: &[u8] = include_bytes!("../../tests/fixtures/customer.json");
const ENTITLEMENT_SUMMARY: &[u8] = include_bytes!("../../tests/fixtures/entitlements.active_entitlement_summary.json");

#[test]
fn entitlement_summary_fixture() {
    let summary = ActiveEntitlementSummary::from_json(ENTITLEMENT_SUMMARY).expect("fixture parses");
    assert_eq!(summary.customer, "customer");
    assert_eq!(summary.lookup_keys(), vec!["lookup_key".to_owned()]);
    assert!(summary.entitlements.has_more, "the fixture says more features exist than are embedded");
    assert_eq!(summary.entitlements.data[0].feature.as_ref().map(Expandable::id), Some("obj_123"));
    let repeated = json!({"object": "entitlements.active_entitlement_summary", "customer": "cus_1",
        "entitlements": {"object": "list", "data": [
            {"id": "ent_2", "lookup_key": "vat_returns"}, {"id": "ent_1", "lookup_key": "itsa_quarterly"},
            {"id": "ent_3", "lookup_key": "vat_returns"}], "has_more": false}});
    let summary = ActiveEntitlementSummary::from_value(&repeated).expect("parses");
    assert_eq!(summary.lookup_keys(), vec!["itsa_quarterly".to_owned(), "vat_returns".to_owned()]);
}

#[test]
fn subscription_fixture() {
    let sub = Subscription::from_json(SUBSCRIPTION).expect("fixture parses");
    assert_eq!(sub.id, "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw");
    assert_eq!(sub.customer_id(), Some("cus_QXg1o8vcGmoR32"));
    assert_eq!(sub.status, SubscriptionStatus::Active);
    assert!(sub.cancel_at_period_end);
    assert_eq!(sub.cancel_at, Some(1234567890));
    assert_eq!(sub.canceled_at, Some(1234567890));
    assert_eq!(sub.ended_at, Some(1234567890));
    assert!(sub.metadata.is_empty());
    assert_eq!(sub.items.data.len(), 1);
    let price = sub.prices().next().expect("one price");
    assert_eq!(price.id, "price_1PgafmB7WZ01zgkW6dKueIc5");
    assert_eq!(price.lookup_key, None);
    assert_eq!(price.product.as_ref().map(Expandable::id), Some("prod_QXg1hqf4jFNsqG"));
    // The fixture is on the new API shape: no top-level period, items carry it.
    assert_eq!(sub.legacy_current_period_end, None);
    assert_eq!(sub.current_period_end(), Some(976287773));
    assert_eq!(sub.current_period_start(), Some(1896570518));
}

#[test]
fn current_period_end_prefers_top_level_then_max_of_items() {
    let items = json!({"data": [
        {"id": "si_1", "current_period_end": 100},
        {"id": "si_2", "current_period_end": 300},
        {"id": "si_3"},
    ]});
    let newer = json!({"id": "sub_1", "status": "active", "items": items});
    let sub = Subscription::from_value(&newer).expect("parses");
    assert_eq!(sub.current_period_end(), Some(300));

    let older = json!({"id": "sub_1", "status": "active", "current_period_end": 50, "items": items});
    let sub = Subscription::from_value(&older).expect("parses");
    assert_eq!(sub.current_period_end(), Some(50));

    let none = json!({"id": "sub_1", "status": "active"});
    let sub = Subscription::from_value(&none).expect("parses");
    assert_eq!(sub.current_period_end(), None);
    assert!(!sub.cancel_at_period_end);
    assert_eq!(sub.customer_id(), None);
}

#[test]
fn subscription_statuses_and_unknown_fallback() {
    for (wire, status) in [
        ("incomplete", SubscriptionStatus::Incomplete),
        ("incomplete_expired", SubscriptionStatus::IncompleteExpired),
        ("trialing", SubscriptionStatus::Trialing),
        ("active", SubscriptionStatus::Active),
        ("past_due", SubscriptionStatus::PastDue),
        ("canceled", SubscriptionStatus::Canceled),
        ("unpaid", SubscriptionStatus::Unpaid),
        ("paused", SubscriptionStatus::Paused),
        ("on_fire", SubscriptionStatus::Unknown("on_fire".into())),
    ] {
        let sub = Subscription::from_value(&json!({"id": "sub_1", "status": wire})).expect("parses");
        assert_eq!(sub.status, status);
        assert_eq!(sub.status.as_str(), wire);
        assert_eq!(serde_json::to_value(&sub.status).expect("serializes"), json!(wire));
    }
}

#[test]
fn expanded_customer_and_null_metadata() {
    let value = json!({
        "id": "sub_1", "object": "subscription", "status": "trialing",
        "customer": {"id": "cus_X", "object": "customer", "metadata": {"app_user_id": "u_42"}},
        "metadata": null, "cancel_at_period_end": null,
        "unknown_future_field": {"deep": [1, 2, 3]},
    });
    let sub = Subscription::from_value(&value).expect("parses");
    assert_eq!(sub.customer_id(), Some("cus_X"));
    assert!(sub.metadata.is_empty());
    match &sub.customer {
        Some(Expandable::Object(customer)) => {
            assert_eq!(app_user_id(&customer.metadata), Some("u_42"))
        }
        other => panic!("expected expanded customer, got {other:?}"),
    }
}

#[test]
fn checkout_fixture_and_subscription_mode() {
    let session = CheckoutSession::from_json(CHECKOUT).expect("fixture parses");
    assert_eq!(session.mode, Some(CheckoutMode::Payment));
    assert_eq!(session.status, Some(CheckoutStatus::Open));
    assert_eq!(session.payment_status, Some(PaymentStatus::Unpaid));
    assert_eq!(session.subscription_id(), None);
    assert_eq!(session.customer_id(), None);
    assert_eq!(session.app_user_id(), None);

    let value = json!({
        "id": "cs_1", "object": "checkout.session", "mode": "subscription",
        "status": "complete", "payment_status": "no_payment_required",
        "subscription": {"id": "sub_1", "object": "subscription", "status": "trialing"},
        "customer": "cus_1", "client_reference_id": "  ", "metadata": {"app_user_id": "u_7"},
    });
    let session = CheckoutSession::from_value(&value).expect("parses");
    assert_eq!(session.subscription_id(), Some("sub_1"));
    assert_eq!(session.customer_id(), Some("cus_1"));
    assert_eq!(session.payment_status, Some(PaymentStatus::NoPaymentRequired));
    assert_eq!(session.app_user_id(), Some("u_7"), "blank client_reference_id falls back");
    let value = json!({"id": "cs_1", "client_reference_id": "u_1", "metadata": {"app_user_id": "u_7"}});
    let session = CheckoutSession::from_value(&value).expect("parses");
    assert_eq!(session.app_user_id(), Some("u_1"));
}

#[test]
fn invoice_fixture_and_both_subscription_locations() {
    let invoice = Invoice::from_json(INVOICE).expect("fixture parses");
    assert_eq!(invoice.id, "in_1Pgc6tB7WZ01zgkWu9fdqL6I");
    assert_eq!(invoice.customer_id(), Some("cus_QXg1o8vcGmoR32"));
    assert_eq!(invoice.status, Some(InvoiceStatus::Draft));
    assert_eq!(invoice.subscription_id(), Some("subscription"));
    assert_eq!(invoice.billing_reason.as_deref(), Some("manual"));
    assert_eq!(invoice.period_end, Some(1234567890));
    assert_eq!(invoice.amount_due, Some(1000));
    assert_eq!(invoice.lines_period_end(), Some(1721954054));
    assert!(!invoice.is_paid());

    let legacy = json!({"id": "in_1", "object": "invoice", "subscription": "sub_OLD", "paid": true});
    let invoice = Invoice::from_value(&legacy).expect("parses");
    assert_eq!(invoice.subscription_id(), Some("sub_OLD"));
    assert!(invoice.is_paid());

    let basil = json!({"id": "in_1", "status": "paid", "parent": {"subscription_details": {"subscription": {"id": "sub_NEW", "status": "active"}}}});
    let invoice = Invoice::from_value(&basil).expect("parses");
    assert_eq!(invoice.subscription_id(), Some("sub_NEW"));
    assert!(invoice.is_paid());

    let neither = json!({"id": "in_1", "parent": {"subscription_details": null}, "subscription": null});
    assert_eq!(Invoice::from_value(&neither).expect("parses").subscription_id(), None);
}

#[test]
fn customer_fixture_and_deleted_customer() {
    let customer = Customer::from_json(CUSTOMER).expect("fixture parses");
    assert_eq!(customer.id, "cus_QXg1o8vcGmoR32");
    assert!(!customer.deleted);
    let deleted = Customer::from_value(&json!({"id": "cus_1", "object": "customer", "deleted": true})).expect("parses");
    assert!(deleted.deleted);
}

#[test]
fn wrong_object_and_invalid_errors() {
    let err = Subscription::from_json(INVOICE).expect_err("an invoice is not a subscription");
    assert_eq!(err.code(), "wrong_object_type");
    let err = Customer::from_value(&json!({"object": "customer"})).expect_err("no id");
    assert_eq!(err.code(), "invalid_object");
    assert!(err.to_string().contains("id"), "{err}");
    let err = Customer::from_json(b"not json").expect_err("not json");
    assert_eq!(err.code(), "invalid_object");
}

#[test]
fn app_user_id_reads_trimmed_non_empty() {
    let mut metadata = Metadata::new();
    assert_eq!(app_user_id(&metadata), None);
    metadata.insert(APP_USER_ID_KEY.into(), "  ".into());
    assert_eq!(app_user_id(&metadata), None);
    metadata.insert(APP_USER_ID_KEY.into(), " u_1 ".into());
    assert_eq!(app_user_id(&metadata), Some("u_1"));
}

#[test]
fn objects_roundtrip_through_serde() {
    let sub = Subscription::from_json(SUBSCRIPTION).expect("fixture parses");
    let again = Subscription::from_value(&serde_json::to_value(&sub).expect("serializes")).expect("reparses");
    assert_eq!(sub, again);
}
