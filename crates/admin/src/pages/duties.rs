//! The scheduled duties (reconcile with Stripe's API, prune): did the last run work, when,
//! and is one running now — the page to open when access seems stale after a Stripe outage.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use maud::{Markup, html};
use subsync_duties::DutyStatus;

use super::PageResult;
use crate::AdminState;
use crate::auth::Principal;
use crate::html::{self, time_cell, truncate};

pub(super) async fn list(State(state): State<AdminState>, Extension(principal): Extension<Principal>) -> PageResult {
    let duties = subsync_duties::store::status(&state.store).await?;
    let csrf = principal.csrf(&state.token);
    Ok(html::respond(StatusCode::OK, html::page("Duties", "duties", csrf.as_deref(), body(&duties))))
}

fn mark(unix: Option<i64>) -> String {
    unix.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(|| "—".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn body(duties: &[DutyStatus]) -> Markup {
    html! {
        h1 { "Scheduled duties" }
        p.muted {
            "Every serve/worker process schedules these; one at a time runs each. "
            "Reconcile catches up events Stripe could not deliver (needs STRIPE_API_KEY); "
            "prune deletes finished jobs and events past retention. "
            "After an outage longer than 3 days: " code { "subsync reconcile --since 10d" } "."
        }
        @if duties.is_empty() {
            div.card.empty { "No duty has run yet." }
        } @else {
            table {
                thead { tr {
                    th { "Duty" } th { "Last run" } th { "Result" } th { "Last success" } th { "Runs (failed)" }
                    th { "High-water mark" } th { "Running now" }
                } }
                tbody {
                    @for d in duties {
                        tr {
                            td.mono { (d.name) }
                            td { (time_cell(d.last_finished_at)) br; span.muted { (d.last_runner.as_deref().unwrap_or("")) } }
                            td {
                                @match (d.last_ok, &d.last_error, &d.last_result) {
                                    (Some(false), Some(error), _) => span.error { "failed: " (truncate(error, 300)) },
                                    (Some(true), _, Some(result)) => span.mono { (truncate(&result.to_string(), 300)) },
                                    _ => "—",
                                }
                            }
                            td { (time_cell(d.last_success_at)) }
                            td { (d.runs) " (" (d.failures) ")" }
                            td { (mark(d.checkpoint)) }
                            td.mono { (d.leader.as_deref().unwrap_or("—")) }
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

    #[test]
    fn a_failed_run_shows_its_error_escaped() {
        let d = DutyStatus {
            name: "reconcile".into(),
            leader: None,
            lease_until: None,
            checkpoint: Some(1_800_000_000),
            last_started_at: None,
            last_finished_at: None,
            last_success_at: None,
            last_ok: Some(false),
            last_result: None,
            last_error: Some("Stripe API: <down>".into()),
            last_runner: Some("host:1:abc".into()),
            runs: 3,
            failures: 1,
        };
        let page = body(&[d]).into_string();
        assert!(page.contains("failed: Stripe API: &lt;down&gt;"), "{page}");
        assert!(page.contains("3 (1)"));
        assert!(page.contains("2027-01-15"), "the mark as a date: {page}");
    }
}
