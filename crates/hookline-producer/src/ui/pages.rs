//! The portal's pages: the webhook list, the add/edit form, a webhook's
//! event log and actions, and a delivery with every attempt.

use std::sync::Arc;

use axum::{
    Form, Router,
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use hookline_core::{DeliveryId, DeliveryState, format_timestamp};
use hookline_store::{DeliveryFilter, Webhook};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{Session, page};
use crate::{
    ApiError,
    routes::{
        AppState,
        deliveries::{delivery_id, retry_delivery},
        webhooks::{
            CreateWebhook, UpdateWebhook, create_webhook, recover_webhook, rotate_webhook_token, update_webhook,
            webhook_id,
        },
    },
};

type St = State<Arc<AppState>>;

pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui/webhooks", get(list).post(create))
        .route("/ui/webhooks/new", get(new_form))
        .route("/ui/webhooks/{id}", get(show).post(update))
        .route("/ui/webhooks/{id}/edit", get(edit_form))
        .route("/ui/webhooks/{id}/resume", post(resume))
        .route("/ui/webhooks/{id}/delete", post(delete))
        .route("/ui/webhooks/{id}/test", post(send_test))
        .route("/ui/webhooks/{id}/rotate", post(rotate))
        .route("/ui/webhooks/{id}/recover", post(recover))
        .route("/ui/deliveries/{id}", get(delivery))
        .route("/ui/deliveries/{id}/retry", post(retry))
}

/// A page for an error (not found, or a failure).
fn problem(session: &Session, e: &ApiError) -> Response {
    let status =
        if e.code() == "not_found" { axum::http::StatusCode::NOT_FOUND } else { axum::http::StatusCode::BAD_REQUEST };
    let body = html! {
        p.error role="alert" { (e.detail()) }
        p { a href="/ui/webhooks" { "Back to webhooks" } }
    };
    (status, page("Not possible", Some(session), body)).into_response()
}

fn when(at: Option<OffsetDateTime>) -> Markup {
    let Some(at) = at else { return html! { "—" } };
    let ago = (OffsetDateTime::now_utc() - at).whole_seconds();
    let hint = match ago {
        i64::MIN..=-1 => format!("in {}", human(-ago)),
        0..=59 => "just now".to_owned(),
        _ => format!("{} ago", human(ago)),
    };
    let stamp = format_timestamp(at);
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

fn badge(status: &str, failures: i32) -> Markup {
    html! {
        span class={ "badge " (status) } {
            (status)
            @if failures > 0 { " (" (failures) " failed in a row)" }
        }
    }
}

/// `GET /ui/webhooks`.
async fn list(state: St, session: Session) -> Response {
    let tenant = session.caller.scope().cloned();
    let webhooks = match state.store.list_webhooks(tenant.as_ref(), None, 100).await {
        Ok(w) => w,
        Err(e) => return problem(&session, &ApiError::internal(&e)),
    };
    let body = html! {
        p { a href="/ui/webhooks/new" { "Add a webhook" } }
        @if webhooks.is_empty() {
            p { "No webhooks yet." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "URL" } th { "Events" } th { "Active" } th { "Status" } th { "Last success" } th { "Last failure" } } }
                tbody {
                    @for w in &webhooks {
                        tr {
                            td data-label="Name" { a href={ "/ui/webhooks/" (w.id) } { (w.name.as_str()) } }
                            td data-label="URL" { (w.url.as_str()) }
                            td data-label="Events" { (w.events.as_strings().join(", ")) }
                            td data-label="Active" { @if w.active { "active" } @else { "inactive" } }
                            td data-label="Status" { (badge(w.status.as_str(), w.consecutive_failures)) }
                            td data-label="Last success" { (when(w.last_success_at)) }
                            td data-label="Last failure" { (when(w.last_failure_at)) }
                        }
                    }
                }
            }
        }
    };
    page("Webhooks", Some(&session), body).into_response()
}

/// What the form shows: values and the error beside a field.
#[derive(Debug, Default)]
struct FormView {
    name: String,
    url: String,
    events: String,
    active: bool,
    scheme: String,
    error: Option<(String, String)>,
}

fn field_error(view: &FormView, field: &str) -> Markup {
    html! {
        @if let Some((f, detail)) = &view.error {
            @if f == field { p.error id={ (field) "-error" } role="alert" { (detail) } }
        }
    }
}

