//! The webhook form: add (`/ui/webhooks/new`) and edit
//! (`/ui/webhooks/{id}/edit`). A field that does not validate is shown
//! beside the field, with what was typed kept (`422`), except secrets: the
//! token and secret header values are never written into a page.
//!
//! Extra headers are a fixed set of rows (`header_name_<i>`,
//! `header_value_<i>`, `header_secret_<i>`): those the webhook has and
//! three empty ones, at most [`MAX_HEADERS`]. A row without a name is
//! ignored; a secret row left empty keeps the value stored under its name
//! ([`CustomHeaders::parse`] with the current headers).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use std::collections::HashMap;

use hookline_core::{
    CustomHeaders, EventFilters, RateLimit, Recovery, SignatureScheme, SigningToken, WebhookId, WebhookName,
    WebhookUrl,
    webhook::{MAX_HEADERS, MAX_RATE_LIMIT},
};
use hookline_store::{Webhook, WebhookPatch};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::{
    St,
    error::{OrPage, PortalError},
    extract::{CsrfForm, Id},
    layout::{page, table},
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
    headers: Vec<HeaderRow>,
    rate_limit: String,
    probe: bool,
    replay: bool,
    error: Option<FieldError>,
}

/// An extra header's row as the form shows it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct HeaderRow {
    name: String,
    /// What the value field shows: never a secret's value.
    value: String,
    secret: bool,
    /// A secret stored under this name: an empty value keeps it.
    stored: bool,
    /// A secret value was typed, and is not shown back.
    retype: bool,
}

/// Empty rows below the filled ones, for adding headers.
const SPARE_ROWS: usize = 3;

impl HeaderRow {
    /// The rows of stored headers, secret values left out.
    fn stored(headers: &CustomHeaders) -> Vec<Self> {
        headers
            .iter()
            .map(|h| Self {
                name: h.name.as_str().to_owned(),
                value: if h.secret { String::new() } else { h.value.expose().to_owned() },
                secret: h.secret,
                stored: h.secret,
                retype: false,
            })
            .collect()
    }

    /// `rows` and [`SPARE_ROWS`] empty ones, at most [`MAX_HEADERS`] in
    /// all (more only when more were posted, to show them back).
    fn with_spares(mut rows: Vec<Self>) -> Vec<Self> {
        let total = (rows.len() + SPARE_ROWS).min(MAX_HEADERS).max(rows.len());
        rows.resize_with(total, Self::default);
        rows
    }
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
            (headers_html(view))
            label for="rate_limit" { "Rate limit (requests per second)" }
            input type="number" id="rate_limit" name="rate_limit" value=(view.rate_limit) min="1" max=(MAX_RATE_LIMIT) step="1" inputmode="numeric";
            small { "Empty: no limit. Shared by every worker." }
            (field_error(view, "rate_limit"))
            fieldset {
                legend { "While suspended" }
                label { input type="checkbox" name="recovery_probe" value="on" checked[view.probe]; " Probe: send a signed " code { "hookline.probe" } " on a backoff (1 min doubling to 1 h); the first 2xx resumes the webhook" }
                label { input type="checkbox" name="recovery_replay" value="on" checked[view.replay]; " Replay: on resuming by a probe, also recover what was held while suspended" }
            }
            p { button { "Save" } " " a href="/ui/webhooks" { "Cancel" } }
        }
        script { (PreEscaped(GENERATE_SCRIPT)) }
    }
}

/// The extra headers' rows, and their error.
fn headers_html(view: &FormView) -> Markup {
    html! {
        fieldset {
            legend { "Extra request headers" }
            small { "Sent with every request, up to " (MAX_HEADERS) ". A row without a name is left out. A secret value is stored sealed and never shown again." }
            (table(&["Name", "Value", "Secret"], html! {
                @for (i, row) in view.headers.iter().enumerate() {
                    @let n = i + 1;
                    tr {
                        td data-label="Name" {
                            input type="text" name={ "header_name_" (i) } value=(row.name) aria-label={ "Header " (n) " name" } autocomplete="off" spellcheck="false";
                        }
                        td data-label="Value" {
                            input type="text" name={ "header_value_" (i) } value=(row.value) aria-label={ "Header " (n) " value" } autocomplete="off" spellcheck="false";
                            @if row.retype {
                                small { "Not shown back: type it again"  @if row.stored { " (empty keeps the stored value)" } "." }
                            } @else if row.stored {
                                small { "Secret: leave empty to keep." }
                            }
                        }
                        td data-label="Secret" {
                            input type="checkbox" name={ "header_secret_" (i) } value="on" checked[row.secret] aria-label={ "Header " (n) " is secret" };
                        }
                    }
                }
            }))
            (field_error(view, "headers"))
        }
    }
}

