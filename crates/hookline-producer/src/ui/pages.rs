//! The portal's pages: the webhook list, the add/edit form, a webhook's
//! event log and actions, and a delivery with every attempt.

use std::sync::Arc;

use axum::{
    Form, Router,
    extract::{Path, Query, State},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use hookline_core::{DeliveryId, DeliveryState, WebhookId, format_timestamp};
use hookline_store::{DeliveryFilter, Webhook};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{Session, esc, page};
use crate::{
    ApiError,
    routes::{
        AppState,
        deliveries::retry_delivery,
        webhooks::{
            CreateWebhook, UpdateWebhook, create_webhook, recover_webhook, rotate_webhook_token, update_webhook,
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
    (
        status,
        page(
            "Not possible",
            Some(session),
            &format!(
                "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/ui/webhooks\">Back to webhooks</a></p>",
                esc(e.detail())
            ),
        ),
    )
        .into_response()
}

fn when(at: Option<OffsetDateTime>) -> String {
    let Some(at) = at else { return "—".to_owned() };
    let ago = (OffsetDateTime::now_utc() - at).whole_seconds();
    let hint = match ago {
        i64::MIN..=-1 => format!("in {}", human(-ago)),
        0..=59 => "just now".to_owned(),
        _ => format!("{} ago", human(ago)),
    };
    format!("<time datetime=\"{0}\">{0}</time> <small>({1})</small>", esc(&format_timestamp(at)), hint)
}

fn human(seconds: i64) -> String {
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min", seconds / 60),
        3600..=86399 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86400),
    }
}

fn badge(status: &str, failures: i32) -> String {
    let extra = if failures > 0 { format!(" ({failures} failed in a row)") } else { String::new() };
    format!("<span class=\"badge {0}\">{0}{1}</span>", esc(status), esc(&extra))
}

/// `GET /ui/webhooks`.
async fn list(state: St, session: Session) -> Response {
    let tenant = session.caller.scope().cloned();
    let webhooks = match state.store.list_webhooks(tenant.as_ref(), None, 100).await {
        Ok(w) => w,
        Err(e) => return problem(&session, &ApiError::internal(&e)),
    };
    let rows: String = webhooks
        .iter()
        .map(|w| {
            format!(
                "<tr><td data-label=\"Name\"><a href=\"/ui/webhooks/{id}\">{name}</a></td><td data-label=\"URL\">{url}</td><td data-label=\"Events\">{events}</td><td data-label=\"Active\">{active}</td><td data-label=\"Status\">{status}</td><td data-label=\"Last success\">{ok}</td><td data-label=\"Last failure\">{failed}</td></tr>",
                id = w.id,
                name = esc(w.name.as_str()),
                url = esc(w.url.as_str()),
                events = esc(&w.events.as_strings().join(", ")),
                active = if w.active { "active" } else { "inactive" },
                status = badge(w.status.as_str(), w.consecutive_failures),
                ok = when(w.last_success_at),
                failed = when(w.last_failure_at),
            )
        })
        .collect();
    let body = if webhooks.is_empty() {
        "<p>No webhooks yet.</p>".to_owned()
    } else {
        format!(
            "<table><thead><tr><th>Name</th><th>URL</th><th>Events</th><th>Active</th><th>Status</th><th>Last success</th><th>Last failure</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    page("Webhooks", Some(&session), &format!("<p><a href=\"/ui/webhooks/new\">Add a webhook</a></p>{body}"))
        .into_response()
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

fn field_error(view: &FormView, field: &str) -> String {
    match &view.error {
        Some((f, detail)) if f == field => {
            format!("<p class=\"error\" id=\"{field}-error\" role=\"alert\">{}</p>", esc(detail))
        }
        _ => String::new(),
    }
}

/// Fills the token field with a fresh `whsec_` secret (32 random bytes);
/// without JavaScript, an empty field has the server generate one.
const GENERATE_SCRIPT: &str = "<script>function hooklineGenerate(){const b=new Uint8Array(32);crypto.getRandomValues(b);document.getElementById('token').value='whsec_'+btoa(String.fromCharCode(...b));}</script>";

fn form_html(session: &Session, action: &str, view: &FormView, creating: bool, seen: &[String]) -> String {
    let options: String = seen.iter().map(|t| format!("<option value=\"{}\">", esc(t))).collect();
    let general = match &view.error {
        Some((f, detail)) if !["name", "url", "token", "events", "signatureScheme"].contains(&f.as_str()) => {
            format!("<p class=\"error\" role=\"alert\">{}</p>", esc(detail))
        }
        _ => String::new(),
    };
    let token_help = if creating {
        "Leave empty to generate one (shown once after saving)."
    } else {
        "Leave empty to keep the current token."
    };
    let scheme = |value: &str, label: &str| {
        let selected = if view.scheme == value { " selected" } else { "" };
        format!("<option value=\"{value}\"{selected}>{label}</option>")
    };
    format!(
        "{general}<form method=\"post\" action=\"{action}\">{csrf}\
         <label for=\"name\">Name</label><input type=\"text\" id=\"name\" name=\"name\" value=\"{name}\" required>{e_name}\
         <label for=\"url\">URL</label><input type=\"url\" id=\"url\" name=\"url\" value=\"{url}\" required>{e_url}\
         <label for=\"token\">Token</label><input type=\"text\" id=\"token\" name=\"token\" autocomplete=\"off\"><button type=\"button\" onclick=\"hooklineGenerate()\">Generate</button><small>{token_help}</small>{e_token}\
         <label for=\"events\">Events</label><input type=\"text\" id=\"events\" name=\"events\" value=\"{events}\" list=\"seen-events\" placeholder=\"license.created, license.*\" required><datalist id=\"seen-events\">{options}</datalist><small>Comma-separated event types or patterns; <code>*</code> is every event.</small>{e_events}\
         <label><input type=\"checkbox\" name=\"active\" value=\"on\"{active}> Active</label>\
         <label for=\"scheme\">Signature scheme</label><select id=\"scheme\" name=\"scheme\">{s1}{s2}</select>{e_scheme}\
         <p><button>Save</button> <a href=\"/ui/webhooks\">Cancel</a></p></form>{GENERATE_SCRIPT}",
        csrf = session.csrf_field(),
        name = esc(&view.name),
        url = esc(&view.url),
        events = esc(&view.events),
        active = if view.active { " checked" } else { "" },
        s1 = scheme("hookline", "Hookline (Webhook-Signature)"),
        s2 = scheme("standard-webhooks", "Standard Webhooks"),
        e_name = field_error(view, "name"),
        e_url = field_error(view, "url"),
        e_token = field_error(view, "token"),
        e_events = field_error(view, "events"),
        e_scheme = field_error(view, "signatureScheme"),
    )
}

/// Event types seen lately, for the form's suggestions (none on failure).
async fn seen(state: &AppState, session: &Session) -> Vec<String> {
    state.store.recent_event_types(session.caller.scope()).await.unwrap_or_default()
}

/// `GET /ui/webhooks/new`.
async fn new_form(state: St, session: Session) -> Html<String> {
    let view = FormView { active: true, scheme: "hookline".to_owned(), ..FormView::default() };
    let seen = seen(&state, &session).await;
    page("Add a webhook", Some(&session), &form_html(&session, "/ui/webhooks", &view, true, &seen))
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
                let body = format!(
                    "<p>Webhook <a href=\"/ui/webhooks/{id}\">{name}</a> created. Its signing token, shown this once:</p><pre id=\"token\">{token}</pre><p>Store it with your receiver; it is masked from now on.</p><p><a href=\"/ui/webhooks/{id}\">Continue</a></p>",
                    id = webhook.id,
                    name = esc(webhook.name.as_str()),
                    token = esc(webhook.token.expose()),
                );
                page("Webhook created", Some(&session), &body).into_response()
            } else {
                Redirect::to(&format!("/ui/webhooks/{}", webhook.id)).into_response()
            }
        }
        Err(e) => (
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            page("Add a webhook", Some(&session), &form_html(&session, "/ui/webhooks", &form.view(&e), true, &[])),
        )
            .into_response(),
    }
}

