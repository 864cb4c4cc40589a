//! The webhook form: add (`/ui/webhooks/new`) and edit
//! (`/ui/webhooks/{id}/edit`). A field that does not validate is shown
//! beside the field, with what was typed kept (`422`).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use hookline_core::{EventFilters, SignatureScheme, SigningToken, WebhookId, WebhookName, WebhookUrl};
use hookline_store::{Webhook, WebhookPatch};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::{
    St,
    error::{OrPage, PortalError},
    extract::{CsrfForm, Id},
    layout::page,
    session::Session,
};
use crate::{
    ops::{self, webhooks::Draft},
    state::AppState,
};

/// What the form shows: values and the error beside a field.
#[derive(Debug, Default)]
struct FormView {
    name: String,
    url: String,
    events: String,
    active: bool,
    scheme: String,
    error: Option<FieldError>,
}

/// A field of the form that is wrong (no field: about the whole form).
#[derive(Debug)]
struct FieldError {
    field: Option<&'static str>,
    detail: String,
}

impl FieldError {
    fn of(field: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Self {
        move |e| Self { field: Some(field), detail: e.to_string() }
    }
}

fn field_error(view: &FormView, field: &str) -> Markup {
    html! {
        @if let Some(FieldError { field: Some(f), detail }) = &view.error {
            @if *f == field { p.error id={ (field) "-error" } role="alert" { (detail) } }
        }
    }
}

/// Fills the token field with a fresh `whsec_` secret (32 random bytes);
/// without JavaScript, an empty field has the server generate one.
const GENERATE_SCRIPT: &str = "function hooklineGenerate(){const b=new Uint8Array(32);crypto.getRandomValues(b);document.getElementById('token').value='whsec_'+btoa(String.fromCharCode(...b));}";

fn form_html(session: &Session, action: &str, view: &FormView, creating: bool, seen: &[String]) -> Markup {
    let general = match &view.error {
        Some(FieldError { field: None, detail }) => Some(detail),
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
            (field_error(view, "scheme"))
            p { button { "Save" } " " a href="/ui/webhooks" { "Cancel" } }
        }
        script { (PreEscaped(GENERATE_SCRIPT)) }
    }
}

/// Event types seen lately, for the form's suggestions (none on failure).
async fn seen(state: &AppState, session: &Session) -> Vec<String> {
    ops::webhooks::recent_event_types(state, &session.caller).await.unwrap_or_default()
}

/// `GET /ui/webhooks/new`.
pub(super) async fn new_form(state: St, session: Session) -> Markup {
    let view = FormView { active: true, scheme: "hookline".to_owned(), ..FormView::default() };
    let seen = seen(&state, &session).await;
    page("Add a webhook", Some(&session), form_html(&session, "/ui/webhooks", &view, true, &seen))
}

/// `GET /ui/webhooks/{id}/edit`.
pub(super) async fn edit_form(state: St, session: Session, Id(id): Id<WebhookId>) -> Result<Markup, PortalError> {
    let webhook = ops::webhooks::get(&state, &session.caller, id).await.or_page(&session)?;
    let view = FormView {
        name: webhook.name.as_str().to_owned(),
        url: webhook.url.as_str().to_owned(),
        events: webhook.events.as_strings().join(", "),
        active: webhook.active,
        scheme: webhook.scheme.as_str().to_owned(),
        error: None,
    };
    let seen = seen(&state, &session).await;
    let action = format!("/ui/webhooks/{id}");
    Ok(page("Edit webhook", Some(&session), form_html(&session, &action, &view, false, &seen)))
}

/// The webhook form as posted.
#[derive(Debug, Deserialize)]
pub(super) struct WebhookForm {
    name: String,
    url: String,
    #[serde(default)]
    token: String,
    events: String,
    active: Option<String>,
    #[serde(default)]
    scheme: String,
}