/// Event types seen lately, for the form's suggestions (none on failure).
async fn seen(state: &AppState, session: &Session) -> Vec<String> {
    ops::webhooks::recent_event_types(state, &session.caller).await.unwrap_or_default()
}

/// `GET /ui/webhooks/new`.
pub(super) async fn new_form(state: St, session: Session) -> Markup {
    let view = FormView {
        active: true,
        scheme: "hookline".to_owned(),
        headers: HeaderRow::with_spares(Vec::new()),
        ..FormView::default()
    };
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
        headers: HeaderRow::with_spares(HeaderRow::stored(&webhook.headers)),
        rate_limit: webhook.rate_limit.map(|r| r.per_second().to_string()).unwrap_or_default(),
        probe: webhook.recovery.probe(),
        replay: webhook.recovery.replay(),
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
    #[serde(default)]
    rate_limit: String,
    recovery_probe: Option<String>,
    recovery_replay: Option<String>,
    /// The header rows' fields (`header_name_<i>`, …); other names are
    /// ignored.
    #[serde(flatten)]
    rows: HashMap<String, String>,
}

/// A header row as posted.
#[derive(Debug, PartialEq, Eq)]
struct PostedRow<'a> {
    name: &'a str,
    value: &'a str,
    secret: bool,
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

    /// The header rows posted, in row order, trimmed.
    fn rows(&self) -> Vec<PostedRow<'_>> {
        let mut numbers: Vec<usize> =
            self.rows.keys().filter_map(|k| k.strip_prefix("header_name_")?.parse().ok()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        let field = |kind: &str, i: usize| self.rows.get(&format!("header_{kind}_{i}")).map(|v| v.trim());
        numbers
            .into_iter()
            .map(|i| PostedRow {
                name: field("name", i).unwrap_or_default(),
                value: field("value", i).unwrap_or_default(),
                secret: field("secret", i).is_some(),
            })
            .collect()
    }

    /// The headers: rows with a name; a secret left empty keeps the value
    /// `current` has under its name.
    fn headers(&self, current: &CustomHeaders) -> Result<CustomHeaders, FieldError> {
        let rows = self.rows();
        let items = rows.iter().filter(|r| !r.name.is_empty()).map(|r| {
            let keep = r.secret && r.value.is_empty();
            (r.name, (!keep).then_some(r.value), r.secret)
        });
        CustomHeaders::parse(items, current).map_err(|e| FieldError::of("headers")(&e))
    }

    /// The rate limit; empty is none.
    fn rate_limit(&self) -> Result<Option<RateLimit>, FieldError> {
        let Some(text) = nonempty(&self.rate_limit) else { return Ok(None) };
        let invalid = || FieldError {
            field: Some("rate_limit"),
            detail: format!("{}; leave it empty for none", hookline_core::InvalidRateLimit),
        };
        let n: i64 = text.parse().map_err(|_| invalid())?;
        RateLimit::new(n).map(Some).map_err(|_| invalid())
    }

    fn recovery(&self) -> Recovery {
        Recovery::new(self.recovery_probe.is_some(), self.recovery_replay.is_some())
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
            headers: self.headers(&CustomHeaders::default())?,
            rate_limit: self.rate_limit()?,
            recovery: self.recovery(),
        })
    }

    /// Every field as posted; an empty token keeps the current one, and an
    /// empty secret header the value `current` has.
    fn patch(&self, current: &CustomHeaders) -> Result<WebhookPatch, FieldError> {
        Ok(WebhookPatch {
            name: Some(self.name()?),
            url: Some(self.url()?),
            token: self.token()?,
            scheme: self.scheme()?,
            events: Some(self.events()?),
            active: Some(self.active.is_some()),
            headers: Some(self.headers(current)?),
            rate_limit: Some(self.rate_limit()?),
            recovery: Some(self.recovery()),
        })
    }

    /// The form again, as typed, with `error`; secret values typed are not
    /// shown back (`current`: the stored headers, whose secrets an empty
    /// value keeps).
    fn view(&self, error: FieldError, current: &CustomHeaders) -> FormView {
        let stored = |name: &str| current.iter().any(|h| h.secret && h.name.as_str().eq_ignore_ascii_case(name));
        let rows = self
            .rows()
            .into_iter()
            .filter(|r| !r.name.is_empty() || !r.value.is_empty() || r.secret)
            .map(|r| HeaderRow {
                name: r.name.to_owned(),
                value: if r.secret { String::new() } else { r.value.to_owned() },
                secret: r.secret,
                stored: r.secret && stored(r.name),
                retype: r.secret && !r.value.is_empty(),
            })
            .collect();
        FormView {
            name: self.name.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            active: self.active.is_some(),
            scheme: self.scheme.clone(),
            headers: HeaderRow::with_spares(rows),
            rate_limit: self.rate_limit.clone(),
            probe: self.recovery_probe.is_some(),
            replay: self.recovery_replay.is_some(),
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

/// The form again with its error (`422`); `current`: the stored headers.
fn invalid(
    session: &Session,
    title: &str,
    action: &str,
    form: &WebhookForm,
    error: FieldError,
    creating: bool,
    current: &CustomHeaders,
) -> Response {
    let body = form_html(session, action, &form.view(error, current), creating, &[]);
    (StatusCode::UNPROCESSABLE_ENTITY, page(title, Some(session), body)).into_response()
}

/// `POST /ui/webhooks`: a generated token is shown once.
pub(super) async fn create(state: St, posted: CsrfForm<WebhookForm>) -> Result<Response, PortalError> {
    let CsrfForm { session, form } = posted;
    let none = CustomHeaders::default();
    let again = |error| invalid(&session, "Add a webhook", "/ui/webhooks", &form, error, true, &none);
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
    let current = ops::webhooks::get(&state, &session.caller, id).await.or_page(&session)?.headers;
    let action = format!("/ui/webhooks/{id}");
    let again = |error| invalid(&session, "Edit webhook", &action, &form, error, false, &current);
    let patch = match form.patch(&current) {
        Ok(patch) => patch,
        Err(error) => return Ok(again(error)),
    };
    match ops::webhooks::update(&state, &session.caller, id, &patch).await {
        Ok(webhook) => Ok(Redirect::to(&format!("/ui/webhooks/{}", webhook.id)).into_response()),
        Err(e) => Ok(again(on_form(&session, e)?)),
    }
}

#[cfg(test)]
mod tests {
    use hookline_core::{CustomHeader, HeaderName, HeaderValue};

    use super::*;

    fn form(fields: &[(&str, &str)]) -> WebhookForm {
        WebhookForm {
            name: "n".to_owned(),
            url: "https://example.com".to_owned(),
            token: String::new(),
            events: "*".to_owned(),
            active: Some("on".to_owned()),
            scheme: String::new(),
            rate_limit: String::new(),
            recovery_probe: None,
            recovery_replay: None,
            rows: fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    fn stored(name: &str, value: &str, secret: bool) -> CustomHeaders {
        let name = HeaderName::parse(name).expect("name");
        let value = HeaderValue::parse(&name, value).expect("value");
        CustomHeaders::new(vec![CustomHeader { name, value, secret }]).expect("headers")
    }

    fn field(error: FieldError) -> (Option<&'static str>, String) {
        (error.field, error.detail)
    }

    /// Rows in their order (by number, not as text), trimmed; a row without
    /// a name is left out; a secret left empty keeps the stored value.
    #[test]
    fn header_rows_become_headers() {
        let posted = form(&[
            ("header_name_10", "X-Last"),
            ("header_value_10", "  z "),
            ("header_name_2", " X-Team "),
            ("header_value_2", "core"),
            ("header_name_3", ""),
            ("header_value_3", "ignored"),
            ("header_name_4", "Authorization"),
            ("header_value_4", ""),
            ("header_secret_4", "on"),
        ]);
        let current = stored("authorization", "Bearer kept", true);
        let headers = posted.headers(&current).expect("valid");
        let shown: Vec<(&str, &str, bool)> =
            headers.iter().map(|h| (h.name.as_str(), h.value.expose(), h.secret)).collect();
        assert_eq!(shown, [("X-Team", "core", false), ("Authorization", "Bearer kept", true), ("X-Last", "z", false)]);
        // Nothing stored to keep: the secret needs a value.
        let (f, detail) = field(posted.headers(&CustomHeaders::default()).expect_err("no value"));
        assert_eq!(f, Some("headers"));
        assert!(detail.contains("has no value to keep"), "{detail}");
    }

    /// Reserved names and bad values are the headers field's error.
    #[test]
    fn bad_headers_are_field_errors() {
        for (name, value, expected) in [
            ("Content-Type", "text/plain", "set by Hookline"),
            ("X-Bad", "caf\u{e9}", "printable ASCII"),
            ("X Y", "v", "letters"),
        ] {
            let posted = form(&[("header_name_0", name), ("header_value_0", value)]);
            let (f, detail) = field(posted.headers(&CustomHeaders::default()).expect_err(name));
            assert_eq!(f, Some("headers"));
            assert!(detail.contains(expected), "{name}: {detail}");
        }
    }

    /// Empty is no limit; anything but 1 to 10000 is the field's error.
    #[test]
    fn rate_limits() {
        let limit = |text: &str| WebhookForm { rate_limit: text.to_owned(), ..form(&[]) }.rate_limit();
        assert_eq!(limit(" ").expect("none"), None);
        assert_eq!(limit("50").expect("valid").map(RateLimit::per_second), Some(50));
        for bad in ["0", "-1", "10001", "abc", "1.5"] {
            let (f, detail) = field(limit(bad).expect_err(bad));
            assert_eq!(f, Some("rate_limit"));
            assert!(detail.contains("1 to 10000") && detail.contains("empty"), "{detail}");
        }
    }

    /// Shown back after an error: what was typed, except secret values; a
    /// stored secret's row says an empty value keeps it.
    #[test]
    fn secrets_are_not_shown_back() {
        let posted = form(&[
            ("header_name_0", "Authorization"),
            ("header_value_0", "Bearer new"),
            ("header_secret_0", "on"),
            ("header_name_1", "X-Key"),
            ("header_value_1", ""),
            ("header_secret_1", "on"),
            ("header_name_2", "X-Team"),
            ("header_value_2", "core"),
            ("header_name_3", ""),
            ("header_value_3", ""),
        ]);
        let current = stored("X-Key", "sealed", true);
        let view = posted.view(FieldError { field: None, detail: String::new() }, &current);
        let row = |name: &str, value: &str, secret: bool, stored: bool, retype: bool| HeaderRow {
            name: name.to_owned(),
            value: value.to_owned(),
            secret,
            stored,
            retype,
        };
        assert_eq!(
            view.headers,
            [
                row("Authorization", "", true, false, true),
                row("X-Key", "", true, true, false),
                row("X-Team", "core", false, false, false),
                HeaderRow::default(),
                HeaderRow::default(),
                HeaderRow::default(),
            ]
        );
        let html = headers_html(&view).into_string();
        assert!(!html.contains("Bearer new") && html.contains("type it again") && html.contains("leave empty to keep"));
    }

    /// Stored headers fill rows (secret values left out), three spare rows
    /// after them, never more than 20 in all.
    #[test]
    fn rows_for_stored_headers() {
        let rows = HeaderRow::with_spares(HeaderRow::stored(&stored("X-Key", "sealed", true)));
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[0].value.as_str(), rows[0].secret, rows[0].stored), ("", true, true));
        assert_eq!(HeaderRow::with_spares(vec![HeaderRow::default(); 19]).len(), MAX_HEADERS);
        assert_eq!(HeaderRow::with_spares(vec![HeaderRow::default(); 22]).len(), 22);
    }
}
