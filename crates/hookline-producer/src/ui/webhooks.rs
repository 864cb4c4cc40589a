//! The webhook list, and one webhook's page: its settings, its actions
//! (forms posting to `actions`), its attempts per hour over the last day
//! (`chart`), its recent health changes and its event log.

use axum::extract::Query;
use hookline_core::{CustomHeaders, DeliveryId, DeliveryState, Recovery, WebhookId};
use hookline_store::{DeliveryFilter, HealthChange};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    St, chart,
    error::{OrPage, PortalError},
    extract::Id,
    layout::{badge, page, table, when},
    session::Session,
};
use crate::ops;

/// `GET /ui/webhooks`.
pub(super) async fn list(state: St, session: Session) -> Result<Markup, PortalError> {
    let webhooks = ops::webhooks::list(&state, &session.caller, None, None, 100).await.or_page(&session)?;
    let body = html! {
        p { a href="/ui/webhooks/new" { "Add a webhook" } }
        @if webhooks.is_empty() {
            p { "No webhooks yet." }
        } @else {
            (table(&["Name", "URL", "Events", "Active", "Status", "Last success", "Last failure"], html! {
                @for w in &webhooks {
                    tr {
                        td data-label="Name" { a href={ "/ui/webhooks/" (w.id) } { (w.name.as_str()) } }
                        td.long data-label="URL" { (w.url.as_str()) }
                        td data-label="Events" { (w.events.as_strings().join(", ")) }
                        td data-label="Active" { @if w.active { "active" } @else { "inactive" } }
                        td data-label="Status" { (badge(w.status.as_str(), w.consecutive_failures)) }
                        td data-label="Last success" { (when(w.last_success_at)) }
                        td data-label="Last failure" { (when(w.last_failure_at)) }
                    }
                }
            }))
        }
    };
    Ok(page("Webhooks", Some(&session), body))
}

/// The event log's filters (lenient: a filter that does not parse is none).
#[derive(Debug, Deserialize)]
pub(super) struct LogQuery {
    state: Option<String>,
    event: Option<String>,
    cursor: Option<String>,
}

/// Deliveries per page of the event log.
const LOG_PAGE: i64 = 50;

/// Health changes a webhook's page shows, the latest.
const CHANGES: i64 = 10;

/// `GET /ui/webhooks/{id}`: the webhook, its actions and its event log.
pub(super) async fn show(
    state: St,
    session: Session,
    Id(id): Id<WebhookId>,
    Query(q): Query<LogQuery>,
) -> Result<Markup, PortalError> {
    let webhook = ops::webhooks::get(&state, &session.caller, id).await.or_page(&session)?;
    let filter = DeliveryFilter {
        webhook: Some(webhook.id),
        state: q.state.as_deref().filter(|s| !s.is_empty()).and_then(|s| DeliveryState::parse(s).ok()),
        event_type: q.event.clone().filter(|e| !e.is_empty()),
        ..DeliveryFilter::default()
    };
    let cursor = q.cursor.as_deref().and_then(|c| c.parse::<DeliveryId>().ok());
    let caller = &session.caller;
    let (deliveries, changes, hourly) = tokio::join!(
        ops::deliveries::list(&state, caller, filter, cursor, LOG_PAGE),
        ops::webhooks::health_changes(&state, caller, id, CHANGES),
        ops::webhooks::hourly_attempts(&state, caller, &webhook),
    );
    let deliveries = deliveries.or_page(&session)?;
    let changes = changes.or_page(&session)?;
    let hourly = hourly.or_page(&session)?;
    let full = i64::try_from(deliveries.len()).is_ok_and(|n| n == LOG_PAGE);
    let state_filter = q.state.as_deref().unwrap_or("");
    let event_filter = q.event.as_deref().unwrap_or("");
    let base = format!("/ui/webhooks/{id}");
    let body = html! {
        p { (badge(webhook.status.as_str(), webhook.consecutive_failures)) " · " @if webhook.active { "active" } @else { "inactive" } " · " code { (webhook.url.as_str()) } }
        p { "Events: " (webhook.events.as_strings().join(", ")) " · Token " code { (webhook.token.masked()) } " · Scheme " (webhook.scheme.as_str()) }
        p {
            "Rate limit: " @match webhook.rate_limit { Some(r) => { (r.per_second()) " requests/s" }, None => { "none" } }
            " · While suspended: " (recovery(webhook.recovery))
        }
        (headers(&webhook.headers))
        p { a href={ (base) "/edit" } { "Edit" } }
        (actions(&session, &base))
        h2 { "Last 24 hours" }
        (chart::hourly(&hourly))
        h2 { "Health changes" }
        (health_changes(&changes))
        h2 { "Event log" }
        form method="get" {
            select name="state" aria-label="State" {
                @for st in ["", "pending", "retrying", "delivered", "failed", "suspended", "skipped"] {
                    option value=(st) selected[state_filter == st] { @if st.is_empty() { "any state" } @else { (st) } }
                }
            }
            " "
            input type="text" name="event" placeholder="event type" value=(event_filter) aria-label="Event type" style="max-width:15rem";
            " "
            button { "Filter" }
        }
        (table(&["Created", "Event", "State", "Attempts", "Next attempt"], html! {
            @for d in &deliveries {
                tr {
                    td data-label="Created" { a href={ "/ui/deliveries/" (d.id) } { (when(Some(d.created_at))) } }
                    td data-label="Event" { (d.event_type) }
                    td data-label="State" { (d.state.as_str()) }
                    td data-label="Attempts" { (d.attempt_count) }
                    td data-label="Next attempt" { (when(d.next_attempt_at)) }
                }
            }
        }))
        @if full {
            @if let Some(last) = deliveries.last() {
                p { a href={ "?state=" (state_filter) "&event=" (event_filter) "&cursor=" (last.id) } { "Older" } }
            }
        }
    };
    Ok(page(webhook.name.as_str(), Some(&session), body))
}

