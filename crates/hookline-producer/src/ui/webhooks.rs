//! The webhook list, and one webhook's page: its settings, its actions
//! (forms posting to `actions`) and its event log.

use axum::extract::Query;
use hookline_core::{DeliveryId, DeliveryState, WebhookId};
use hookline_store::DeliveryFilter;
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    St,
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
    let deliveries =
        ops::deliveries::list(&state, &session.caller, filter, cursor, LOG_PAGE).await.or_page(&session)?;
    let full = i64::try_from(deliveries.len()).is_ok_and(|n| n == LOG_PAGE);
    let state_filter = q.state.as_deref().unwrap_or("");
    let event_filter = q.event.as_deref().unwrap_or("");
    let base = format!("/ui/webhooks/{id}");
    let body = html! {
        p { (badge(webhook.status.as_str(), webhook.consecutive_failures)) " · " @if webhook.active { "active" } @else { "inactive" } " · " code { (webhook.url.as_str()) } }
        p { "Events: " (webhook.events.as_strings().join(", ")) " · Token " code { (webhook.token.masked()) } " · Scheme " (webhook.scheme.as_str()) }
        p { a href={ (base) "/edit" } { "Edit" } }
        (actions(&session, &base))
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