/// Fills the token field with a fresh `whsec_` secret (32 random bytes);
/// without JavaScript, an empty field has the server generate one.
const GENERATE_SCRIPT: &str = "function hooklineGenerate(){const b=new Uint8Array(32);crypto.getRandomValues(b);document.getElementById('token').value='whsec_'+btoa(String.fromCharCode(...b));}";

fn form_html(session: &Session, action: &str, view: &FormView, creating: bool, seen: &[String]) -> Markup {
    let general = match &view.error {
        Some((f, detail)) if !["name", "url", "token", "events", "signatureScheme"].contains(&f.as_str()) => {
            Some(detail)
        }
        _ => None,
    };
    let token_help = if creating {
        "Leave empty to generate one (shown once after saving)."
    } else {
        "Leave empty to keep the current token."
    };
    html! {
        @if let Some(detail) = general { p.error role="alert" { (detail) } }
        form method="post" action=(action) {
            (session.csrf_field())
            label for="name" { "Name" }
            input type="text" id="name" name="name" value=(view.name) required;
            (field_error(view, "name"))
            label for="url" { "URL" }
            input type="url" id="url" name="url" value=(view.url) required;
            (field_error(view, "url"))
            label for="token" { "Token" }
            input type="text" id="token" name="token" autocomplete="off";
            button type="button" onclick="hooklineGenerate()" { "Generate" }
            small { (token_help) }
            (field_error(view, "token"))
            label for="events" { "Events" }
            input type="text" id="events" name="events" value=(view.events) list="seen-events" placeholder="license.created, license.*" required;
            datalist id="seen-events" { @for t in seen { option value=(t) {} } }
            small { "Comma-separated event types or patterns; " code { "*" } " is every event." }
            (field_error(view, "events"))
            label { input type="checkbox" name="active" value="on" checked[view.active]; " Active" }
            label for="scheme" { "Signature scheme" }
            select id="scheme" name="scheme" {
                option value="hookline" selected[view.scheme == "hookline"] { "Hookline (Webhook-Signature)" }
                option value="standard-webhooks" selected[view.scheme == "standard-webhooks"] { "Standard Webhooks" }
            }
            (field_error(view, "signatureScheme"))
            p { button { "Save" } " " a href="/ui/webhooks" { "Cancel" } }
        }
        script { (PreEscaped(GENERATE_SCRIPT)) }
    }
}

/// Event types seen lately, for the form's suggestions (none on failure).
async fn seen(state: &AppState, session: &Session) -> Vec<String> {
    state.store.recent_event_types(session.caller.scope()).await.unwrap_or_default()
}

/// `GET /ui/webhooks/new`.
async fn new_form(state: St, session: Session) -> Markup {
    let view = FormView { active: true, scheme: "hookline".to_owned(), ..FormView::default() };
    let seen = seen(&state, &session).await;
    page("Add a webhook", Some(&session), form_html(&session, "/ui/webhooks", &view, true, &seen))
}

#[derive(Debug, Deserialize)]
struct WebhookForm {
    csrf: String,
    name: String,
    url: String,
    #[serde(default)]
    token: String,
    events: String,
    active: Option<String>,
    #[serde(default)]
    scheme: String,
}

impl WebhookForm {
    fn events(&self) -> Vec<String> {
        self.events.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect()
    }

    fn view(&self, error: &ApiError) -> FormView {
        FormView {
            name: self.name.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            active: self.active.is_some(),
            scheme: self.scheme.clone(),
            error: Some((error.field().unwrap_or("").to_owned(), error.detail().to_owned())),
        }
    }
}

fn nonempty(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// `POST /ui/webhooks`.
async fn create(state: St, session: Session, Form(form): Form<WebhookForm>) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let body = CreateWebhook {
        name: form.name.clone(),
        url: form.url.clone(),
        token: nonempty(&form.token),
        events: form.events(),
        active: form.active.is_some(),
        tenant: None,
        signature_scheme: nonempty(&form.scheme),
    };
    match create_webhook(&state, &session.caller, body).await {
        Ok((webhook, generated)) => {
            if generated {
                let link = format!("/ui/webhooks/{}", webhook.id);
                let body = html! {
                    p { "Webhook " a href=(link) { (webhook.name.as_str()) } " created. Its signing token, shown this once:" }
                    pre id="token" { (webhook.token.expose()) }
                    p { "Store it with your receiver; it is masked from now on." }
                    p { a href=(link) { "Continue" } }
                };
                page("Webhook created", Some(&session), body).into_response()
            } else {
                Redirect::to(&format!("/ui/webhooks/{}", webhook.id)).into_response()
            }
        }
        Err(e) => (
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            page("Add a webhook", Some(&session), form_html(&session, "/ui/webhooks", &form.view(&e), true, &[])),
        )
            .into_response(),
    }
}

