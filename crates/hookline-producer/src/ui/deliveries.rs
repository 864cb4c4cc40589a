//! A delivery: its payload, every attempt (with a link to its trace when
//! `HOOKLINE_GRAFANA_TRACE_URL` is set), and "retry now".

use axum::response::Redirect;
use hookline_core::DeliveryId;
use maud::{Markup, html};

use super::{
    St,
    error::{OrPage, PortalError},
    extract::{CsrfForm, Id, Nothing},
    layout::{page, table, when},
    session::Session,
};
use crate::ops::{self, deliveries::Detail};

/// `GET /ui/deliveries/{id}`: the payload and every attempt.
pub(super) async fn show(state: St, session: Session, Id(id): Id<DeliveryId>) -> Result<Markup, PortalError> {
    let Detail { delivery, body, attempts } =
        ops::deliveries::get(&state, &session.caller, id).await.or_page(&session)?;
    let payload = String::from_utf8_lossy(&body);
    let pretty = serde_json::from_str::<serde_json::Value>(&payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.into_owned());
    let trace_base = state.grafana_trace_url.as_deref();
    let body = html! {
        p {
            "Event " code { (delivery.event_type) } " (" (delivery.event_id.as_str()) ") to "
            a href={ "/ui/webhooks/" (delivery.webhook_id) } { "its webhook" }
            " · state " strong { (delivery.state.as_str()) } " · created " (when(Some(delivery.created_at)))
        }
        form method="post" action={ "/ui/deliveries/" (delivery.id) "/retry" } { (session.csrf_field()) button { "Retry now" } }
        h2 { "Payload" }
        pre { (pretty) }
        h2 { "Attempts" }
        (table(&["#", "Trigger", "Sent", "Received", "Duration", "Result", "Retry reason", "Next attempt", "Response", "Trace"], html! {
            @for a in &attempts {
                tr {
                    td data-label="#" { (a.attempt_no) }
                    td data-label="Trigger" { (a.trigger) }
                    td data-label="Sent" { (when(Some(a.sent_at))) }
                    td data-label="Received" { (when(a.received_at)) }
                    td data-label="Duration" { (a.duration_ms) " ms" }
                    td data-label="Result" {
                        @match (a.status_code, &a.error_kind) {
                            (Some(code), _) => { "HTTP " (code) }
                            (None, Some(kind)) => { (kind) ": " (a.error_message.as_deref().unwrap_or("")) }
                            (None, None) => { "—" }
                        }
                    }
                    td data-label="Retry reason" { (a.retry_reason.as_deref().unwrap_or("—")) }
                    td data-label="Next attempt" { (when(a.next_attempt_at)) }
                    td data-label="Response" { pre { (a.response_excerpt.as_deref().unwrap_or("")) } }
                    td.long data-label="Trace" {
                        @match (&a.trace_id, trace_base) {
                            (Some(t), Some(base)) => { a href={ (base) (t) } { (t) } }
                            (Some(t), None) => { (t) }
                            (None, _) => { "—" }
                        }
                    }
                }
            }
        }))
    };
    Ok(page("Delivery", Some(&session), body))
}

/// `POST /ui/deliveries/{id}/retry`: one attempt now; back to the delivery.
pub(super) async fn retry(
    state: St,
    Id(id): Id<DeliveryId>,
    posted: CsrfForm<Nothing>,
) -> Result<Redirect, PortalError> {
    let session = posted.session;
    ops::deliveries::retry(&state, &session.caller, id).await.or_page(&session)?;
    Ok(Redirect::to(&format!("/ui/deliveries/{id}")))
}