async fn load(state: &AppState, session: &Session, id: &str) -> Result<Webhook, ApiError> {
    let id: WebhookId = id.parse().map_err(|_| ApiError::not_found("webhook"))?;
    state.store.get_webhook(id, session.caller.scope()).await?.ok_or_else(|| ApiError::not_found("webhook"))
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
    page("Edit webhook", Some(&session), &form_html(&session, &action, &view, false, &seen)).into_response()
}

/// `POST /ui/webhooks/{id}`: the edit form.
async fn update(state: St, session: Session, Path(id): Path<String>, Form(form): Form<WebhookForm>) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let Ok(id) = id.parse::<WebhookId>() else { return problem(&session, &ApiError::not_found("webhook")) };
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
                &form_html(&session, &format!("/ui/webhooks/{id}"), &form.view(&e), false, &[]),
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
    let rows: String = deliveries
        .iter()
        .map(|d| {
            format!(
                "<tr><td data-label=\"Created\"><a href=\"/ui/deliveries/{id}\">{created}</a></td><td data-label=\"Event\">{event}</td><td data-label=\"State\">{state}</td><td data-label=\"Attempts\">{attempts}</td><td data-label=\"Next attempt\">{next}</td></tr>",
                id = d.id,
                created = esc(&format_timestamp(d.created_at)),
                event = esc(&d.event_type),
                state = esc(d.state.as_str()),
                attempts = d.attempt_count,
                next = when(d.next_attempt_at),
            )
        })
        .collect();
    let next_page = if i64::try_from(deliveries.len()).unwrap_or(0) == limit {
        deliveries.last().map_or(String::new(), |d| {
            format!(
                "<p><a href=\"?state={}&event={}&cursor={}\">Older</a></p>",
                esc(q.state.as_deref().unwrap_or("")),
                esc(q.event.as_deref().unwrap_or("")),
                d.id
            )
        })
    } else {
        String::new()
    };
    let states: String = ["", "pending", "retrying", "delivered", "failed", "suspended", "skipped"]
        .iter()
        .map(|s| {
            let selected = if q.state.as_deref().unwrap_or("") == *s { " selected" } else { "" };
            format!("<option value=\"{s}\"{selected}>{}</option>", if s.is_empty() { "any state" } else { s })
        })
        .collect();
    let csrf = session.csrf_field();
    let id = webhook.id;
    let body = format!(
        "<p>{status} · {active} · <code>{url}</code></p>\
         <p>Events: {events} · Token <code>{token}</code> · Scheme {scheme}</p>\
         <p><a href=\"/ui/webhooks/{id}/edit\">Edit</a></p>\
         <form class=\"inline\" method=\"post\" action=\"/ui/webhooks/{id}/test\">{csrf}<button>Send a test event</button></form>\
         <form class=\"inline\" method=\"post\" action=\"/ui/webhooks/{id}/resume\">{csrf}<button>Resume</button></form>\
         <details><summary>Rotate the token</summary><form method=\"post\" action=\"/ui/webhooks/{id}/rotate\">{csrf}<label for=\"grace\">Old token keeps signing for (hours, 0–168)</label><input type=\"text\" id=\"grace\" name=\"grace_hours\" value=\"24\" inputmode=\"numeric\"><button>Rotate</button></form></details>\
         <details><summary>Recover failed and suspended deliveries</summary><form method=\"post\" action=\"/ui/webhooks/{id}/recover\">{csrf}<label for=\"since\">Created since (RFC 3339, UTC)</label><input type=\"text\" id=\"since\" name=\"since\" placeholder=\"2026-11-24T00:00:00Z\" required><label for=\"until\">Until (empty: now)</label><input type=\"text\" id=\"until\" name=\"until\"><button>Count them</button></form></details>\
         <form class=\"inline\" method=\"post\" action=\"/ui/webhooks/{id}/delete\" onsubmit=\"return confirm('Delete this webhook and its event log?')\">{csrf}<label><input type=\"checkbox\" name=\"confirm\" value=\"yes\" required> I mean it</label><button>Delete</button></form>\
         <h2>Event log</h2>\
         <form method=\"get\"><select name=\"state\" aria-label=\"State\">{states}</select> <input type=\"text\" name=\"event\" placeholder=\"event type\" value=\"{event}\" aria-label=\"Event type\" style=\"max-width:15rem\"> <button>Filter</button></form>\
         <table><thead><tr><th>Created (UTC)</th><th>Event</th><th>State</th><th>Attempts</th><th>Next attempt</th></tr></thead><tbody>{rows}</tbody></table>{next_page}",
        status = badge(webhook.status.as_str(), webhook.consecutive_failures),
        active = if webhook.active { "active" } else { "inactive" },
        url = esc(webhook.url.as_str()),
        events = esc(&webhook.events.as_strings().join(", ")),
        token = esc(&webhook.token.masked()),
        scheme = esc(webhook.scheme.as_str()),
        event = esc(q.event.as_deref().unwrap_or("")),
    );
    page(webhook.name.as_str(), Some(&session), &body).into_response()
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
    let Ok(webhook) = id.parse::<WebhookId>() else { return problem(&session, &ApiError::not_found("webhook")) };
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
    let Ok(webhook) = id.parse::<WebhookId>() else { return problem(&session, &ApiError::not_found("webhook")) };
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
    let Ok(delivery_id) = id.parse::<DeliveryId>() else { return problem(&session, &ApiError::not_found("delivery")) };
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
    let rows: String = attempts
        .iter()
        .map(|a| {
            let result = match (a.status_code, &a.error_kind) {
                (Some(code), _) => format!("HTTP {code}"),
                (None, Some(kind)) => format!("{kind}: {}", a.error_message.as_deref().unwrap_or("")),
                (None, None) => "—".to_owned(),
            };
            let trace = match (&a.trace_id, trace_base) {
                (Some(t), Some(base)) => format!("<a href=\"{}{}\">{}</a>", esc(base), esc(t), esc(t)),
                (Some(t), None) => esc(t),
                (None, _) => "—".to_owned(),
            };
            format!(
                "<tr><td data-label=\"#\">{no}</td><td data-label=\"Trigger\">{trigger}</td><td data-label=\"Sent\">{sent}</td><td data-label=\"Received\">{received}</td><td data-label=\"Duration\">{ms} ms</td><td data-label=\"Result\">{result}</td><td data-label=\"Retry reason\">{reason}</td><td data-label=\"Next attempt\">{next}</td><td data-label=\"Response\"><pre>{excerpt}</pre></td><td data-label=\"Trace\">{trace}</td></tr>",
                no = a.attempt_no,
                trigger = esc(&a.trigger),
                sent = when(Some(a.sent_at)),
                received = when(a.received_at),
                ms = a.duration_ms,
                result = esc(&result),
                reason = esc(a.retry_reason.as_deref().unwrap_or("—")),
                next = when(a.next_attempt_at),
                excerpt = esc(a.response_excerpt.as_deref().unwrap_or("")),
            )
        })
        .collect();
    let body = format!(
        "<p>Event <code>{event}</code> ({event_id}) to <a href=\"/ui/webhooks/{webhook}\">its webhook</a> · state <strong>{state}</strong> · created {created}</p>\
         <form method=\"post\" action=\"/ui/deliveries/{id}/retry\">{csrf}<button>Retry now</button></form>\
         <h2>Payload</h2><pre>{payload}</pre>\
         <h2>Attempts</h2><table><thead><tr><th>#</th><th>Trigger</th><th>Sent (UTC)</th><th>Received</th><th>Duration</th><th>Result</th><th>Retry reason</th><th>Next attempt</th><th>Response</th><th>Trace</th></tr></thead><tbody>{rows}</tbody></table>",
        event = esc(&delivery.event_type),
        event_id = esc(delivery.event_id.as_str()),
        webhook = delivery.webhook_id,
        state = esc(delivery.state.as_str()),
        created = when(Some(delivery.created_at)),
        id = delivery.id,
        csrf = session.csrf_field(),
        payload = esc(&pretty),
    );
    page("Delivery", Some(&session), &body).into_response()
}

