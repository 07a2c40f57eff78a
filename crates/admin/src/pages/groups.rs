//! Who holds which subscription right now: the first place to look when one customer's
//! events seem stuck.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use subsync_queue::RunningGroup;

use super::PageResult;
use crate::AdminState;
use crate::auth::Principal;
use crate::html::{self, time_cell, url_encode};
use crate::ops::human_age;

pub(super) async fn running(State(state): State<AdminState>, Extension(principal): Extension<Principal>) -> PageResult {
    let groups = state.store.running_groups().await?;
    let body = groups_body(&groups, Utc::now());
    let csrf = principal.csrf(&state.token);
    Ok(html::respond(StatusCode::OK, html::page("Running groups", "groups", csrf.as_deref(), body)))
}

/// The page's content: one row per group with a running job, as of `now`.
fn groups_body(groups: &[RunningGroup], now: DateTime<Utc>) -> Markup {
    html! {
        h1 { "Running groups " span.muted { "(" (groups.len()) ")" } }
        p.muted {
            "At most one job per subscription runs at a time. A lease that has expired will be rescued by the next worker poll."
        }
        @if groups.is_empty() {
            div.card.empty { "No group is running a job right now." }
        } @else {
            table {
                thead { tr {
                    th { "Group (subscription)" } th { "Queue" } th { "Job" } th { "Worker" } th { "Started" }
                    th { "Lease expires" }
                } }
                tbody {
                    @for g in groups {
                        @let job = g.job_id.to_string();
                        tr {
                            td.mono {
                                a href={ "/?group=" (url_encode(&g.group_key)) } {
                                    (if g.group_key.is_empty() { "(none)" } else { &g.group_key })
                                }
                            }
                            td { (g.queue) }
                            td.mono { a href={ "/jobs/" (job) } { (job) } }
                            td.mono { (g.lease_owner.as_deref().unwrap_or("—")) }
                            td { (time_cell(g.started_at)) " " span.muted { "(" (running_for(g, now)) ")" } }
                            td { (lease_left(g, now)) }
                        }
                    }
                }
            }
        }
    }
}

fn running_for(g: &RunningGroup, now: DateTime<Utc>) -> String {
    g.started_at.map(|t| human_age((now - t).num_milliseconds() as f64 / 1000.0)).unwrap_or_default()
}

fn lease_left(g: &RunningGroup, now: DateTime<Utc>) -> String {
    g.lease_expires_at
        .map(|t| {
            let secs = (t - now).num_milliseconds() as f64 / 1000.0;
            if secs < 0.0 { format!("expired {} ago", human_age(-secs)) } else { format!("in {}", human_age(secs)) }
        })
        .unwrap_or_default()
}
