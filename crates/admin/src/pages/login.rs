//! Signing in with the admin token, and out.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{FormPairs, field, form_pairs};
use crate::AdminState;
use crate::auth::{self, Principal, safe_next};
use crate::html::{self, html_escape};

fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let error = error.map(|e| format!("<div class=\"flash bad\">{}</div>", html_escape(e))).unwrap_or_default();
    let body = format!(
        "<div class=\"login card\"><h1>Sign in</h1>{error}\
<p class=\"muted\">Paste the admin token (<span class=\"mono\">SUBSYNC_ADMIN_TOKEN</span>).</p>\
<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
<label for=\"token\">Admin token</label><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" autofocus required>\
<button type=\"submit\" class=\"primary\">Sign in</button></form></div>",
        html_escape(next)
    );
    html::respond(status, html::bare_page("Sign in", &body))
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
