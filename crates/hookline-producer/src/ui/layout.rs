//! What every portal page shares: the page frame with its style sheet, and
//! small pieces (times, health badges).

use maud::{DOCTYPE, Markup, PreEscaped, html};
use time::OffsetDateTime;

use super::session::Session;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#111}header{background:#1f2937;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}header a{color:#fff}main{padding:1rem;max-width:72rem}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35rem;text-align:left;vertical-align:top;word-break:break-word}.badge{padding:.1rem .4rem;border-radius:.3rem;border:1px solid}.healthy{background:#dcfce7}.unhealthy{background:#fef9c3}.suspended{background:#fee2e2}.error{color:#b91c1c}label{display:block;margin-top:.7rem;font-weight:600}input[type=text],input[type=url],input[type=password],textarea,select{width:100%;max-width:40rem;padding:.3rem;box-sizing:border-box}form.inline{display:inline}button{margin:.3rem .3rem .3rem 0;padding:.3rem .7rem}pre{white-space:pre-wrap;background:#f3f4f6;padding:.5rem}@media(max-width:40rem){table,tbody,tr,td{display:block}thead{display:none}tr{border-bottom:1px solid #ddd;padding:.4rem 0}td{border:none;padding:.1rem 0}td::before{content:attr(data-label) \": \";font-weight:600}}";

/// A whole page; with a session, the header links the webhooks and signs out.
pub(crate) fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · Hookline" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "Hookline" }
                    @if let Some(s) = session {
                        a href="/ui/webhooks" { "Webhooks" }
                        span { (s.describe()) }
                        form.inline method="post" action="/ui/logout" { (s.csrf_field()) button { "Sign out" } }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A time, with how long ago (or ahead) it is; a dash for none.
pub(super) fn when(at: Option<OffsetDateTime>) -> Markup {
    let Some(at) = at else { return html! { "—" } };
    let ago = (OffsetDateTime::now_utc() - at).whole_seconds();
    let hint = match ago {
        i64::MIN..=-1 => format!("in {}", human(-ago)),
        0..=59 => "just now".to_owned(),
        _ => format!("{} ago", human(ago)),
    };
    let stamp = hookline_core::format_timestamp(at);
    html! { time datetime=(stamp) { (stamp) } " " small { "(" (hint) ")" } }
}

fn human(seconds: i64) -> String {
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min", seconds / 60),
        3600..=86399 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86400),
    }
}

/// A webhook's health, with its run of failures.
pub(super) fn badge(status: &str, failures: i32) -> Markup {
    html! {
        span class={ "badge " (status) } {
            (status)
            @if failures > 0 { " (" (failures) " failed in a row)" }
        }
    }
}