async fn load(state: &AppState, session: &Session, id: &str) -> Result<Webhook, ApiError> {
    state
        .store
        .get_webhook(webhook_id(id)?, session.caller.scope())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// `GET /ui/webhooks/{id}/edit`.
async fn edit_form(state: St, session: Session, Path(id): Path<String>) -> Response {
    let webhook = match load(&state, &session, &id).await {
        Ok(w) => w,
        Err(e) => return problem(&session, &e),
    };
    let view = FormView {
        name: webhook.name.as_str().to_owned(),
        url: webhook.url.as_str().to_owned(),
        events: webhook.events.as_strings().join(", "),
        active: webhook.active,
        scheme: webhook.scheme.as_str().to_owned(),
        error: None,
    };
    let seen = seen(&state, &session).await;
    let action = format!("/ui/webhooks/{}", webhook.id);
    page("Edit webhook", Some(&session), form_html(&session, &action, &view, false, &seen)).into_response()
}

/// `POST /ui/webhooks/{id}`: the edit form.
async fn update(state: St, session: Session, Path(id): Path<String>, Form(form): Form<WebhookForm>) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let id = match webhook_id(&id) {
        Ok(id) => id,
        Err(e) => return problem(&session, &e),
    };
    let body = UpdateWebhook {
        name: Some(form.name.clone()),
        url: Some(form.url.clone()),
        token: nonempty(&form.token),
        events: Some(form.events()),
        active: Some(form.active.is_some()),
        signature_scheme: nonempty(&form.scheme),
    };
    match update_webhook(&state, &session.caller, id, body).await {
        Ok(webhook) => Redirect::to(&format!("/ui/webhooks/{}", webhook.id)).into_response(),
        Err(e) if e.code() == "not_found" => problem(&session, &e),
        Err(e) => (
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            page(
                "Edit webhook",
                Some(&session),
                form_html(&session, &format!("/ui/webhooks/{id}"), &form.view(&e), false, &[]),
            ),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    state: Option<String>,
    event: Option<String>,
    cursor: Option<String>,
}

/// `GET /ui/webhooks/{id}`: the webhook, its actions and its event log.
async fn show(state: St, session: Session, Path(id): Path<String>, Query(q): Query<LogQuery>) -> Response {
    let webhook = match load(&state, &session, &id).await {
        Ok(w) => w,
        Err(e) => return problem(&session, &e),
    };
    let filter = DeliveryFilter {
        webhook: Some(webhook.id),
        state: q.state.as_deref().filter(|s| !s.is_empty()).and_then(|s| DeliveryState::parse(s).ok()),
        event_type: q.event.clone().filter(|e| !e.is_empty()),
        ..DeliveryFilter::default()
    };
    let cursor = q.cursor.as_deref().and_then(|c| c.parse::<DeliveryId>().ok());
    let limit = 50;
    let deliveries = match state.store.list_deliveries(&filter, cursor, limit).await {
        Ok(d) => d,
        Err(e) => return problem(&session, &ApiError::internal(&e)),
    };
    let full = i64::try_from(deliveries.len()).unwrap_or(0) == limit;
    let state_filter = q.state.as_deref().unwrap_or("");
    let event_filter = q.event.as_deref().unwrap_or("");
    let id = webhook.id;
    let base = format!("/ui/webhooks/{id}");
    let body = html! {
        p { (badge(webhook.status.as_str(), webhook.consecutive_failures)) " · " @if webhook.active { "active" } @else { "inactive" } " · " code { (webhook.url.as_str()) } }
        p { "Events: " (webhook.events.as_strings().join(", ")) " · Token " code { (webhook.token.masked()) } " · Scheme " (webhook.scheme.as_str()) }
        p { a href={ (base) "/edit" } { "Edit" } }
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
        table {
            thead { tr { th { "Created (UTC)" } th { "Event" } th { "State" } th { "Attempts" } th { "Next attempt" } } }
            tbody {
                @for d in &deliveries {
                    tr {
                        td data-label="Created" { a href={ "/ui/deliveries/" (d.id) } { (format_timestamp(d.created_at)) } }
                        td data-label="Event" { (d.event_type) }
                        td data-label="State" { (d.state.as_str()) }
                        td data-label="Attempts" { (d.attempt_count) }
                        td data-label="Next attempt" { (when(d.next_attempt_at)) }
                    }
                }
            }
        }
        @if full {
            @if let Some(last) = deliveries.last() {
                p { a href={ "?state=" (state_filter) "&event=" (event_filter) "&cursor=" (last.id) } { "Older" } }
            }
        }
    };
    page(webhook.name.as_str(), Some(&session), body).into_response()
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    csrf: String,
    confirm: Option<String>,
}

/// `POST /ui/webhooks/{id}/resume`.
async fn resume(state: St, session: Session, Path(id): Path<String>, Form(form): Form<ActionForm>) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let webhook = match webhook_id(&id) {
        Ok(id) => id,
        Err(e) => return problem(&session, &e),
    };
    match state.store.resume_webhook(webhook, session.caller.scope(), OffsetDateTime::now_utc()).await {
        Ok(Some(_)) => Redirect::to(&format!("/ui/webhooks/{webhook}")).into_response(),
        Ok(None) => problem(&session, &ApiError::not_found("webhook")),
        Err(e) => problem(&session, &ApiError::internal(&e)),
    }
}

/// `POST /ui/webhooks/{id}/delete` (the form asks for confirmation).
async fn delete(state: St, session: Session, Path(id): Path<String>, Form(form): Form<ActionForm>) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let webhook = match webhook_id(&id) {
        Ok(id) => id,
        Err(e) => return problem(&session, &e),
    };
    if form.confirm.as_deref() != Some("yes") {
        return problem(&session, &ApiError::invalid_field("confirm", "tick the box to confirm the deletion"));
    }
    match state.store.delete_webhook(webhook, session.caller.scope()).await {
        Ok(true) => Redirect::to("/ui/webhooks").into_response(),
        Ok(false) => problem(&session, &ApiError::not_found("webhook")),
        Err(e) => problem(&session, &ApiError::internal(&e)),
    }
}

