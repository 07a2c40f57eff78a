//! Signing in with the admin token, and out.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{FormPairs, field, form_pairs};
use crate::AdminState;
use crate::auth::{self, Principal, safe_next};
use crate::html;

fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    html::respond(status, html::bare_page("Sign in", login_body(next, error)))
}

fn login_body(next: &str, error: Option<&str>) -> Markup {
    html! {
        div.login.card {
            h1 { "Sign in" }
            @if let Some(e) = error {
                div.flash.bad { (e) }
            }
            p.muted { "Paste the admin token (" span.mono { "SUBSYNC_ADMIN_TOKEN" } ")." }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "Admin token" }
                input #token name="token" type="password" autocomplete="current-password" autofocus required;
                button.primary type="submit" { "Sign in" }
            }
        }
    }
}

pub(super) async fn form(Query(q): Query<Vec<(String, String)>>) -> Response {
    let next = safe_next(field(&q, "next"));
    login_page(StatusCode::OK, &next, None)
}

pub(super) async fn submit(State(state): State<AdminState>, form: FormPairs) -> Response {
    let pairs = match form_pairs(form) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let next = safe_next(field(&pairs, "next"));
    let presented = field(&pairs, "token").unwrap_or("").trim();
    if !state.token.matches(presented) {
        tracing::warn!("dashboard sign-in refused: wrong token");
        return login_page(StatusCode::UNAUTHORIZED, &next, Some("That token is not right."));
    }
    let expires = chrono::Utc::now().timestamp() + auth::SESSION_SECONDS;
    let session = state.token.session_value(expires);
    tracing::info!("dashboard sign-in");
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
    let mut res = Redirect::to("/login").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&auth::session_clear_cookie(state.secure_cookies)) {
        res.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    res
}
