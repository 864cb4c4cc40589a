//! What every portal page shares: the page frame with its style sheet, and
//! small pieces (tables, times, health badges).

use maud::{DOCTYPE, Markup, PreEscaped, html};
use time::{OffsetDateTime, UtcOffset};

use super::session::Session;

/// No word breaks inside itself: headers, badges and times keep to one line
/// (`nowrap`); only what has no spaces to break at (URLs, ids, payloads:
/// `.long`, `code`, `pre`) may break anywhere. A table wider than the
/// screen scrolls inside its `.scroll` box instead of squeezing its words.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#111}header{background:#1f2937;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}header a{color:#fff}main{padding:1rem;max-width:72rem}h1,p,li{overflow-wrap:break-word}.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35rem;text-align:left;vertical-align:top}th,.badge,time{white-space:nowrap}.long,code,pre{overflow-wrap:anywhere}.badge{padding:.1rem .4rem;border-radius:.3rem;border:1px solid;display:inline-block}.healthy{background:#dcfce7}.unhealthy{background:#fef9c3}.suspended{background:#fee2e2}.error{color:#b91c1c}label{display:block;margin-top:.7rem;font-weight:600}input[type=text],input[type=url],input[type=password],input[type=number],textarea,select{width:100%;max-width:40rem;padding:.3rem;box-sizing:border-box}form.inline{display:inline}button{margin:.3rem .3rem .3rem 0;padding:.3rem .7rem}pre{white-space:pre-wrap;background:#f3f4f6;padding:.5rem}fieldset{border:1px solid #ddd;margin:.9rem 0;padding:.2rem .7rem .6rem;max-width:60rem}legend{font-weight:600}fieldset td input[type=text]{max-width:none}.chart{margin:0 0 .5rem}.chart svg{display:block;width:100%;min-width:22rem;max-width:46rem;height:auto}.legend,.note{font-size:.9rem}.swatch{display:inline-block;width:.8em;height:.8em;vertical-align:-.05em}.swatch.delivered{background:#2563eb}.swatch.failed{background:#ea580c}@media(max-width:40rem){table,tbody,tr,td{display:block}thead{display:none}tr{border-bottom:1px solid #ddd;padding:.4rem 0}td{border:none;padding:.1rem 0}td::before{content:attr(data-label) \": \";font-weight:600;white-space:nowrap}}";

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

/// A table in a box that scrolls sideways when the table is wider than
/// the screen.
pub(super) fn table(head: &[&str], rows: Markup) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr { @for h in head { th { (h) } } } }
                tbody { (rows) }
            }
        }
    }
}

/// A time as `2026-11-25 03:11:54 UTC · 3 min ago` (how long ago, or
/// ahead, as of now); a dash for none.
pub(super) fn when(at: Option<OffsetDateTime>) -> Markup {
    match at {
        Some(at) => when_at(at, OffsetDateTime::now_utc()),
        None => html! { "—" },
    }
}

fn when_at(at: OffsetDateTime, now: OffsetDateTime) -> Markup {
    html! { time datetime=(hookline_core::format_timestamp(at)) { (stamp(at)) } " · " (relative(at, now)) }
}

/// `2026-11-25 03:11:54 UTC`.
fn stamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// `3 min ago`, `in 2 h`, `just now` (within a minute before `now`).
fn relative(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let ago = (now - at).whole_seconds();
    match ago {
        i64::MIN..=-1 => format!("in {}", human(ago.saturating_neg())),
        0..=59 => "just now".to_owned(),
        _ => format!("{} ago", human(ago)),
    }
}

fn human(seconds: i64) -> String {
    match seconds {
        i64::MIN..=59 => format!("{seconds} s"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Times read `date time UTC · how long ago`, whatever their offset.
    #[test]
    fn times_read_as_utc_with_how_long_ago() {
        let at = hookline_core::parse_timestamp("2026-11-25T04:11:54+01:00").expect("valid");
        let minutes = |m: i64| at + time::Duration::minutes(m);
        let shown = |now| when_at(at, now).into_string();
        assert_eq!(
            shown(minutes(3)),
            "<time datetime=\"2026-11-25T03:11:54Z\">2026-11-25 03:11:54 UTC</time> · 3 min ago"
        );
        assert!(shown(at + time::Duration::seconds(20)).ends_with("UTC</time> · just now"));
        assert!(shown(minutes(-120)).ends_with("· in 2 h"));
        assert!(shown(minutes(3 * 24 * 60)).ends_with("· 3 d ago"));
        assert_eq!(when(None).into_string(), "—");
    }
}