/// Trimmed text, `None` when empty.
fn nonempty(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

impl WebhookForm {
    fn name(&self) -> Result<WebhookName, FieldError> {
        WebhookName::parse(&self.name).map_err(|e| FieldError::of("name")(&e))
    }

    fn url(&self) -> Result<WebhookUrl, FieldError> {
        WebhookUrl::parse(&self.url).map_err(|e| FieldError::of("url")(&e))
    }

    /// The token typed, if one.
    fn token(&self) -> Result<Option<SigningToken>, FieldError> {
        nonempty(&self.token).map(SigningToken::parse).transpose().map_err(|e| FieldError::of("token")(&e))
    }

    /// The events, comma- or line-separated.
    fn events(&self) -> Result<EventFilters, FieldError> {
        let events: Vec<String> =
            self.events.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect();
        EventFilters::parse(&events).map_err(|e| FieldError::of("events")(&e))
    }

    /// The scheme chosen, if one.
    fn scheme(&self) -> Result<Option<SignatureScheme>, FieldError> {
        nonempty(&self.scheme).map(SignatureScheme::parse).transpose().map_err(|e| FieldError::of("scheme")(&e))
    }

    fn draft(&self) -> Result<Draft, FieldError> {
        Ok(Draft {
            tenant: None,
            name: self.name()?,
            url: self.url()?,
            token: self.token()?,
            scheme: self.scheme()?.unwrap_or_default(),
            events: self.events()?,
            active: self.active.is_some(),
            headers: Default::default(),
            rate_limit: None,
            recovery: Default::default(),
        })
    }

    /// Every field as posted; an empty token keeps the current one.
    fn patch(&self) -> Result<WebhookPatch, FieldError> {
        Ok(WebhookPatch {
            name: Some(self.name()?),
            url: Some(self.url()?),
            token: self.token()?,
            scheme: self.scheme()?,
            events: Some(self.events()?),
            active: Some(self.active.is_some()),
            ..WebhookPatch::default()
        })
    }

    /// The form again, as typed, with `error`.
    fn view(&self, error: FieldError) -> FormView {
        FormView {
            name: self.name.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            active: self.active.is_some(),
            scheme: self.scheme.clone(),
            error: Some(error),
        }
    }
}

/// What of an operation's error the form shows itself (beside a field or
/// above the form); the rest are pages.
fn on_form(session: &Session, error: ops::Error) -> Result<FieldError, PortalError> {
    match error {
        ops::Error::Blocked(blocked) => Ok(FieldError::of("url")(&blocked)),
        e @ (ops::Error::WebhookLimit { .. } | ops::Error::Refused(_)) => {
            Ok(FieldError { field: None, detail: e.to_string() })
        }
        other => Err(session.problem(other)),
    }
}

/// The form again with its error (`422`).
fn invalid(
    session: &Session,
    title: &str,
    action: &str,
    form: &WebhookForm,
    error: FieldError,
    creating: bool,
) -> Response {
    let body = form_html(session, action, &form.view(error), creating, &[]);
    (StatusCode::UNPROCESSABLE_ENTITY, page(title, Some(session), body)).into_response()
}

/// `POST /ui/webhooks`: a generated token is shown once.
pub(super) async fn create(state: St, posted: CsrfForm<WebhookForm>) -> Result<Response, PortalError> {
    let CsrfForm { session, form } = posted;
    let again = |error| invalid(&session, "Add a webhook", "/ui/webhooks", &form, error, true);
    let draft = match form.draft() {
        Ok(draft) => draft,
        Err(error) => return Ok(again(error)),
    };
    let issued = match ops::webhooks::create(&state, &session.caller, draft).await {
        Ok(issued) => issued,
        Err(e) => return Ok(again(on_form(&session, e)?)),
    };
    Ok(created(&session, &issued.webhook, issued.token_generated))
}

/// After creation: the generated token, this once; else the webhook's page.
fn created(session: &Session, webhook: &Webhook, token_generated: bool) -> Response {
    let link = format!("/ui/webhooks/{}", webhook.id);
    if !token_generated {
        return Redirect::to(&link).into_response();
    }
    let body = html! {
        p { "Webhook " a href=(link) { (webhook.name.as_str()) } " created. Its signing token, shown this once:" }
        pre id="token" { (webhook.token.expose()) }
        p { "Store it with your receiver; it is masked from now on." }
        p { a href=(link) { "Continue" } }
    };
    page("Webhook created", Some(session), body).into_response()
}

/// `POST /ui/webhooks/{id}`: the edit form.
pub(super) async fn update(
    state: St,
    Id(id): Id<WebhookId>,
    posted: CsrfForm<WebhookForm>,
) -> Result<Response, PortalError> {
    let CsrfForm { session, form } = posted;
    let action = format!("/ui/webhooks/{id}");
    let again = |error| invalid(&session, "Edit webhook", &action, &form, error, false);
    let patch = match form.patch() {
        Ok(patch) => patch,
        Err(error) => return Ok(again(error)),
    };
    match ops::webhooks::update(&state, &session.caller, id, &patch).await {
        Ok(webhook) => Ok(Redirect::to(&format!("/ui/webhooks/{}", webhook.id)).into_response()),
        Err(e) => Ok(again(on_form(&session, e)?)),
    }
}
