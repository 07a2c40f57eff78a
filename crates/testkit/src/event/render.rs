//! The JSON a generated event's facts become: Stripe's object shapes, per API version.

use serde_json::{Value, json};

use super::{ApiVersion, EventFact};
use crate::catalog::CatalogPrice;
use subsync_domain::SubscriptionStatus;

fn metadata(app_user_id: &Option<String>) -> Value {
    match app_user_id {
        Some(u) => json!({ "app_user_id": u }),
        None => json!({}),
    }
}

fn price_json(p: &CatalogPrice) -> Value {
    json!({
        "id": p.id,
        "object": "price",
        "active": true,
        "billing_scheme": "per_unit",
        "created": 1_735_689_600,
        "currency": "gbp",
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": p.lookup_key,
        "metadata": {},
        "nickname": null,
        "product": p.product,
        "recurring": {
            "interval": p.interval.as_str(),
            "interval_count": 1,
            "meter": null,
            "trial_period_days": null,
            "usage_type": "licensed",
        },
        "tax_behavior": "inclusive",
        "tiers_mode": null,
        "transform_quantity": null,
        "type": "recurring",
        "unit_amount": p.amount,
        "unit_amount_decimal": p.amount.to_string(),
    })
}

pub(super) fn render_object(fact: &EventFact, api: ApiVersion, created: i64) -> (Value, Option<Value>) {
    match fact {
        EventFact::FeatureSummary { customer_id, lookup_keys } => {
            let data: Vec<Value> = lookup_keys
                .iter()
                .enumerate()
                .map(|(n, key)| {
                    json!({
                        "id": format!("ent_{n}_{customer_id}"),
                        "object": "entitlements.active_entitlement",
                        "feature": format!("feat_{key}"),
                        "livemode": false,
                        "lookup_key": key,
                    })
                })
                .collect();
            let object = json!({
                "object": "entitlements.active_entitlement_summary",
                "customer": customer_id,
                "entitlements": {
                    "object": "list",
                    "data": data,
                    "has_more": false,
                    "url": "/v1/entitlements/active_entitlements",
                },
                "livemode": false,
            });
            (object, None)
        }
        EventFact::CheckoutCompleted {
            session_id,
            subscription_id,
            customer_id,
            client_reference_id,
            app_user_id,
            invoice_id,
            amount,
            email,
        } => (
            json!({
                "id": session_id,
                "object": "checkout.session",
                "after_expiration": null,
                "allow_promotion_codes": null,
                "amount_subtotal": amount,
                "amount_total": amount,
                "automatic_tax": { "enabled": false, "liability": null, "status": null },
                "billing_address_collection": null,
                "cancel_url": "https://app.example.co.uk/billing/cancel",
                "client_reference_id": client_reference_id,
                "created": created - 120,
                "currency": "gbp",
                "customer": customer_id,
                "customer_creation": "always",
                "customer_details": {
                    "address": { "city": null, "country": "GB", "line1": null, "line2": null, "postal_code": null, "state": null },
                    "email": email,
                    "name": null,
                    "phone": null,
                    "tax_exempt": "none",
                    "tax_ids": [],
                },
                "customer_email": email,
                "expires_at": created - 120 + 86_400,
                "invoice": invoice_id,
                "livemode": false,
                "locale": null,
                "metadata": metadata(app_user_id),
                "mode": "subscription",
                "payment_intent": null,
                "payment_link": null,
                "payment_method_collection": "always",
                "payment_method_types": ["card"],
                "payment_status": "paid",
                "setup_intent": null,
                "status": "complete",
                "submit_type": null,
                "subscription": subscription_id,
                "success_url": "https://app.example.co.uk/billing/success?session_id={CHECKOUT_SESSION_ID}",
                "total_details": { "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 },
                "ui_mode": "hosted",
                "url": null,
            }),
            None,
        ),
        EventFact::Subscription {
            subscription_id,
            customer_id,
            status,
            previous_status,
            items,
            cancel_at_period_end,
            current_period_start,
            current_period_end,
            app_user_id,
            subscription_created,
            latest_invoice,
        } => {
            let items_json: Vec<Value> = items
                .iter()
                .map(|i| {
                    let mut item = json!({
                        "id": i.item_id,
                        "object": "subscription_item",
                        "created": subscription_created,
                        "discounts": [],
                        "metadata": {},
                        "price": price_json(&i.price),
                        "quantity": i.quantity,
                        "subscription": subscription_id,
                        "tax_rates": [],
                    });
                    if api == ApiVersion::Basil {
                        item["current_period_start"] = json!(current_period_start);
                        item["current_period_end"] = json!(current_period_end);
                    }
                    item
                })
                .collect();
            let ended = matches!(status, SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired);
            let mut sub = json!({
                "id": subscription_id,
                "object": "subscription",
                "application": null,
                "billing_cycle_anchor": subscription_created,
                "cancel_at": if *cancel_at_period_end { json!(current_period_end) } else { Value::Null },
                "cancel_at_period_end": cancel_at_period_end,
                "canceled_at": if ended || *cancel_at_period_end { json!(created) } else { Value::Null },
                "cancellation_details": {
                    "comment": null,
                    "feedback": null,
                    "reason": if ended || *cancel_at_period_end { json!("cancellation_requested") } else { Value::Null },
                },
                "collection_method": "charge_automatically",
                "created": subscription_created,
                "currency": "gbp",
                "customer": customer_id,
                "days_until_due": null,
                "default_payment_method": null,
                "description": null,
                "discounts": [],
                "ended_at": if ended { json!(created) } else { Value::Null },
                "items": {
                    "object": "list",
                    "data": items_json,
                    "has_more": false,
                    "url": format!("/v1/subscription_items?subscription={subscription_id}"),
                },
                "latest_invoice": latest_invoice,
                "livemode": false,
                "metadata": metadata(app_user_id),
                "pause_collection": null,
                "schedule": null,
                "start_date": subscription_created,
                "status": status.as_str(),
                "test_clock": null,
                "trial_end": null,
                "trial_start": null,
            });
            if api == ApiVersion::Legacy {
                sub["current_period_start"] = json!(current_period_start);
                sub["current_period_end"] = json!(current_period_end);
            }
            let previous = previous_status.as_ref().filter(|p| *p != status).map(|p| json!({ "status": p.as_str() }));
            (sub, previous)
        }
        EventFact::Invoice {
            invoice_id,
            subscription_id,
            customer_id,
            paid,
            item,
            amount,
            billing_reason,
            attempt_count,
            period_start,
            period_end,
            app_user_id,
        } => {
            let mut line = json!({
                "id": format!("il_{}", invoice_id.trim_start_matches("in_")),
                "object": "line_item",
                "amount": amount,
                "currency": "gbp",
                "description": format!("1 × {} (at £{}.{:02} / {})", item.price.product, amount / 100, amount % 100, item.price.interval.as_str()),
                "discount_amounts": [],
                "discountable": true,
                "discounts": [],
                "invoice": invoice_id,
                "livemode": false,
                "metadata": {},
                "period": { "end": period_end, "start": period_start },
                "quantity": 1,
            });
            let mut inv = json!({
                "id": invoice_id,
                "object": "invoice",
                "account_country": "GB",
                "account_name": "subsync Ltd",
                "amount_due": amount,
                "amount_paid": if *paid { *amount } else { 0 },
                "amount_remaining": if *paid { 0 } else { *amount },
                "attempt_count": attempt_count,
                "attempted": true,
                "auto_advance": !paid,
                "billing_reason": billing_reason,
                "collection_method": "charge_automatically",
                "created": (*period_start).min(created),
                "currency": "gbp",
                "customer": customer_id,
                "customer_email": null,
                "livemode": false,
                "metadata": {},
                "next_payment_attempt": if *paid { Value::Null } else { json!(created + 3 * 86_400) },
                "period_end": period_end,
                "period_start": period_start,
                "status": if *paid { "paid" } else { "open" },
                "status_transitions": {
                    "finalized_at": (*period_start).min(created),
                    "marked_uncollectible_at": null,
                    "paid_at": if *paid { json!(created) } else { Value::Null },
                    "voided_at": null,
                },
                "subtotal": amount,
                "total": amount,
            });
            match api {
                ApiVersion::Basil => {
                    inv["parent"] = json!({
                        "type": "subscription_details",
                        "quote_details": null,
                        "subscription_details": {
                            "metadata": metadata(app_user_id),
                            "subscription": subscription_id,
                        },
                    });
                    line["parent"] = json!({
                        "type": "subscription_item_details",
                        "invoice_item_details": null,
                        "subscription_item_details": {
                            "invoice_item": null,
                            "proration": false,
                            "proration_details": { "credited_items": null },
                            "subscription": subscription_id,
                            "subscription_item": item.item_id,
                        },
                    });
                    line["pricing"] = json!({
                        "type": "price_details",
                        "price_details": { "price": item.price.id, "product": item.price.product },
                        "unit_amount_decimal": amount.to_string(),
                    });
                }
                ApiVersion::Legacy => {
                    inv["subscription"] = json!(subscription_id);
                    inv["paid"] = json!(paid);
                    inv["subscription_details"] = json!({ "metadata": metadata(app_user_id) });
                    line["subscription"] = json!(subscription_id);
                    line["subscription_item"] = json!(item.item_id);
                    line["type"] = json!("subscription");
                    line["price"] = price_json(&item.price);
                    line["proration"] = json!(false);
                }
            }
            inv["lines"] = json!({
                "object": "list",
                "data": [line],
                "has_more": false,
                "url": format!("/v1/invoices/{invoice_id}/lines"),
            });
            (inv, None)
        }
    }
}