/// `GET /ui/deliveries/{id}`: the payload and every attempt.
async fn delivery(state: St, session: Session, Path(id): Path<String>) -> Response {
    let delivery_id = match delivery_id(&id) {
        Ok(id) => id,
        Err(e) => return problem(&session, &e),
    };
    let (delivery, body, attempts) = match state.store.get_delivery(delivery_id, session.caller.scope()).await {
        Ok(Some(found)) => found,
        Ok(None) => return problem(&session, &ApiError::not_found("delivery")),
        Err(e) => return problem(&session, &ApiError::internal(&e)),
    };
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
        table {
            thead { tr { th { "#" } th { "Trigger" } th { "Sent (UTC)" } th { "Received" } th { "Duration" } th { "Result" } th { "Retry reason" } th { "Next attempt" } th { "Response" } th { "Trace" } } }
            tbody {
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
                        td data-label="Trace" {
                            @match (&a.trace_id, trace_base) {
                                (Some(t), Some(base)) => { a href={ (base) (t) } { (t) } }
                                (Some(t), None) => { (t) }
                                (None, _) => { "—" }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Delivery", Some(&session), body).into_response()
}

/// `POST /ui/deliveries/{id}/retry`.
async fn retry(state: St, session: Session, Path(id): Path<String>, Form(form): Form<ActionForm>) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let delivery = match delivery_id(&id) {
        Ok(id) => id,
        Err(e) => return problem(&session, &e),
    };
    match retry_delivery(&state, &session.caller, delivery).await {
        Ok(()) => Redirect::to(&format!("/ui/deliveries/{delivery}")).into_response(),
        Err(e) => problem(&session, &e),
    }
}

/// `POST /ui/webhooks/{id}/test`: one `hookline.test` event to this webhook
/// only, attempted at once whatever its health (a success makes it healthy).
async fn send_test(state: St, session: Session, Path(id): Path<String>, Form(form): Form<ActionForm>) -> Response {
    use hookline_broker::DeliveryMessage;
    use hookline_core::{Event, EventId, EventType};
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let webhook = match webhook_id(&id) {
        Ok(id) => id,
        Err(e) => return problem(&session, &e),
    };
    let now = OffsetDateTime::now_utc();
    let event_type = EventType::parse("hookline.test").expect("a valid event type");
    let data = serde_json::json!({"test": true, "webhookId": webhook.to_string(), "message": "A test event sent from the Hookline portal."});
    let body = Event::new(event_type.clone(), data, now).to_body();
    let event_id = EventId::generate(uuid::Uuid::now_v7());
    let created = state
        .store
        .create_test_delivery(webhook, session.caller.scope(), &event_id, event_type.as_str(), &body, now)
        .await;
    let delivery = match created {
        Ok(Some(d)) => d,
        Ok(None) => return problem(&session, &ApiError::not_found("webhook")),
        Err(e) => return problem(&session, &ApiError::internal(&e)),
    };
    // The delivery is recorded with its due time: if this publish fails,
    // reconciliation publishes it.
    let message = DeliveryMessage::due(
        delivery.id.as_uuid(),
        webhook.as_uuid(),
        hookline_core::fence::unix_ms(delivery.at),
        delivery.trigger,
    );
    let published = match state.publisher() {
        Ok(publisher) => publisher.publish_now(&message).await.is_ok(),
        Err(_) => false,
    };
    if !published {
        tracing::warn!(delivery_id = %delivery.id, "publishing a test send failed; reconciliation will send it");
    }
    Redirect::to(&format!("/ui/deliveries/{}", delivery.id)).into_response()
}

#[derive(Debug, Deserialize)]
struct RotateForm {
    csrf: String,
    grace_hours: String,
}

/// `POST /ui/webhooks/{id}/rotate`: a generated token, shown once.
async fn rotate(state: St, session: Session, Path(id): Path<String>, Form(form): Form<RotateForm>) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let webhook = match webhook_id(&id) {
        Ok(id) => id,
        Err(e) => return problem(&session, &e),
    };
    let Ok(hours) = form.grace_hours.trim().parse::<i64>() else {
        return problem(&session, &ApiError::invalid_field("grace", "must be a whole number of hours"));
    };
    match rotate_webhook_token(&state, &session.caller, webhook, None, Some(hours.saturating_mul(3600))).await {
        Ok((webhook, _)) => {
            let body = html! {
                p { "The new signing token of " a href={ "/ui/webhooks/" (webhook.id) } { (webhook.name.as_str()) } ", shown this once:" }
                pre id="token" { (webhook.token.expose()) }
                p { "The old one keeps signing beside it for " (hours) " h." }
            };
            page("Token rotated", Some(&session), body).into_response()
        }
        Err(e) => problem(&session, &e),
    }
}

#[derive(Debug, Deserialize)]
struct RecoverForm {
    csrf: String,
    since: String,
    #[serde(default)]
    until: String,
    /// Absent: count only; `yes`: queue them.
    confirm: Option<String>,
}

/// `POST /ui/webhooks/{id}/recover`: first counts (a dry run) and asks to
/// confirm, then queues.
async fn recover(state: St, session: Session, Path(id): Path<String>, Form(form): Form<RecoverForm>) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let webhook = match webhook_id(&id) {
        Ok(id) => id,
        Err(e) => return problem(&session, &e),
    };
    let until = nonempty(&form.until);
    let queue = form.confirm.as_deref() == Some("yes");
    match recover_webhook(&state, &session.caller, webhook, form.since.trim(), until.as_deref(), !queue).await {
        Ok(r) if !queue => {
            let body = html! {
                p { (r.count) " failed or suspended deliveries were created in that window." }
                form method="post" action={ "/ui/webhooks/" (webhook) "/recover" } {
                    (session.csrf_field())
                    input type="hidden" name="since" value=(form.since.trim());
                    input type="hidden" name="until" value=(until.as_deref().unwrap_or(""));
                    input type="hidden" name="confirm" value="yes";
                    button { "Replay them" } " " a href={ "/ui/webhooks/" (webhook) } { "Cancel" }
                }
            };
            page("Recover", Some(&session), body).into_response()
        }
        Ok(r) => {
            let body = html! {
                p { (r.queued) " deliveries queued; the last is attempted at about " (r.finishes_at.as_deref().unwrap_or("now")) "." }
                p { a href={ "/ui/webhooks/" (webhook) } { "Back to the webhook" } }
            };
            page("Recover", Some(&session), body).into_response()
        }
        Err(e) => problem(&session, &e),
    }
}
