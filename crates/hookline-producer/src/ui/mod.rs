//! The admin portal under `/ui/`: server-rendered HTML from maud templates
//! compiled into the binary (every interpolated value is escaped by the
//! template, never by hand), plain forms that work without JavaScript.
//!
//! Sign-in takes an API key (every tenant) or a tenant token (that tenant
//! only: an account can be handed `/ui/login#token=…`, the token in the
//! fragment, which no server sees) in a `POST` with a CSRF token bound to
//! the browser, and sets a signed session cookie (`session`). Every form
//! carries a CSRF token bound to the session, checked by the
//! [`CsrfForm`](extract::CsrfForm) extractor before a handler runs.
//! Handlers parse the form into domain values, call the same operations as
//! the API (`ops`) with the session's `Caller`, so a tenant session sees
//! only its tenant, and render a page, a redirect, or a
//! [`PortalError`](error::PortalError).
//!
//! Every portal answer is `Cache-Control: no-store` (pages show tokens
//! once, and what a signed-in user saw must not outlive the session in a
//! cache) and `Referrer-Policy: no-referrer` (no portal address leaves in
//! a `Referer`).
//!
//! # Layout
//! - `session`: the session cookie, its CSRF token, sign-in and sign-out.
//! - `extract`: `CsrfForm` (session + CSRF + form) and `Id` (a path id).
//! - `error`: `PortalError`, and the page for an operation's error.
//! - `layout`: the page frame and shared pieces.
//! - `webhooks`: the list, and a webhook's page with its settings, health
//!   changes and event log.
//! - `chart`: a webhook's attempts per hour as an inline SVG bar chart.
//! - `form`: adding and editing a webhook, its extra headers, rate limit
//!   and recovery included.
//! - `actions`: resume, delete, test event, rotate, recover.
//! - `deliveries`: a delivery with its attempts, and retry.

mod actions;
mod chart;
mod deliveries;
mod error;
mod extract;
mod form;
mod layout;
mod session;
mod webhooks;

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{Redirect, Response},
    routing::{get, post},
};

use crate::state::AppState;

/// The state every portal handler takes.
type St = axum::extract::State<Arc<AppState>>;

/// The portal's routes, under `/ui` (and `/`, the portal's front door).
pub(crate) fn router() -> Router<Arc<AppState>> {
    // The webhook list, or the sign-in page without a session.
    let home = get(|| async { Redirect::to("/ui/webhooks") });
    Router::new()
        .route("/", home.clone())
        .route("/ui", home.clone())
        .route("/ui/", home)
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/webhooks", get(webhooks::list).post(form::create))
        .route("/ui/webhooks/new", get(form::new_form))
        .route("/ui/webhooks/{id}", get(webhooks::show).post(form::update))
        .route("/ui/webhooks/{id}/edit", get(form::edit_form))
        .route("/ui/webhooks/{id}/resume", post(actions::resume))
        .route("/ui/webhooks/{id}/delete", post(actions::delete))
        .route("/ui/webhooks/{id}/test", post(actions::send_test))
        .route("/ui/webhooks/{id}/rotate", post(actions::rotate))
        .route("/ui/webhooks/{id}/recover", post(actions::recover))
        .route("/ui/deliveries/{id}", get(deliveries::show))
        .route("/ui/deliveries/{id}/retry", post(deliveries::retry))
        .layer(axum::middleware::map_response(private))
}

/// Nothing the portal answers is stored by a cache or named in a `Referer`.
async fn private(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
