//! The application's change notifications: are they getting through, and which are stuck.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use maud::{Markup, html};

use super::PageResult;
use crate::AdminState;
use crate::auth::Principal;
use crate::html::{self, time_cell, truncate, url_encode};
use crate::notifications::{NotificationsQuery, NotificationsView, view};

pub(super) async fn list(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> PageResult {
    let query = NotificationsQuery::from_pairs(&pairs)?;
    let view = view(&state.store, &query, chrono::Utc::now()).await?;
    let csrf = principal.csrf(&state.token);
    Ok(html::respond(
        StatusCode::OK,
        html::page("Notifications", "notifications", csrf.as_deref(), body(&query, &view)),
    ))
}

fn body(query: &NotificationsQuery, view: &NotificationsView) -> Markup {
    let s = &view.stats;
    html! {
        h1 { "Notifications to the application" }
        p.muted {
            "Every change of a user's entitlement, signed (Standard Webhooks) and sent to SUBSYNC_NOTIFY_URL, "
            "oldest first per user. Failed deliveries retry for days; dead ones are jobs on queue "
            a href="/?queue=notify&state=dead" { "notify" } " — retry them there."
        }
        div.grid2 {
            div.card {
                strong { (s.undelivered) } " undelivered, " strong { (s.failing) } " failing, "
                (s.delivered) " delivered"
            }
            div.card { "Oldest undelivered has waited " strong { (format!("{:.1} s", view.lag_seconds)) } }
        }
        form method="get" action="/notifications" {
            input type="text" name="user" placeholder="user id" value=(query.user.as_deref().unwrap_or(""));
            label { input type="checkbox" name="undelivered" value="1" checked[query.undelivered]; " undelivered only" }
            button type="submit" { "Filter" }
        }
        @if view.notifications.is_empty() {
            div.card.empty { "No notifications." }
        } @else {
            table {
                thead { tr {
                    th { "Change" } th { "User" } th { "Version" } th { "Written" } th { "Delivered" }
                    th { "Attempts" } th { "Last error" }
                } }
                tbody {
                    @for n in &view.notifications {
                        tr {
                            td.mono { (n.change_id) }
                            td.mono { a href={ "/entitlements?user=" (url_encode(&n.user_id)) } { (n.user_id) } }
                            td.mono { (n.version) }
                            td { (time_cell(Some(n.created_at))) }
                            td { (time_cell(n.delivered_at)) }
                            td { (n.attempts) }
                            td { @if let Some(e) = &n.last_error { span.error { (truncate(e, 200)) } } @else { "—" } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subsync_outbox::{OutboxRow, OutboxStats};

    #[test]
    fn a_hostile_user_id_and_error_are_escaped() {
        let hostile = "<script>alert(1)</script>";
        let row = OutboxRow {
            seq: 1,
            change_id: "chg_1".into(),
            user_id: hostile.into(),
            version: 7,
            body: "{}".into(),
            created_at: chrono::Utc::now(),
            delivered_at: None,
            attempts: 2,
            last_attempt_at: None,
            last_error: Some(hostile.into()),
        };
        let view = NotificationsView { stats: OutboxStats::default(), lag_seconds: 0.0, notifications: vec![row] };
        let out = body(&NotificationsQuery::default(), &view).into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"));
    }
}
