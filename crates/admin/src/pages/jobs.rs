//! The jobs overview (tiles, filter, table, paging, bulk retry) and the job detail page.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use subsync_queue::{JobRecord, JobState};

use super::{FormPairs, PageResult, back_to, check_csrf, field, flash_message, form_pairs};
use crate::AdminState;
use crate::auth::Principal;
use crate::error::AdminError;
use crate::html::{self, html_escape, post_button, state_badge, time_cell, truncate, url_encode};
use crate::ops::{self, Action, human_age};
use crate::query::{JobQuery, ListQuery};

fn retryable(state: JobState) -> bool {
    matches!(state, JobState::Dead | JobState::Cancelled | JobState::Pending)
}

fn cancellable(state: JobState) -> bool {
    matches!(state, JobState::Dead | JobState::Pending)
}

pub(super) async fn index(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> PageResult {
    let flash = flash_message(&pairs);
    let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != "flash").collect();
    let list = ListQuery::from_pairs(&pairs)?;
    let filter = list.query.filter(Utc::now())?;
    let page = list.page()?;
    let jobs = state.store.list(&filter, page).await?;
    let total = state.store.count(&filter).await?;
    let stats = ops::stats(&state.store, Utc::now()).await?;
    let csrf = principal.csrf(&state.token);
    let csrf = csrf.as_deref();
    let here = {
        let qs = list.to_query_string(page.offset);
        if qs.is_empty() { "/".to_string() } else { format!("/?{qs}") }
    };

    let mut body = String::from("<h1>Jobs</h1>");
    body.push_str(&flash);
    body.push_str(&tiles(&stats, &filter.states));
    body.push_str(&filter_form(&list.query));
    body.push_str(&bulk_form(&list.query, &filter.states, total, csrf));
    body.push_str(&jobs_table(&jobs, csrf, &here));
    body.push_str(&pager(&list, page.offset, page.limit, jobs.len(), total));
    Ok(html::respond(StatusCode::OK, html::page("Jobs", "jobs", csrf, &body)))
}

fn tiles(stats: &ops::Stats, selected: &[JobState]) -> String {
    let mut out = String::from("<div class=\"tiles\">");
    for s in JobState::ALL {
        let n = stats.totals.get(s.as_str()).copied().unwrap_or(0);
        let mut class = String::from("tile");
        if s == JobState::Dead && n > 0 {
            class.push_str(" alert");
        }
        if selected == [s] {
            class.push_str(" selected");
        }
        out.push_str(&format!(
            "<a class=\"{class}\" href=\"/?state={0}\" data-state=\"{0}\"><div class=\"n\">{n}</div><div class=\"l\">{0}</div></a>",
            s.as_str()
        ));
    }
    let per_min = stats.throughput.iter().find(|t| t.window_minutes == 5).map_or(0.0, |t| t.per_second * 60.0);
    out.push_str(&format!(
        "<div class=\"tile metric\"><div class=\"n\">{}</div><div class=\"l\">oldest due wait</div></div>\
<a class=\"tile metric\" href=\"/groups\"><div class=\"n\">{}</div><div class=\"l\">running groups</div></a>\
<div class=\"tile metric\"><div class=\"n\">{:.1}</div><div class=\"l\">done / min (5m)</div></div></div>",
        human_age(stats.oldest_due_age_seconds),
        stats.running_groups,
        per_min
    ));
    out
}

fn filter_form(q: &JobQuery) -> String {
    let current = q.state.first().map(String::as_str).unwrap_or("");
    let mut options = String::from("<option value=\"\">any</option>");
    for s in JobState::ALL {
        let sel = if current == s.as_str() { " selected" } else { "" };
        options.push_str(&format!("<option value=\"{0}\"{sel}>{0}</option>", s.as_str()));
    }
    let v = |o: &Option<String>| html_escape(o.as_deref().unwrap_or(""));
    format!(
        "<form class=\"filters\" method=\"get\" action=\"/\">\
<label>State<select name=\"state\">{options}</select></label>\
<label>Subscription (group)<input name=\"group\" value=\"{}\" placeholder=\"sub_…\" size=\"22\"></label>\
<label>Event id<input name=\"key\" value=\"{}\" placeholder=\"evt_…\" size=\"24\"></label>\
<label>Queue<input name=\"queue\" value=\"{}\" size=\"10\"></label>\
<label>Since<input name=\"since\" value=\"{}\" placeholder=\"2h or RFC 3339\" size=\"14\"></label>\
<button type=\"submit\" class=\"primary\">Filter</button><a class=\"btn\" href=\"/\">Clear</a></form>",
        v(&q.group),
        v(&q.key),
        v(&q.queue),
        v(&q.since)
    )
}

