//! One user's whole story on one page, for "why can't this user file their quarterly
//! update?": the effective tier and its features as a list (what is allowed, what is not),
//! the user's subscriptions, the tier history with the causing events linked, and the user's
//! events with what became of each (applied, stale, unchanged, ignored, dead job).

use maud::{Markup, html};
use serde_json::Value;

use crate::html::url_encode;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_owned(),
        other => other.to_string(),
    }
}

fn rows(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

fn event_link(id: &Value) -> Markup {
    let id = text(id);
    html! { a.mono href={ "/events/" (url_encode(&id)) } { (id) } }
}

/// The support view (the `EntitlementsView::support` object).
pub(super) fn body(view: &Value) -> Markup {
    let user = text(&view["user_id"]);
    let found_by = text(&view["found_by"]);
    let e = &view["entitlement"];
    html! {
        h1 { "User " span.mono { (user) } }
        @if found_by != "user_id" {
            p.muted { "Found by " (found_by.replace('_', " ")) "." }
        }
        div.card {
            @if e.is_null() {
                p { "Tier " strong { "free" } ": no subscription of theirs grants anything." }
            } @else {
                p {
                    "Tier " strong #tier { (text(&e["tier"])) }
                    @if e["lapsed"] == Value::Bool(true) { " (lapsed from " (text(&e["stored_tier"])) ")" }
                    " — " (text(&e["reason"])) ", status " (text(&e["status"]))
                    ", from subscription " span.mono { (text(&e["subscription_id"])) }
                }
                p.muted {
                    "Access until " (text(&e["access_until"])) " · period end " (text(&e["period_end"]))
                    " · evaluated " (text(&e["evaluated_at"]))
                }
            }
        }
        h2 { "Features" }
        table #features {
            thead { tr { th { "" } th { "Feature" } th { "Value" } } }
            tbody {
                @for f in rows(view, "features") {
                    @let allowed = f["allowed"] == Value::Bool(true);
                    tr class=(if allowed { "allowed" } else { "denied" }) {
                        td { (if allowed { "✓" } else { "✗" }) }
                        td.mono { (text(&f["feature"])) }
                        td { (text(&f["value"])) }
                    }
                }
            }
        }
        h2 { "Subscriptions" }
        table #subscriptions {
            thead { tr { th { "Subscription" } th { "Status" } th { "Prices" } th { "Period end" } th { "Notes" } th { "Last event" } } }
            tbody {
                @for s in rows(view, "subscriptions") {
                    tr {
                        td.mono { a href={ "/?group=" (url_encode(&text(&s["subscription_id"]))) } { (text(&s["subscription_id"])) } }
                        td { (text(&s["status"])) }
                        td.mono { (rows(&s, "prices").iter().map(text).collect::<Vec<_>>().join(", ")) }
                        td { (text(&s["current_period_end"])) }
                        td {
                            @if s["cancel_at_period_end"] == Value::Bool(true) { "cancels at period end " }
                            @if !s["past_due_since"].is_null() { "past due since " (text(&s["past_due_since"])) }
                        }
                        td { (event_link(&s["last_event_id"])) }
                    }
                }
            }
        }
        h2 { "Tier history" }
        @let history = rows(view, "history");
        @if history.is_empty() {
            div.card.empty { "No tier change recorded." }
        } @else {
            table #history {
                thead { tr { th { "When" } th { "Change" } th { "Caused by" } th { "Subscription" } } }
                tbody {
                    @for h in &history {
                        tr {
                            td { (text(&h["at"])) }
                            td { (text(&h["from_tier"])) " → " (text(&h["to_tier"])) }
                            td { (event_link(&h["cause_event_id"])) }
                            td.mono { (text(&h["subscription_id"])) }
                        }
                    }
                }
            }
        }
        h2 { "Events, newest first" }
        table #events {
            thead { tr { th { "When" } th { "Event" } th { "Type" } th { "Outcome" } th { "Why" } } }
            tbody {
                @for ev in rows(view, "events") {
                    tr {
                        td { (text(&ev["at"])) }
                        td { (event_link(&ev["event_id"])) }
                        td.mono { (text(&ev["event_type"])) }
                        td.outcome { (text(&ev["outcome"])) }
                        td { (text(&ev["reason"])) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_view_lists_features_subscriptions_history_and_events_escaped() {
        let view = json!({
            "user_id": "usr_<b>", "found_by": "customer_id",
            "entitlement": {"tier": "pro", "reason": "active", "status": "active", "subscription_id": "sub_1", "lapsed": false},
            "features": [{"feature": "itsa.quarterly", "allowed": true, "value": "yes"},
                         {"feature": "itsa.final_declaration", "allowed": false, "value": "no"}],
            "subscriptions": [{"subscription_id": "sub_1", "status": "active", "prices": ["pro_monthly"],
                               "cancel_at_period_end": true, "last_event_id": "evt_2"}],
            "history": [{"at": "2026-01-01T00:00:00Z", "from_tier": "free", "to_tier": "pro", "cause_event_id": "evt_1", "subscription_id": "sub_1"}],
            "events": [{"at": "t", "event_id": "evt_3", "event_type": "invoice.paid", "outcome": "dead job", "reason": "<script>"}]
        });
        let page = body(&view).into_string();
        assert!(page.contains("usr_&lt;b&gt;") && !page.contains("<script>"), "{page}");
        assert!(page.contains("Found by customer id"));
        assert!(
            page.contains("<tr class=\"denied\"><td>✗</td><td class=\"mono\">itsa.final_declaration</td>"),
            "{page}"
        );
        assert!(page.contains("cancels at period end"));
        assert!(page.contains("href=\"/events/evt_1\""), "history links the causing event");
        assert!(page.contains("dead job"));
    }
}
