//! The jobs overview (tiles, filter, table, paging, bulk retry) and the job detail page.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};
use subsync_queue::{JobRecord, JobState};

use super::{FormPairs, PageResult, back_to, check_csrf, field, flash_message, form_pairs};
use crate::AdminState;
use crate::auth::Principal;
use crate::error::AdminError;
use crate::html::{self, post_button, state_badge, time_cell, truncate, url_encode};
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

    let body = html! {
        h1 { "Jobs" }
        (flash)
        (tiles(&stats, &filter.states))
        (filter_form(&list.query))
        (bulk_form(&list.query, &filter.states, total, csrf))
        (jobs_table(&jobs, csrf, &here))
        (pager(&list, page.offset, page.limit, jobs.len(), total))
    };
    Ok(html::respond(StatusCode::OK, html::page("Jobs", "jobs", csrf, body)))
}

fn tiles(stats: &ops::Stats, selected: &[JobState]) -> Markup {
    let per_min = stats.throughput.iter().find(|t| t.window_minutes == 5).map_or(0.0, |t| t.per_second * 60.0);
    html! {
        div.tiles {
            @for s in JobState::ALL {
                @let n = stats.totals.get(s.as_str()).copied().unwrap_or(0);
                a.tile.alert[s == JobState::Dead && n > 0].selected[selected == [s]]
                    href={ "/?state=" (s.as_str()) } data-state=(s.as_str()) {
                    div.n { (n) }
                    div.l { (s.as_str()) }
                }
            }
            div.tile.metric {
                div.n { (human_age(stats.oldest_due_age_seconds)) }
                div.l { "oldest due wait" }
            }
            a.tile.metric href="/groups" {
                div.n { (stats.running_groups) }
                div.l { "running groups" }
            }
            div.tile.metric {
                div.n { (format!("{per_min:.1}")) }
                div.l { "done / min (5m)" }
            }
        }
    }
}

