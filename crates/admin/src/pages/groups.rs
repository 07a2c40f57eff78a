//! Who holds which subscription right now: the first place to look when one customer's
//! events seem stuck.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;

use super::PageResult;
use crate::AdminState;
use crate::auth::Principal;
use crate::html::{self, html_escape, time_cell, url_encode};
use crate::ops::human_age;

pub(super) async fn running(State(state): State<AdminState>, Extension(principal): Extension<Principal>) -> PageResult {
    let groups = state.store.running_groups().await?;
    let now = Utc::now();
    let mut rows = String::new();
    for g in &groups {
        let running_for =
            g.started_at.map(|t| human_age((now - t).num_milliseconds() as f64 / 1000.0)).unwrap_or_default();
        let lease_left = g
            .lease_expires_at
            .map(|t| {
                let secs = (t - now).num_milliseconds() as f64 / 1000.0;
                if secs < 0.0 { format!("expired {} ago", human_age(-secs)) } else { format!("in {}", human_age(secs)) }
            })
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td class=\"mono\"><a href=\"/?group={}\">{}</a></td><td>{}</td><td class=\"mono\"><a href=\"/jobs/{}\">{}</a></td>\
<td class=\"mono\">{}</td><td>{} <span class=\"muted\">({})</span></td><td>{}</td></tr>",
            url_encode(&g.group_key),
            html_escape(if g.group_key.is_empty() { "(none)" } else { &g.group_key }),
            html_escape(&g.queue),
            g.job_id,
            g.job_id,
            html_escape(g.lease_owner.as_deref().unwrap_or("—")),
            time_cell(g.started_at),
            running_for,
            html_escape(&lease_left),
        ));
    }
    let table = if groups.is_empty() {
        "<div class=\"card empty\">No group is running a job right now.</div>".to_string()
    } else {
        format!(
            "<table><thead><tr><th>Group (subscription)</th><th>Queue</th><th>Job</th><th>Worker</th><th>Started</th><th>Lease expires</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let body = format!(
        "<h1>Running groups <span class=\"muted\">({})</span></h1>\
<p class=\"muted\">At most one job per subscription runs at a time. A lease that has expired will be rescued by the next worker poll.</p>{table}",
        groups.len()
    );
    let csrf = principal.csrf(&state.token);
    Ok(html::respond(StatusCode::OK, html::page("Running groups", "groups", csrf.as_deref(), &body)))
}