/// What a webhook does on its own while suspended.
fn recovery(r: Recovery) -> &'static str {
    match (r.probe(), r.replay()) {
        (true, true) => "probes, and replays what was held on resuming",
        (true, false) => "probes, resumes on a 2xx",
        (false, true) => "no probes (replay needs them)",
        (false, false) => "no probes",
    }
}

/// The extra request headers, secret values as `****`.
fn headers(headers: &CustomHeaders) -> Markup {
    html! {
        @if headers.is_empty() {
            p { "Extra headers: none" }
        } @else {
            (table(&["Extra header", "Value"], html! {
                @for h in headers.iter() {
                    tr {
                        td data-label="Extra header" { code { (h.name.as_str()) } }
                        td.long data-label="Value" { code { (h.shown()) } @if h.secret { " (secret)" } }
                    }
                }
            }))
        }
    }
}

/// The latest health changes, newest first.
fn health_changes(changes: &[HealthChange]) -> Markup {
    html! {
        @if changes.is_empty() {
            p { "None yet. A change is recorded when the webhook becomes unhealthy, is suspended, recovers or is disabled." }
        } @else {
            (table(&["When", "Change", "Status", "Reason"], html! {
                @for c in changes {
                    tr {
                        td data-label="When" { (when(Some(c.at))) }
                        td data-label="Change" { (c.kind.as_str()) }
                        td data-label="Status" { (badge(c.from.as_str(), 0)) " → " (badge(c.to.as_str(), 0)) }
                        td data-label="Reason" { (c.reason.as_deref().unwrap_or("—")) }
                    }
                }
            }))
        }
    }
}

/// The forms of a webhook's page that act on it (see `actions`).
fn actions(session: &Session, base: &str) -> Markup {
    html! {
        form.inline method="post" action={ (base) "/test" } { (session.csrf_field()) button { "Send a test event" } }
        form.inline method="post" action={ (base) "/resume" } { (session.csrf_field()) button { "Resume" } }
        details {
            summary { "Rotate the token" }
            form method="post" action={ (base) "/rotate" } {
                (session.csrf_field())
                label for="grace" { "Old token keeps signing for (hours, 0–168)" }
                input type="text" id="grace" name="grace_hours" value="24" inputmode="numeric";
                button { "Rotate" }
            }
        }
        details {
            summary { "Recover failed and suspended deliveries" }
            form method="post" action={ (base) "/recover" } {
                (session.csrf_field())
                label for="since" { "Created since (RFC 3339, UTC)" }
                input type="text" id="since" name="since" placeholder="2026-11-24T00:00:00Z" required;
                label for="until" { "Until (empty: now)" }
                input type="text" id="until" name="until";
                button { "Count them" }
            }
        }
        form.inline method="post" action={ (base) "/delete" } onsubmit="return confirm('Delete this webhook and its event log?')" {
            (session.csrf_field())
            label { input type="checkbox" name="confirm" value="yes" required; " I mean it" }
            button { "Delete" }
        }
    }
}