fn filter_form(q: &JobQuery) -> Markup {
    let current = q.state.first().map(String::as_str).unwrap_or("");
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    html! {
        form.filters method="get" action="/" {
            label {
                "State"
                select name="state" {
                    option value="" { "any" }
                    @for s in JobState::ALL {
                        option value=(s.as_str()) selected[current == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            label { "Subscription (group)" input name="group" value=(v(&q.group)) placeholder="sub_…" size="22"; }
            label { "Event id" input name="key" value=(v(&q.key)) placeholder="evt_…" size="24"; }
            label { "Queue" input name="queue" value=(v(&q.queue)) size="10"; }
            label { "Since" input name="since" value=(v(&q.since)) placeholder="2h or RFC 3339" size="14"; }
            button.primary type="submit" { "Filter" }
            a.btn href="/" { "Clear" }
        }
    }
}

/// "Retry all N matching" for a filter on dead or cancelled jobs: the 2 a.m. replay, with a
/// confirmation checkbox the browser enforces and the server checks again.
fn bulk_form(q: &JobQuery, states: &[JobState], total: u64, csrf: Option<&str>) -> Markup {
    if total == 0 || states.is_empty() || !states.iter().all(|s| matches!(s, JobState::Dead | JobState::Cancelled)) {
        return html! {};
    }
    let filters = [("queue", &q.queue), ("group", &q.group), ("key", &q.key), ("since", &q.since), ("until", &q.until)];
    html! {
        form.card.bulk method="post" action="/jobs/bulk" {
            (html::csrf_field(csrf))
            @for s in states {
                input type="hidden" name="state" value=(s.as_str());
            }
            @for (name, value) in filters {
                @if let Some(v) = value {
                    input type="hidden" name=(name) value=(v);
                }
            }
            input type="hidden" name="action" value="retry";
            label {
                input type="checkbox" name="confirm" value="yes" required;
                " Retry all " strong { (total) } " matching job(s) (" (q.describe()) ")"
            }
            button.primary type="submit" { "Retry all" }
        }
    }
}

fn jobs_table(jobs: &[JobRecord], csrf: Option<&str>, here: &str) -> Markup {
    if jobs.is_empty() {
        return html! { div.card.empty { "No jobs match this filter." } };
    }
    html! {
        div.scroll { table {
            thead { tr {
                th { "Job" } th { "Event id" } th { "Subscription" } th { "Queue" } th { "State" }
                th { "Attempts" } th { "Created (UTC)" } th { "Last error" } th {}
            } }
            tbody {
                @for j in jobs {
                    @let id = j.id.to_string();
                    @let error = j.last_error.as_deref().unwrap_or("");
                    tr data-job-id=(id) data-state=(j.state.as_str()) {
                        td.mono { a href={ "/jobs/" (id) } title=(id) { (html::short_id(&j.id)) } }
                        td.mono { (j.unique_key.as_deref().unwrap_or("")) }
                        td.mono { a href={ "/?group=" (url_encode(&j.group_key)) } { (j.group_key) } }
                        td { (j.queue) }
                        td { (state_badge(j.state)) }
                        td.num { (j.attempts) "/" (j.max_attempts) }
                        td { (html::time_cell_short(j.created_at)) }
                        td.err title=(truncate(error, 500)) { (truncate(error, 80)) }
                        td {
                            @if matches!(j.state, JobState::Dead | JobState::Cancelled) {
                                (post_button(&format!("/jobs/{id}/retry"), "Retry", "retry", csrf, here))
                            }
                        }
                    }
                }
            }
        } }
    }
}

fn pager(list: &ListQuery, offset: u64, limit: u32, shown: usize, total: u64) -> Markup {
    if total == 0 {
        return html! {};
    }
    let from = offset + 1;
    let to = offset + shown as u64;
    html! {
        div.pager {
            span.muted { "Showing " (from) "–" (to) " of " (total) }
            @if offset > 0 {
                a.btn href={ "/?" (list.to_query_string(offset.saturating_sub(u64::from(limit)))) } { "← Newer" }
            }
            @if to < total {
                a.btn href={ "/?" (list.to_query_string(offset + u64::from(limit))) } { "Older →" }
            }
        }
    }
}

pub(super) async fn detail(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> PageResult {
    let job = ops::resolve_job(&state.store, &id, None).await?;
    let csrf = principal.csrf(&state.token);
    let body = detail_body(&job, csrf.as_deref(), flash_message(&pairs));
    Ok(html::respond(StatusCode::OK, html::page("Job", "jobs", csrf.as_deref(), body)))
}

/// The job page's content: facts, actions, last error and payload.
fn detail_body(job: &JobRecord, csrf: Option<&str>, flash: Markup) -> Markup {
    let here = format!("/jobs/{}", job.id);
    // A pending job can only be "retried" (made due now) while it waits for its next attempt.
    let waiting = job.state != JobState::Pending || job.run_at > Utc::now();
    let dash = |s: Option<&str>| s.filter(|s| !s.is_empty()).unwrap_or("—").to_string();
    let payload = serde_json::to_string_pretty(&job.payload).unwrap_or_default();
    html! {
        p { a href="/" { "← All jobs" } }
        h1 { "Job " span.mono { (job.id.to_string()) } " " (state_badge(job.state)) }
        (flash)
        div.actions {
            @if retryable(job.state) && waiting {
                (post_button(&format!("{here}/retry"), "Retry now", "primary", csrf, &here))
            }
            @if cancellable(job.state) {
                (post_button(&format!("{here}/cancel"), "Cancel", "danger", csrf, &here))
            }
            @if !job.group_key.is_empty() {
                a.btn href={ "/?group=" (url_encode(&job.group_key)) } { "All jobs of this subscription" }
            }
            // A job's unique key is its Stripe event id: link the stored event.
            @if let Some(key) = &job.unique_key {
                a.btn href={ "/events/" (url_encode(key)) } { "Stored event" }
            }
        }
        div.grid2 {
            div {
                h2 { "Details" }
                div.card { dl.kv {
                    dt { "State" } dd { (state_badge(job.state)) }
                    dt { "Queue" } dd { (job.queue) }
                    dt { "Event id" } dd.mono { (dash(job.unique_key.as_deref())) }
                    dt { "Subscription (group)" } dd.mono { (dash(Some(&job.group_key))) }
                    dt { "Attempts" } dd { (job.attempts) " of " (job.max_attempts) }
                    dt { "Next run at" } dd { (time_cell(Some(job.run_at))) }
                    dt { "Created" } dd { (time_cell(Some(job.created_at))) }
                    dt { "Last started" } dd { (time_cell(job.started_at)) }
                    dt { "Finished" } dd { (time_cell(job.finished_at)) }
                    dt { (if job.state == JobState::Running { "Lease holder" } else { "Last worker" }) }
                    dd.mono { (dash(job.lease_owner.as_deref())) }
                    dt { "Lease expires" } dd { (time_cell(job.lease_expires_at)) }
                } }
            }
            div {
                h2 { "Last error" }
                @match &job.last_error {
                    Some(e) => pre.error { (e) },
                    None => div.card.empty { "No error recorded." },
                }
            }
        }
        h2 { "Payload" }
        pre { (payload) }
    }
}

async fn act(state: AdminState, principal: Principal, id: String, form: FormPairs, action: Action) -> Response {
    let pairs = match form_pairs(form) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Some(res) = check_csrf(&state, &principal, &pairs) {
        return res;
    }
    match ops::act_on_one(&state.store, action, &id, principal.actor()).await {
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
    match bulk_inner(&state, &principal, &pairs).await {
        Ok((action, n, list)) => {
            let qs = list.to_query_string(0);
            let next = if qs.is_empty() { "/".to_string() } else { format!("/?{qs}") };
            back_to(Some(&next), &format!("bulk-{}:{n}", action.verb()))
        }
        Err(e) => super::PageError::from(e).into_response(),
    }
}

async fn bulk_inner(
    state: &AdminState,
    principal: &Principal,
    pairs: &[(String, String)],
) -> Result<(Action, u64, ListQuery), AdminError> {
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
    let n =
        ops::apply_bulk(&state.store, action, &ids, &list.query.describe(), principal.actor(), |_, _, _| {}).await?;
    state.record_action(action, n);
    Ok((action, n, list))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "\"><script>alert(1)</script>";
    const ESCAPED: &str = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;";

    fn hostile_job() -> JobRecord {
        let now = Utc::now();
        JobRecord {
            id: uuid::Uuid::now_v7(),
            queue: format!("q{HOSTILE}"),
            unique_key: Some(format!("evt_{HOSTILE}")),
            group_key: format!("sub_{HOSTILE}"),
            payload: serde_json::json!({ "note": HOSTILE }),
            state: JobState::Dead,
            attempts: 12,
            max_attempts: 12,
            run_at: now,
            created_at: now,
            started_at: Some(now),
            finished_at: Some(now),
            lease_owner: Some(format!("w{HOSTILE}")),
            lease_expires_at: None,
            last_error: Some(format!("permanent: {HOSTILE}")),
        }
    }

    fn assert_escaped(html: &str) {
        assert!(!html.contains("<script>"), "raw script in {html}");
        assert!(!html.contains(HOSTILE), "the raw string in {html}");
        assert!(html.contains(ESCAPED), "escaped text missing in {html}");
    }

    #[test]
    fn hostile_strings_are_escaped_in_the_jobs_table() {
        let job = hostile_job();
        let table = jobs_table(std::slice::from_ref(&job), Some("tok"), "/?group=x").into_string();
        assert_escaped(&table);
        assert!(table.contains(&format!("<td class=\"mono\">evt_{ESCAPED}</td>")), "{table}");
        assert!(table.contains(&format!("href=\"/?group={}\"", url_encode(&job.group_key))), "{table}");
        assert!(table.contains(&format!("title=\"permanent: {ESCAPED}\"")), "{table}");
        assert!(table.contains("name=\"csrf\" value=\"tok\""), "{table}");
    }

    #[test]
    fn hostile_strings_are_escaped_on_the_job_page() {
        let job = hostile_job();
        let body = html::page("Job", "jobs", Some("tok"), detail_body(&job, Some("tok"), html! {})).into_string();
        assert_escaped(&body);
        assert!(body.contains(&format!("<pre class=\"error\">permanent: {ESCAPED}</pre>")), "{body}");
        assert!(body.contains(&format!("<dd class=\"mono\">evt_{ESCAPED}</dd>")), "{body}");
        assert!(body.contains(&format!("href=\"/events/{}\"", url_encode(job.unique_key.as_deref().unwrap()))));
        assert!(body.contains("Retry now") && body.contains("Cancel"), "a dead job can be retried and cancelled");
    }

    #[test]
    fn a_hostile_filter_is_escaped_in_the_forms() {
        let q = JobQuery { state: vec!["dead".into()], group: Some(HOSTILE.into()), ..JobQuery::default() };
        let form = filter_form(&q).into_string();
        assert_escaped(&form);
        assert!(form.contains(&format!("name=\"group\" value=\"{ESCAPED}\"")), "{form}");
        let bulk = bulk_form(&q, &[JobState::Dead], 3, Some("tok")).into_string();
        assert_escaped(&bulk);
        assert!(bulk.contains(&format!("name=\"group\" value=\"{ESCAPED}\"")), "{bulk}");
        assert!(bulk.contains("Retry all <strong>3</strong> matching job(s)"), "{bulk}");
    }
}
