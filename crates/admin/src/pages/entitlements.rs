//! Entitlement lookup by user and stored events: "what does subsync think this customer
//! has, and what did Stripe send?"

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use super::{PageResult, field};
use crate::AdminState;
use crate::api::limit_offset;
use crate::auth::Principal;
use crate::error::AdminError;
use crate::html::{self, html_escape};

/// A JSON object as a two-column table; anything else pretty-printed.
fn json_card(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut rows = String::new();
            for (k, v) in map {
                let shown = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                rows.push_str(&format!("<dt>{}</dt><dd class=\"mono\">{}</dd>", html_escape(k), html_escape(&shown)));
            }
            format!("<div class=\"card\"><dl class=\"kv\">{rows}</dl></div>")
        }
        other => format!("<pre>{}</pre>", html_escape(&serde_json::to_string_pretty(other).unwrap_or_default())),
    }
}

pub(super) async fn lookup(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<Vec<(String, String)>>,
) -> PageResult {
    let view = state.entitlements.as_ref().ok_or(AdminError::NotConfigured("entitlements"))?;
    let user = field(&q, "user").map(str::trim).filter(|u| !u.is_empty());
    let mut body = format!(
        "<h1>Entitlements</h1><form class=\"filters\" method=\"get\" action=\"/entitlements\">\
<label>User id<input name=\"user\" value=\"{}\" placeholder=\"user id\"></label><button type=\"submit\" class=\"primary\">Look up</button></form>",
        html_escape(user.unwrap_or(""))
    );
    match user {
        Some(user) => match view.get(user).await? {
            Some(row) => body.push_str(&json_card(&row)),
            None => body.push_str(&format!(
                "<div class=\"flash bad\">No entitlement for user <span class=\"mono\">{}</span>.</div>",
                html_escape(user)
            )),
        },
        None => {
            let (limit, offset) = limit_offset(&q)?;
            let rows = view.list(limit, offset).await?;
            body.push_str(&format!("<h2>Latest {}</h2>", rows.len()));
            if rows.is_empty() {
                body.push_str("<div class=\"card empty\">No entitlements yet.</div>");
            }
            for row in &rows {
                body.push_str(&json_card(row));
                body.push_str("<div style=\"height:10px\"></div>");
            }
        }
    }
    let csrf = principal.csrf(&state.token);
    Ok(html::respond(StatusCode::OK, html::page("Entitlements", "entitlements", csrf.as_deref(), &body)))
}

pub(super) async fn event(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Path(event_id): Path<String>,
) -> PageResult {
    let view = state.events.as_ref().ok_or(AdminError::NotConfigured("events"))?;
    let event = view
        .get(&event_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no stored event with id `{event_id}`")))?;
    let body = format!(
        "<h1>Event <span class=\"mono\">{}</span></h1><p><a href=\"/jobs/{}\">Its job</a></p><pre>{}</pre>",
        html_escape(&event_id),
        html::url_encode(&event_id),
        html_escape(&serde_json::to_string_pretty(&event).unwrap_or_default())
    );
    let csrf = principal.csrf(&state.token);
    Ok(html::respond(StatusCode::OK, html::page("Event", "", csrf.as_deref(), &body)))
}
