//! The audit log page: who did what, when, to which jobs, and whether it worked; newest
//! first, filtered by actor and time like `subsync audit list`.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use maud::{Markup, html};

use super::PageResult;
use crate::AdminState;
use crate::audit::{self, AuditQuery, AuditRecord};
use crate::auth::Principal;
use crate::html::{self, time_cell, truncate};

pub(super) async fn list(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> PageResult {
    let query = AuditQuery::from_pairs(&pairs)?;
    let filter = query.filter(Utc::now())?;
    let entries = audit::list(&state.store, &filter).await?;
    let csrf = principal.csrf(&state.token);
    let body = html! {
        h1 { "Audit log" }
        p.muted {
            "Every retry, cancel, bulk action and replay, and every dashboard sign-in and sign-out, "
            "with who did it and what came of it. Append-only."
        }
        (filter_form(&query))
        (entries_table(&entries, filter.limit))
    };
    Ok(html::respond(StatusCode::OK, html::page("Audit log", "audit", csrf.as_deref(), body)))
}

fn filter_form(q: &AuditQuery) -> Markup {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    html! {
        form.filters method="get" action="/audit" {
            label { "Actor" input name="actor" value=(v(&q.actor)) placeholder="alice" size="18"; }
            label { "Since" input name="since" value=(v(&q.since)) placeholder="2h or RFC 3339" size="14"; }
            label { "Limit" input name="limit" value=(v(&q.limit)) placeholder="50" size="5"; }
            button.primary type="submit" { "Filter" }
            a.btn href="/audit" { "Clear" }
        }
    }
}

fn entries_table(entries: &[AuditRecord], limit: u32) -> Markup {
    if entries.is_empty() {
        return html! { div.card.empty { "No audit entries match." } };
    }
    html! {
        div.scroll { table.audit {
            thead { tr {
                th { "When (UTC)" } th { "Actor" } th { "Via" } th { "Action" } th { "Target" } th { "Jobs" }
                th { "Result" } th { "Detail" }
            } }
            tbody {
                @for e in entries {
                    tr data-audit-id=(e.id) data-action=(e.action) data-ok=(e.ok) {
                        td { (time_cell(Some(e.at))) }
                        td { (e.actor) }
                        td { (e.via) }
                        td.mono { (e.action) }
                        td.mono { (target(e)) }
                        td.num { (e.jobs) }
                        td {
                            @match &e.error {
                                None => span.badge.s-succeeded { "ok" },
                                Some(error) => {
                                    span.badge.s-dead title=(truncate(error, 500)) { "error" }
                                    " "
                                    span.err { (truncate(error, 120)) }
                                },
                            }
                        }
                        td.muted { (e.detail.as_deref().unwrap_or("")) }
                    }
                }
            }
        } }
        @if entries.len() as u64 == u64::from(limit) {
            p.muted { "Showing the newest " (limit) " entries; narrow the filter or raise the limit to see older ones." }
        }
    }
}

/// A job id links to its job; anything else (an event id, a filter) is shown as text.
fn target(e: &AuditRecord) -> Markup {
    let is_job = matches!(e.action.as_str(), "retry" | "cancel") && uuid::Uuid::parse_str(&e.target).is_ok();
    html! {
        @if is_job {
            a href={ "/jobs/" (e.target) } { (e.target) }
        } @else if e.action == "replay" {
            a href={ "/events/" (html::url_encode(&e.target)) } { (e.target) }
        } @else {
            (e.target)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_and_errors_are_escaped() {
        let hostile = "\"><script>alert(1)</script>";
        let entry = AuditRecord {
            id: 7,
            at: Utc::now(),
            actor: hostile.into(),
            via: "dashboard".into(),
            action: "replay".into(),
            target: format!("evt_{hostile}"),
            detail: Some(hostile.into()),
            jobs: 0,
            ok: false,
            error: Some(hostile.into()),
        };
        let table = entries_table(&[entry], 50).into_string();
        assert!(!table.contains("<script>"), "{table}");
        assert!(table.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"), "{table}");
        assert!(table.contains("href=\"/events/evt_%22%3E%3Cscript%3E"), "{table}");
        let form = filter_form(&AuditQuery { actor: Some(hostile.into()), ..AuditQuery::default() }).into_string();
        assert!(!form.contains("<script>") && form.contains("value=\"&quot;&gt;&lt;script&gt;"), "{form}");
    }
}
