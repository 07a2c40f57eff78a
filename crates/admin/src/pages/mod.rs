//! The dashboard: server-rendered HTML, no JavaScript, one inline stylesheet. Every page reads
//! the store directly; every change is a POST form carrying a CSRF token.

mod audit;
mod duties;
mod entitlements;
mod groups;
mod jobs;
mod login;
mod notifications;
mod support;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

use crate::AdminState;
use crate::auth::{Principal, safe_next};
use crate::error::AdminError;
use crate::html;

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(jobs::index))
        .route("/jobs/bulk", post(jobs::bulk))
        .route("/jobs/{id}", get(jobs::detail))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/groups", get(groups::running))
        .route("/entitlements", get(entitlements::lookup))
        .route("/events/{event_id}", get(entitlements::event))
        .route("/audit", get(audit::list))
        .route("/duties", get(duties::list))
        .route("/notifications", get(notifications::list))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
}

/// An [`AdminError`] answered as an HTML error page.
pub(crate) struct PageError(AdminError);

impl<E: Into<AdminError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        let title = status.canonical_reason().unwrap_or("Error");
        html::error_page(status, title, &self.0.public_message())
    }
}

type PageResult = Result<Response, PageError>;

/// Form fields as pairs, so repeated names (`state`) survive.
type FormPairs = Result<axum::Form<Vec<(String, String)>>, FormRejection>;

fn form_pairs(form: FormPairs) -> Result<Vec<(String, String)>, PageError> {
    form.map(|axum::Form(p)| p).map_err(|e| AdminError::InvalidInput(format!("malformed form: {e}")).into())
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Refuses a form whose CSRF token does not belong to the session.
/// Returns the 403 page to answer with when the form's CSRF token is wrong.
fn check_csrf(state: &AdminState, principal: &Principal, pairs: &[(String, String)]) -> Option<Response> {
    if principal.check_csrf(&state.token, field(pairs, "csrf")) {
        None
    } else {
        tracing::warn!("refused a dashboard form with a missing or wrong CSRF token");
        Some(html::error_page(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the form's security token is missing or stale; reload the page and try again",
        ))
    }
}

/// After a POST: back to `next` (local paths only) with a flash code, as a 303 so a reload
/// does not resubmit.
fn back_to(next: Option<&str>, flash: &str) -> Response {
    let next = safe_next(next);
    let sep = if next.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{next}{sep}flash={}", html::url_encode(flash))).into_response()
}

/// The flash message for a known code; unknown codes show nothing (never reflected).
fn flash_message(pairs: &[(String, String)]) -> Markup {
    let Some(code) = field(pairs, "flash") else { return html! {} };
    let text = match code.split_once(':') {
        Some(("bulk-retry", n)) if n.parse::<u64>().is_ok() => format!("Retried {n} job(s)."),
        Some(("bulk-cancel", n)) if n.parse::<u64>().is_ok() => format!("Cancelled {n} job(s)."),
        _ => match code {
            "retried" => "Job queued for retry.".to_string(),
            "cancelled" => "Job cancelled.".to_string(),
            _ => return html! {},
        },
    };
    html! { div.flash { (text) } }
}
