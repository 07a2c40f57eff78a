//! Entitlement lookup by user and stored events: "what does subsync think this customer
//! has, and what did Stripe send?"

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use subsync_eventlog::StoredEvent;

use super::{PageResult, field};
use crate::AdminState;
use crate::api::limit_offset;
use crate::auth::Principal;
use crate::error::AdminError;
use crate::html::{self, url_encode};

/// A JSON object as a two-column table; anything else pretty-printed.
fn json_card(value: &serde_json::Value) -> Markup {
    match value {
        serde_json::Value::Object(map) => html! {
            div.card { dl.kv {
                @for (k, v) in map {
                    dt { (k) }
                    dd.mono {
                        @match v {
                            serde_json::Value::String(s) => (s),
                            other => (other.to_string()),
                        }
                    }
                }
            } }
        },
        other => html! { pre { (serde_json::to_string_pretty(other).unwrap_or_default()) } },
    }
}

pub(super) async fn lookup(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<Vec<(String, String)>>,
) -> PageResult {
    let view = state.entitlements.as_ref().ok_or(AdminError::NotConfigured("entitlements"))?;
    let user = field(&q, "user").map(str::trim).filter(|u| !u.is_empty());
    let found = match user {
        Some(user) => Lookup::One(user, view.support(user).await?),
        None => {
            let (limit, offset) = limit_offset(&q)?;
            let since = chrono::Utc::now() - chrono::Duration::days(UNMAPPED_DAYS);
            Lookup::Latest(view.list(limit, offset).await?, view.unmapped_prices(since).await?)
        }
    };
    let csrf = principal.csrf(&state.token);
    Ok(html::respond(StatusCode::OK, html::page("Entitlements", "entitlements", csrf.as_deref(), lookup_body(&found))))
}

/// How far back the page lists prices the tier file does not map.
const UNMAPPED_DAYS: i64 = 30;

/// What the entitlements page shows: one user's row (or its absence), or the latest rows
/// with the prices the tier file does not map.
enum Lookup<'a> {
    One(&'a str, Option<serde_json::Value>),
    Latest(Vec<serde_json::Value>, Vec<serde_json::Value>),
}

/// Prices nobody mapped: a warning for the operator who maintains the tier file.
fn unmapped_card(rows: &[serde_json::Value]) -> Markup {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    html! {
        h2 { "Prices the tier file does not map (last " (UNMAPPED_DAYS) " days)" }
        @if rows.is_empty() {
            div.card.empty { "None: every price seen maps to a tier or an add-on." }
        } @else {
            div.flash.bad {
                (rows.len()) " unmapped price(s). Beside a mapped plan they are ignored for access; alone, "
                "their jobs are dead until the price is mapped (`subsync tiers unmapped` lists them too)."
            }
            table {
                thead { tr { th { "price" } th { "lookup key" } th { "events" } th { "subscriptions" } th { "effect" } th { "example event" } } }
                tbody {
                    @for row in rows {
                        tr {
                            td.mono { (text(&row["price_id"])) }
                            td.mono { (text(&row["lookup_key"])) }
                            td { (text(&row["events"])) }
                            td { (text(&row["subscriptions"])) }
                            td { (text(&row["effect"])) }
                            td.mono {
                                @let event = text(&row["example_event_id"]);
                                a href={ "/events/" (url_encode(&event)) } { (event) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn lookup_body(found: &Lookup<'_>) -> Markup {
    let user = match found {
        Lookup::One(user, _) => user,
        Lookup::Latest(..) => "",
    };
    html! {
        h1 { "Entitlements" }
        form.filters method="get" action="/entitlements" {
            label { "User, customer or subscription id" input name="user" value=(user) placeholder="usr_…, cus_… or sub_…"; }
            button.primary type="submit" { "Look up" }
        }
        @match found {
            Lookup::One(_, Some(view)) => (super::support::body(view)),
            Lookup::One(user, None) => div.flash.bad {
                "No user, customer or subscription " span.mono { (user) } " is known to subsync (such a user has the free tier)."
            },
            Lookup::Latest(rows, unmapped) => {
                (unmapped_card(unmapped))
                h2 { "Latest " (rows.len()) }
                @if rows.is_empty() {
                    div.card.empty { "No entitlements yet." }
                }
                @for row in rows {
                    (json_card(row))
                    div style="height:10px" {}
                }
            },
        }
    }
}

pub(super) async fn event(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Path(event_id): Path<String>,
) -> PageResult {
    let event = subsync_eventlog::get(&state.store, &event_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no stored event with id `{event_id}`")))?;
    let csrf = principal.csrf(&state.token);
    Ok(html::respond(StatusCode::OK, html::page("Event", "", csrf.as_deref(), event_body(&event_id, &event))))
}

/// The stored event as received, with a link to its job.
fn event_body(event_id: &str, event: &StoredEvent) -> Markup {
    html! {
        h1 { "Event " span.mono { (event_id) } }
        p { a href={ "/jobs/" (url_encode(event_id)) } { "Its job" } }
        pre { (serde_json::to_string_pretty(event).unwrap_or_default()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "\"><script>alert(1)</script>";
    const ESCAPED: &str = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;";

    #[test]
    fn a_hostile_event_id_and_user_are_escaped() {
        let stored = StoredEvent {
            event_id: HOSTILE.into(),
            event_type: HOSTILE.into(),
            created: None,
            livemode: false,
            api_version: None,
            object_kind: "event".into(),
            group_key: HOSTILE.into(),
            disposition: subsync_eventlog::Disposition::Ignored,
            job_id: None,
            payload: serde_json::json!({ "id": HOSTILE }).to_string(),
        };
        let event = event_body(HOSTILE, &stored).into_string();
        assert!(!event.contains("<script>"), "{event}");
        assert!(event.contains(&format!("<span class=\"mono\">{ESCAPED}</span>")), "{event}");
        assert!(event.contains("href=\"/jobs/%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E\""), "{event}");
        let missing = lookup_body(&Lookup::One(HOSTILE, None)).into_string();
        assert!(!missing.contains("<script>"), "{missing}");
        assert!(missing.contains(&format!("name=\"user\" value=\"{ESCAPED}\"")), "{missing}");
        let row = lookup_body(&Lookup::Latest(vec![serde_json::json!({ HOSTILE: HOSTILE })], Vec::new())).into_string();
        assert!(row.contains(&format!("<dt>{ESCAPED}</dt><dd class=\"mono\">{ESCAPED}</dd>")), "{row}");
    }
}