/// `POST /ui/deliveries/{id}/retry`.
async fn retry(state: St, session: Session, Path(id): Path<String>, Form(form): Form<ActionForm>) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let Ok(delivery) = id.parse::<DeliveryId>() else { return problem(&session, &ApiError::not_found("delivery")) };
    match retry_delivery(&state, &session.caller, delivery).await {
        Ok(()) => Redirect::to(&format!("/ui/deliveries/{delivery}")).into_response(),
        Err(e) => problem(&session, &e),
    }
}

/// `POST /ui/webhooks/{id}/test`: one `hookline.test` event to this webhook
/// only, attempted at once whatever its health (a success makes it healthy).
async fn send_test(state: St, session: Session, Path(id): Path<String>, Form(form): Form<ActionForm>) -> Response {
    use hookline_broker::{DeliveryMessage, WireTrigger};
    use hookline_core::{Event, EventId, EventType};
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let Ok(webhook) = id.parse::<WebhookId>() else { return problem(&session, &ApiError::not_found("webhook")) };
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
    let message = DeliveryMessage::V1 {
        delivery_id: delivery.as_uuid(),
        webhook_id: Some(webhook.as_uuid()),
        trigger: WireTrigger::Manual,
        not_before_ms: None,
        deferrals: 0,
    };
    let published = match state.publisher() {
        Ok(publisher) => publisher.publish_now(&message).await.is_ok(),
        Err(_) => false,
    };
    if !published {
        return problem(&session, &ApiError::broker_unavailable());
    }
    Redirect::to(&format!("/ui/deliveries/{delivery}")).into_response()
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
    let Ok(webhook) = id.parse::<WebhookId>() else { return problem(&session, &ApiError::not_found("webhook")) };
    let Ok(hours) = form.grace_hours.trim().parse::<i64>() else {
        return problem(&session, &ApiError::invalid_field("grace", "must be a whole number of hours"));
    };
    match rotate_webhook_token(&state, &session.caller, webhook, None, Some(hours.saturating_mul(3600))).await {
        Ok((webhook, _)) => {
            let body = format!(
                "<p>The new signing token of <a href=\"/ui/webhooks/{id}\">{name}</a>, shown this once:</p><pre id=\"token\">{token}</pre><p>The old one keeps signing beside it for {hours} h.</p>",
                id = webhook.id,
                name = esc(webhook.name.as_str()),
                token = esc(webhook.token.expose()),
            );
            page("Token rotated", Some(&session), &body).into_response()
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
    let Ok(webhook) = id.parse::<WebhookId>() else { return problem(&session, &ApiError::not_found("webhook")) };
    let until = nonempty(&form.until);
    let queue = form.confirm.as_deref() == Some("yes");
    match recover_webhook(&state, &session.caller, webhook, form.since.trim(), until.as_deref(), !queue).await {
        Ok(r) if !queue => {
            let body = format!(
                "<p>{count} failed or suspended deliveries were created in that window.</p>\
                 <form method=\"post\" action=\"/ui/webhooks/{webhook}/recover\">{csrf}<input type=\"hidden\" name=\"since\" value=\"{since}\"><input type=\"hidden\" name=\"until\" value=\"{until}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\"><button>Replay them</button> <a href=\"/ui/webhooks/{webhook}\">Cancel</a></form>",
                count = r.count,
                csrf = session.csrf_field(),
                since = esc(form.since.trim()),
                until = esc(until.as_deref().unwrap_or("")),
            );
            page("Recover", Some(&session), &body).into_response()
        }
        Ok(r) => {
            let body = format!(
                "<p>{} deliveries queued; the last is attempted at about {}.</p><p><a href=\"/ui/webhooks/{webhook}\">Back to the webhook</a></p>",
                r.queued,
                esc(r.finishes_at.as_deref().unwrap_or("now")),
            );
            page("Recover", Some(&session), &body).into_response()
        }
        Err(e) => problem(&session, &e),
    }
}
