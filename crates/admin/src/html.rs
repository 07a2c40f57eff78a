//! HTML building blocks for the dashboard: the page layout, small widgets and link encoding.
//!
//! Job payloads, errors, group ids and event ids are attacker-influenced (they come from
//! Stripe objects customers can name). Pages are written with [`maud`], which escapes every
//! interpolated value; the only raw HTML is the constant stylesheet. The
//! Content-Security-Policy sent with every response forbids scripts outright, as a second
//! line of defence.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use subsync_queue::JobState;

/// Everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters, for query strings and
/// path segments in links.
pub fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// The stylesheet, inline so the dashboard is one response and needs no static files.
const STYLE: &str = r#"
:root{--bg:#f5f6f8;--card:#fff;--ink:#1d2330;--muted:#667085;--line:#e3e6eb;--brand:#1f3a5f;
--accent:#2563eb;--dead:#c0262d;--dead-bg:#fdecec;--ok:#16794c;--ok-bg:#e7f6ee;--warn:#9a6700;--warn-bg:#fff4d6;
--run:#1d4ed8;--run-bg:#e6eeff;--grey-bg:#eef0f3}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Ubuntu,sans-serif;background:var(--bg);color:var(--ink)}
header{background:var(--brand);color:#fff;display:flex;align-items:center;gap:24px;padding:0 24px;height:52px}
header .brand{font-weight:700;font-size:16px;letter-spacing:.2px}
header nav{display:flex;gap:4px;flex:1}
header nav a{color:#cfd9e8;text-decoration:none;padding:6px 10px;border-radius:6px}
header nav a.active,header nav a:hover{background:rgba(255,255,255,.14);color:#fff}
header form{margin:0}
header button{background:transparent;border:1px solid rgba(255,255,255,.4);color:#fff}
main{max-width:1280px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:20px;margin:4px 0 16px}
h2{font-size:15px;margin:24px 0 10px;color:var(--muted);text-transform:uppercase;letter-spacing:.6px}
a{color:var(--accent)}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(118px,1fr));gap:10px;margin-bottom:8px}
.tile.metric{background:#fafbfc}
span.ts{white-space:nowrap}
.tile{display:block;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;text-decoration:none;color:var(--ink)}
.tile:hover{border-color:var(--accent)}
.tile .n{font-size:26px;font-weight:700;font-variant-numeric:tabular-nums}
.tile .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.6px}
.tile.alert{background:var(--dead-bg);border-color:var(--dead)}
.tile.alert .n,.tile.alert .l{color:var(--dead)}
.tile.selected{outline:2px solid var(--accent)}
form.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;margin:16px 0}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:3px}
input,select{font:inherit;padding:6px 8px;border:1px solid #c9ced6;border-radius:6px;background:#fff;min-width:0}
button,.btn{font:inherit;padding:6px 12px;border-radius:6px;border:1px solid #c9ced6;background:#fff;color:var(--ink);cursor:pointer;text-decoration:none;display:inline-block}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button.danger{background:#fff;border-color:var(--dead);color:var(--dead)}
button.retry{background:var(--accent);border-color:var(--accent);color:#fff;padding:3px 10px;font-size:13px}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:hidden}
th,td{text-align:left;padding:7px 9px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#fafbfc;font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.5px;font-weight:600}
tr:last-child td{border-bottom:0}
tbody tr:hover{background:#f8fafc}
td.mono,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
td.mono{white-space:nowrap}
.scroll{overflow-x:auto;border-radius:10px}
span.err{color:var(--dead)}
td.err{color:var(--dead);max-width:250px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600}
.s-pending{background:var(--warn-bg);color:var(--warn)}.s-running{background:var(--run-bg);color:var(--run)}
.s-succeeded{background:var(--ok-bg);color:var(--ok)}.s-dead{background:var(--dead-bg);color:var(--dead)}
.s-cancelled{background:var(--grey-bg);color:var(--muted)}
.muted{color:var(--muted)}
.pager{display:flex;gap:10px;align-items:center;margin-top:12px}
dl.kv{display:grid;grid-template-columns:180px 1fr;gap:6px 16px;margin:0}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0}
pre{background:#0f172a;color:#e2e8f0;padding:14px;border-radius:8px;overflow:auto;white-space:pre-wrap;word-break:break-word;font-size:12.5px;margin:0}
pre.error{background:var(--dead-bg);color:#7a1419;border:1px solid #f1b6b9}
.actions{display:flex;gap:8px;margin:16px 0}
.actions form{margin:0}
.flash{padding:10px 14px;border-radius:8px;margin-bottom:14px;background:var(--ok-bg);color:var(--ok);border:1px solid #a7dcc0}
.flash.bad{background:var(--dead-bg);color:var(--dead);border-color:#f1b6b9}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
@media (max-width:900px){.grid2{grid-template-columns:1fr}}
.login{max-width:380px;margin:12vh auto}
.login input{width:100%;margin:8px 0 14px}
.empty{padding:28px;text-align:center;color:var(--muted)}
.bulk{display:flex;gap:10px;align-items:center;margin-top:14px;padding:10px 14px}
"#;

/// The navigation entries; `active` names the current one.
const NAV: &[(&str, &str, &str)] = &[
    ("jobs", "/", "Jobs"),
    ("groups", "/groups", "Running groups"),
    ("entitlements", "/entitlements", "Entitlements"),
    ("audit", "/audit", "Audit log"),
    ("duties", "/duties", "Duties"),
    ("notifications", "/notifications", "Notifications"),
];

/// The document around a page: head with title and stylesheet, the header bar (`nav`), then
/// `body` in `<main>`.
fn document(title: &str, header: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · subsync admin" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    span.brand { "subsync admin" }
                    (header)
                }
                main { (body) }
            }
        }
    }
}

/// A full page: header with navigation and sign-out (when `csrf` is known), then `body`.
pub fn page(title: &str, active: &str, csrf: Option<&str>, body: Markup) -> Markup {
    let header = html! {
        nav {
            @for (key, href, label) in NAV {
                a href=(href) class=[(*key == active).then_some("active")] { (label) }
            }
        }
        @if let Some(csrf) = csrf {
            form method="post" action="/logout" {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Sign out" }
            }
        }
    };
    document(title, header, body)
}

/// A page without navigation (login, errors before sign-in).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    document(title, html! {}, body)
}

/// An HTML response with the given status.
pub fn respond(status: StatusCode, html: Markup) -> Response {
    let mut res = (status, html.into_string()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    res
}

/// An error page: what went wrong, in one sentence, and a way back.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    respond(status, error_markup(title, message))
}

fn error_markup(title: &str, message: &str) -> Markup {
    let body = html! {
        h1 { (title) }
        div.flash.bad { (message) }
        p { a href="/" { "Back to the dashboard" } }
    };
    bare_page(title, body)
}

/// The part of a job id worth showing in a table: UUID v7 ids start with the creation time,
/// so ids made together share their first characters; the random tail tells them apart.
pub fn short_id(id: &uuid::Uuid) -> String {
    let s = id.simple().to_string();
    format!("…{}", &s[s.len() - 10..])
}

/// A state as a coloured badge.
pub fn state_badge(state: JobState) -> Markup {
    html! { span class={ "badge s-" (state.as_str()) } { (state.as_str()) } }
}

/// A timestamp: exact UTC on hover, compact in the cell.
pub fn time_cell(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        None => html! { span.muted { "—" } },
        Some(t) => timestamp(t, "%Y-%m-%d %H:%M:%S"),
    }
}

/// A compact timestamp for table cells (month-day time); exact UTC on hover.
pub fn time_cell_short(t: DateTime<Utc>) -> Markup {
    timestamp(t, "%b %d %H:%M:%S")
}

fn timestamp(t: DateTime<Utc>, shown: &str) -> Markup {
    html! {
        span.ts title=(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) { (t.format(shown).to_string()) }
    }
}

/// Shortens a one-line summary of `s` to `max` characters (never splitting a character).
pub fn truncate(s: &str, max: usize) -> String {
    let line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        let mut t: String = line.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A hidden CSRF field for a form, empty for bearer clients.
pub fn csrf_field(csrf: Option<&str>) -> Markup {
    html! {
        @if let Some(c) = csrf {
            input type="hidden" name="csrf" value=(c);
        }
    }
}

/// A one-button POST form (retry, cancel). `next` is where to come back to.
pub fn post_button(action: &str, label: &str, class: &str, csrf: Option<&str>, next: &str) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf_field(csrf))
            input type="hidden" name="next" value=(next);
            button type="submit" class=(class) { (label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("sub_1"), "sub_1");
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(url_encode("\"><script>"), "%22%3E%3Cscript%3E");
        assert_eq!(url_encode("AZaz09-._~"), "AZaz09-._~", "unreserved characters stay");
        assert_eq!(url_encode("!*'()+,;:@?#[]$%"), "%21%2A%27%28%29%2B%2C%3B%3A%40%3F%23%5B%5D%24%25");
    }

    #[test]
    fn truncation_is_char_safe() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("line one\nline two", 100), "line one line two");
        assert_eq!(truncate("ééééé", 3), "éé…");
    }

    #[test]
    fn widgets_escape_their_inputs() {
        let b = post_button("/jobs/x/retry", "Retry", "retry", Some("t\"ok"), "/?group=<b>").into_string();
        assert!(b.contains("name=\"csrf\" value=\"t&quot;ok\""), "{b}");
        assert!(b.contains("value=\"/?group=&lt;b&gt;\""), "{b}");
        let p = page("<t>", "jobs", None, html! {}).into_string();
        assert!(p.contains("<title>&lt;t&gt; · subsync admin</title>"), "{p}");
        assert!(p.contains("<a href=\"/\" class=\"active\">Jobs</a>"), "{p}");
        assert!(!p.contains("/logout"), "no sign-out without a session");
    }

    #[test]
    fn error_pages_escape_the_message() {
        let hostile = "\"><script>alert(1)</script>";
        let body = error_markup("Not Found", hostile).into_string();
        assert!(body.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"), "{body}");
        assert!(!body.contains("<script>"), "{body}");
    }
}
