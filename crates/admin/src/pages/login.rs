//! Signing in with the admin token and your name, and out; both are recorded in the audit
//! log under that name.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{FormPairs, field, form_pairs};
use crate::AdminState;
use crate::audit::{self, Actor, AuditAction, MAX_ACTOR_CHARS, NewEntry, Via};
use crate::auth::{self, Principal, safe_next};
use crate::html;

fn login_page(status: StatusCode, next: &str, name: &str, error: Option<&str>) -> Response {
    html::respond(status, html::bare_page("Sign in", login_body(next, name, error)))
}

fn login_body(next: &str, name: &str, error: Option<&str>) -> Markup {
    html! {
        div.login.card {
            h1 { "Sign in" }
            @if let Some(e) = error {
                div.flash.bad { (e) }
            }
            p.muted {
                "Paste the admin token (" span.mono { "SUBSYNC_ADMIN_TOKEN" } ") and say who you are: "
                "the audit log records your actions under that name."
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="name" { "Your name" }
                input #name name="name" type="text" autocomplete="username" maxlength=(MAX_ACTOR_CHARS)
                    value=(name) autofocus required;
                label for="token" { "Admin token" }
                input #token name="token" type="password" autocomplete="current-password" required;
                button.primary type="submit" { "Sign in" }
            }
        }
    }
}

pub(super) async fn form(Query(q): Query<Vec<(String, String)>>) -> Response {
    let next = safe_next(field(&q, "next"));
    login_page(StatusCode::OK, &next, "", None)
}

pub(super) async fn submit(State(state): State<AdminState>, form: FormPairs) -> Response {
    let pairs = match form_pairs(form) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let next = safe_next(field(&pairs, "next"));
    let name = field(&pairs, "name").unwrap_or("");
    let presented = field(&pairs, "token").unwrap_or("").trim();
    // The token first: nobody learns anything about names without it. A refused sign-in is
    // logged, not audited (it is no operator's action, and anyone could fill the table).
    if !state.token.matches(presented) {
        tracing::warn!("dashboard sign-in refused: wrong token");
        return login_page(StatusCode::UNAUTHORIZED, &next, name, Some("That token is not right."));
    }
    let actor = match Actor::new(name, Via::Dashboard) {
        Ok(actor) => actor,
        Err(e) => {
            let message = format!("Your name: {e}");
            return login_page(StatusCode::BAD_REQUEST, &next, name, Some(message.as_str()));
        }
    };
    let expires = chrono::Utc::now().timestamp() + auth::SESSION_SECONDS;
    let session = state.token.session_value(expires, &actor);
    audit::record_after(&state.store, &session_entry(&actor, AuditAction::Login)).await;
    tracing::info!(actor = actor.name(), "dashboard sign-in");
    let mut res = Redirect::to(&next).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&auth::session_set_cookie(&session, state.secure_cookies)) {
        res.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    res
}

pub(super) async fn logout(
    State(state): State<AdminState>,
    axum::Extension(principal): axum::Extension<Principal>,
    form: FormPairs,
) -> Response {
    let pairs = match form_pairs(form) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Some(res) = super::check_csrf(&state, &principal, &pairs) {
        return res;
    }
    audit::record_after(&state.store, &session_entry(principal.actor(), AuditAction::Logout)).await;
    tracing::info!(actor = principal.actor().name(), "dashboard sign-out");
    let mut res = Redirect::to("/login").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&auth::session_clear_cookie(state.secure_cookies)) {
        res.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    res
}

fn session_entry(actor: &Actor, action: AuditAction) -> NewEntry<'_> {
    NewEntry { actor, action, target: String::new(), detail: None, jobs: 0, error: None }
}