/// "Retry all N matching" for a filter on dead or cancelled jobs: the 2 a.m. replay, with a
/// confirmation checkbox the browser enforces and the server checks again.
fn bulk_form(q: &JobQuery, states: &[JobState], total: u64, csrf: Option<&str>) -> String {
    if total == 0 || states.is_empty() || !states.iter().all(|s| matches!(s, JobState::Dead | JobState::Cancelled)) {
        return String::new();
    }
    let mut hidden = html::csrf_field(csrf);
    for s in states {
        hidden.push_str(&format!("<input type=\"hidden\" name=\"state\" value=\"{}\">", s.as_str()));
    }
    for (name, value) in
        [("queue", &q.queue), ("group", &q.group), ("key", &q.key), ("since", &q.since), ("until", &q.until)]
    {
        if let Some(v) = value {
            hidden.push_str(&format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", html_escape(v)));
        }
    }
    format!(
        "<form class=\"card bulk\" method=\"post\" action=\"/jobs/bulk\">{hidden}<input type=\"hidden\" name=\"action\" value=\"retry\">\
<label><input type=\"checkbox\" name=\"confirm\" value=\"yes\" required> Retry all <strong>{total}</strong> matching job(s) ({})</label>\
<button type=\"submit\" class=\"primary\">Retry all</button></form>",
        html_escape(&q.describe())
    )
}

fn jobs_table(jobs: &[JobRecord], csrf: Option<&str>, here: &str) -> String {
    if jobs.is_empty() {
        return "<div class=\"card empty\">No jobs match this filter.</div>".to_string();
    }
    let mut rows = String::new();
    for j in jobs {
        let short = html::short_id(&j.id);
        let key = j.unique_key.as_deref().unwrap_or("");
        let error = j.last_error.as_deref().unwrap_or("");
        let action = if matches!(j.state, JobState::Dead | JobState::Cancelled) {
            post_button(&format!("/jobs/{}/retry", j.id), "Retry", "retry", csrf, here)
        } else {
            String::new()
        };
        rows.push_str(&format!(
            "<tr data-job-id=\"{id}\" data-state=\"{state}\"><td class=\"mono\"><a href=\"/jobs/{id}\" title=\"{id}\">{short}</a></td>\
<td class=\"mono\">{key}</td><td class=\"mono\"><a href=\"/?group={group_q}\">{group}</a></td><td>{queue}</td><td>{badge}</td>\
<td class=\"num\">{attempts}/{max}</td><td>{created}</td><td class=\"err\" title=\"{error_full}\">{error}</td><td>{action}</td></tr>",
            id = j.id,
            state = j.state.as_str(),
            key = html_escape(key),
            group_q = url_encode(&j.group_key),
            group = html_escape(&j.group_key),
            queue = html_escape(&j.queue),
            badge = state_badge(j.state),
            attempts = j.attempts,
            max = j.max_attempts,
            created = html::time_cell_short(j.created_at),
            error_full = html_escape(&truncate(error, 500)),
            error = html_escape(&truncate(error, 80)),
        ));
    }
    format!(
        "<div class=\"scroll\"><table><thead><tr><th>Job</th><th>Event id</th><th>Subscription</th><th>Queue</th><th>State</th><th>Attempts</th><th>Created (UTC)</th><th>Last error</th><th></th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

fn pager(list: &ListQuery, offset: u64, limit: u32, shown: usize, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    let from = offset + 1;
    let to = offset + shown as u64;
    let mut out = format!("<div class=\"pager\"><span class=\"muted\">Showing {from}–{to} of {total}</span>");
    if offset > 0 {
        let prev = offset.saturating_sub(u64::from(limit));
        out.push_str(&format!("<a class=\"btn\" href=\"/?{}\">← Newer</a>", html_escape(&list.to_query_string(prev))));
    }
    if to < total {
        out.push_str(&format!(
            "<a class=\"btn\" href=\"/?{}\">Older →</a>",
            html_escape(&list.to_query_string(offset + u64::from(limit)))
        ));
    }
    out.push_str("</div>");
    out
}

pub(super) async fn detail(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> PageResult {
    let job = ops::resolve_job(&state.store, &id, None).await?;
    let csrf = principal.csrf(&state.token);
    let csrf = csrf.as_deref();
    let here = format!("/jobs/{}", job.id);
    let mut actions = String::new();
    // A pending job can only be "retried" (made due now) while it waits for its next attempt.
    let waiting = job.state != JobState::Pending || job.run_at > Utc::now();
    if retryable(job.state) && waiting {
        actions.push_str(&post_button(&format!("/jobs/{}/retry", job.id), "Retry now", "primary", csrf, &here));
    }
    if cancellable(job.state) {
        actions.push_str(&post_button(&format!("/jobs/{}/cancel", job.id), "Cancel", "danger", csrf, &here));
    }
    if !job.group_key.is_empty() {
        actions.push_str(&format!(
            "<a class=\"btn\" href=\"/?group={}\">All jobs of this subscription</a>",
            url_encode(&job.group_key)
        ));
    }
    if let (Some(key), Some(_)) = (&job.unique_key, &state.events) {
        actions.push_str(&format!("<a class=\"btn\" href=\"/events/{}\">Stored event</a>", url_encode(key)));
    }
    let dash = |s: Option<&str>| html_escape(s.filter(|s| !s.is_empty()).unwrap_or("—"));
    let facts = format!(
        "<dl class=\"kv\"><dt>State</dt><dd>{}</dd><dt>Queue</dt><dd>{}</dd><dt>Event id</dt><dd class=\"mono\">{}</dd>\
<dt>Subscription (group)</dt><dd class=\"mono\">{}</dd><dt>Attempts</dt><dd>{} of {}</dd><dt>Next run at</dt><dd>{}</dd>\
<dt>Created</dt><dd>{}</dd><dt>Last started</dt><dd>{}</dd><dt>Finished</dt><dd>{}</dd><dt>{}</dt><dd class=\"mono\">{}</dd>\
<dt>Lease expires</dt><dd>{}</dd></dl>",
        state_badge(job.state),
        html_escape(&job.queue),
        dash(job.unique_key.as_deref()),
        dash(Some(&job.group_key)),
        job.attempts,
        job.max_attempts,
        time_cell(Some(job.run_at)),
        time_cell(Some(job.created_at)),
        time_cell(job.started_at),
        time_cell(job.finished_at),
        if job.state == JobState::Running { "Lease holder" } else { "Last worker" },
        dash(job.lease_owner.as_deref()),
        time_cell(job.lease_expires_at),
    );
    let error = match &job.last_error {
        Some(e) => format!("<pre class=\"error\">{}</pre>", html_escape(e)),
        None => "<div class=\"card empty\">No error recorded.</div>".to_string(),
    };
    let payload = serde_json::to_string_pretty(&job.payload).unwrap_or_default();
    let body = format!(
        "<p><a href=\"/\">← All jobs</a></p><h1>Job <span class=\"mono\">{}</span> {}</h1>{}<div class=\"actions\">{actions}</div>\
<div class=\"grid2\"><div><h2>Details</h2><div class=\"card\">{facts}</div></div><div><h2>Last error</h2>{error}</div></div>\
<h2>Payload</h2><pre>{}</pre>",
        job.id,
        state_badge(job.state),
        flash_message(&pairs),
        html_escape(&payload)
    );
    Ok(html::respond(StatusCode::OK, html::page("Job", "jobs", csrf, &body)))
}

async fn act(state: AdminState, principal: Principal, id: String, form: FormPairs, action: Action) -> Response {
    let pairs = match form_pairs(form) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Some(res) = check_csrf(&state, &principal, &pairs) {
        return res;
    }
    match ops::act_on_one(&state.store, action, &id, "dashboard").await {
        Ok(_) => {
            state.record_action(action, 1);
            back_to(field(&pairs, "next"), if action == Action::Retry { "retried" } else { "cancelled" })
        }
        Err(e) => super::PageError::from(e).into_response(),
    }
}

pub(super) async fn retry(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    form: FormPairs,
) -> Response {
    act(state, principal, id, form, Action::Retry).await
}

pub(super) async fn cancel(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    form: FormPairs,
) -> Response {
    act(state, principal, id, form, Action::Cancel).await
}

pub(super) async fn bulk(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    form: FormPairs,
) -> Response {
    let pairs = match form_pairs(form) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Some(res) = check_csrf(&state, &principal, &pairs) {
        return res;
    }
    match bulk_inner(&state, &pairs).await {
        Ok((action, n, list)) => {
            let qs = list.to_query_string(0);
            let next = if qs.is_empty() { "/".to_string() } else { format!("/?{qs}") };
            back_to(Some(&next), &format!("bulk-{}:{n}", action.verb()))
        }
        Err(e) => super::PageError::from(e).into_response(),
    }
}

async fn bulk_inner(state: &AdminState, pairs: &[(String, String)]) -> Result<(Action, u64, ListQuery), AdminError> {
    let action = match field(pairs, "action") {
        Some("retry") => Action::Retry,
        Some("cancel") => Action::Cancel,
        _ => return Err(AdminError::InvalidInput("unknown bulk action".into())),
    };
    if field(pairs, "confirm") != Some("yes") {
        return Err(AdminError::NotConfirmed("tick the confirmation box to run a bulk action".into()));
    }
    let filter_pairs: Vec<(String, String)> =
        pairs.iter().filter(|(k, _)| !matches!(k.as_str(), "csrf" | "action" | "confirm")).cloned().collect();
    let list = ListQuery::from_pairs(&filter_pairs)?;
    if list.query.state.is_empty() {
        return Err(AdminError::InvalidInput("a bulk action needs a state filter".into()));
    }
    let filter = list.query.filter(Utc::now())?;
    let ids = ops::matching_ids(&state.store, &filter).await?;
    let n = ops::apply_in_chunks(&state.store, action, &ids, |_, _, _| {}).await?;
    state.record_action(action, n);
    tracing::info!(action = action.verb(), matched = ids.len(), changed = n, filter = %list.query.describe(), via = "dashboard", "operator bulk action");
    Ok((action, n, list))
}
