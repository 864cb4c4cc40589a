//! The admin portal under `/ui/`: server-rendered HTML from maud templates
//! compiled into the binary (every interpolated value is escaped by the
//! template, never by hand), plain forms that work without JavaScript.
//!
//! Sign-in takes an API key (every tenant) or a tenant token (that tenant
//! only: an account can be handed `/ui/login?token=…`), and sets a session
//! cookie: `HttpOnly`, `SameSite=Strict`, `Secure` behind HTTPS, signed with
//! a key derived from the tenant-token secret, holding the caller's scope
//! and expiry (no server-side state). Every form carries a CSRF token bound
//! to the session. Pages act through the same functions as the API, with the
//! same [`Caller`] scoping, so a tenant session sees only its tenant.
//!
//! # Layout
//! - this module: the router, sessions, CSRF, the page layout.
//! - `pages`: webhooks, the webhook form, the event log, deliveries.

mod pages;

use std::sync::Arc;

use axum::{
    Form, Router,
    extract::{FromRequestParts, Query, State},
    http::{HeaderMap, HeaderValue, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use hookline_core::{TenantId, TokenSecret};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::{auth::Caller, routes::AppState};

const COOKIE: &str = "hookline_session";
/// How long a session lasts.
const SESSION: time::Duration = time::Duration::hours(8);

/// The portal's routes, under `/ui`.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/webhooks") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .merge(pages::router())
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#111}header{background:#1f2937;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}header a{color:#fff}main{padding:1rem;max-width:72rem}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35rem;text-align:left;vertical-align:top;word-break:break-word}.badge{padding:.1rem .4rem;border-radius:.3rem;border:1px solid}.healthy{background:#dcfce7}.unhealthy{background:#fef9c3}.suspended{background:#fee2e2}.error{color:#b91c1c}label{display:block;margin-top:.7rem;font-weight:600}input[type=text],input[type=url],input[type=password],textarea,select{width:100%;max-width:40rem;padding:.3rem;box-sizing:border-box}form.inline{display:inline}button{margin:.3rem .3rem .3rem 0;padding:.3rem .7rem}pre{white-space:pre-wrap;background:#f3f4f6;padding:.5rem}@media(max-width:40rem){table,tbody,tr,td{display:block}thead{display:none}tr{border-bottom:1px solid #ddd;padding:.4rem 0}td{border:none;padding:.1rem 0}td::before{content:attr(data-label) \": \";font-weight:600}}";

/// A whole page.
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

/// A signed-in portal user.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// What the session may see and do.
    pub(crate) caller: Caller,
    nonce: String,
    key: TokenSecret,
}

fn session_key(state: &AppState) -> TokenSecret {
    state.auth.tokens.derive("ui-session")
}

impl Session {
    fn cookie_value(caller: &Caller, expires: OffsetDateTime, key: &TokenSecret) -> String {
        let scope = match caller {
            Caller::Admin => "admin".to_owned(),
            Caller::Tenant(t) => format!("t:{t}"),
        };
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let payload = format!("v1|{scope}|{}|{nonce}", expires.unix_timestamp());
        format!("{payload}|{}", key.sign(&payload))
    }

    fn parse(value: &str, key: TokenSecret, now: OffsetDateTime) -> Option<Self> {
        let (payload, signature) = value.rsplit_once('|')?;
        if !key.check(payload, signature) {
            return None;
        }
        let mut parts = payload.split('|');
        let (version, scope, expires, nonce) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "v1" || expires.parse::<i64>().ok()? <= now.unix_timestamp() {
            return None;
        }
        let caller = match scope {
            "admin" => Caller::Admin,
            other => Caller::Tenant(TenantId::parse(other.strip_prefix("t:")?).ok()?),
        };
        Some(Self { caller, nonce: nonce.to_owned(), key })
    }

    /// The CSRF token of this session.
    pub(crate) fn csrf(&self) -> String {
        self.key.sign(&format!("csrf|{}", self.nonce))
    }

    /// A hidden form field with the CSRF token.
    pub(crate) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf()); }
    }

    /// Whether a posted CSRF token is this session's.
    pub(crate) fn check_csrf(&self, posted: &str) -> Result<(), CsrfRefused> {
        if self.key.check(&format!("csrf|{}", self.nonce), posted) { Ok(()) } else { Err(CsrfRefused) }
    }

    fn describe(&self) -> String {
        match &self.caller {
            Caller::Admin => "signed in as administrator".to_owned(),
            Caller::Tenant(t) => format!("account {t}"),
        }
    }
}

/// A form posted without this session's CSRF token.
#[derive(Debug)]
pub(crate) struct CsrfRefused;

impl IntoResponse for CsrfRefused {
    fn into_response(self) -> Response {
        (
            axum::http::StatusCode::FORBIDDEN,
            "This form has expired or did not come from Hookline; go back, reload and try again.",
        )
            .into_response()
    }
}

fn cookie_of<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<Arc<AppState>> for Session {
    type Rejection = Redirect;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        cookie_of(&parts.headers, COOKIE)
            .and_then(|v| Session::parse(v, session_key(state), OffsetDateTime::now_utc()))
            .ok_or_else(|| Redirect::to("/ui/login"))
    }
}

fn set_cookie(headers: &HeaderMap, value: &str, max_age: i64) -> HeaderValue {
    // Behind a TLS-terminating proxy the cookie is `Secure`.
    let https = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
        .expect("cookie values are ASCII")
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

fn login_form(error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/ui/login" {
                label for="key" { "API key or account token" }
                input type="password" id="key" name="key" autocomplete="current-password" required;
                button { "Sign in" }
            }
        },
    )
}

/// `GET /ui/login`: the form, or with `?token=` a tenant token's sign-in.
async fn login_page(State(state): State<Arc<AppState>>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    match q.token {
        Some(token) => sign_in(&state, &headers, &token),
        None => login_form(None).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    key: String,
}

/// `POST /ui/login`.
async fn login(State(state): State<Arc<AppState>>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    sign_in(&state, &headers, form.key.trim())
}

fn sign_in(state: &AppState, headers: &HeaderMap, credential: &str) -> Response {
    let Some(caller) = state.auth.caller(credential) else {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            login_form(Some("That key or token is not valid (or has expired).")),
        )
            .into_response();
    };
    // A tenant token's session ends when the token does: a short-lived link
    // stays short-lived.
    let now = OffsetDateTime::now_utc();
    let mut expires = now + SESSION;
    if let Ok((_, token_expiry)) = state.auth.tokens.verify_until(credential, now) {
        expires = expires.min(token_expiry);
    }
    let value = Session::cookie_value(&caller, expires, &session_key(state));
    let mut response = Redirect::to("/ui/webhooks").into_response();
    response.headers_mut().insert(header::SET_COOKIE, set_cookie(headers, &value, (expires - now).whole_seconds()));
    response
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// `POST /ui/logout`.
async fn logout(session: Session, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, set_cookie(&headers, "", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenSecret {
        TokenSecret::new(b"0123456789abcdef0123".to_vec()).expect("long enough")
    }

    /// A session cookie round-trips; tampered, expired or foreign ones do not.
    #[test]
    fn session_cookies() {
        let now = OffsetDateTime::now_utc();
        let tenant = Caller::Tenant(TenantId::parse("acct-1").expect("valid"));
        let value = Session::cookie_value(&tenant, now + SESSION, &key());
        let session = Session::parse(&value, key(), now).expect("valid");
        assert_eq!(session.caller, tenant);
        assert!(Session::parse(&value.replace("t:acct-1", "admin"), key(), now).is_none(), "scope is signed");
        assert!(Session::parse(&value, key(), now + SESSION + time::Duration::SECOND).is_none(), "expired");
        let other = TokenSecret::new(b"another-secret-0123456".to_vec()).expect("long enough");
        assert!(Session::parse(&value, other, now).is_none(), "another key");
        // CSRF tokens are per session.
        assert!(session.check_csrf(&session.csrf()).is_ok());
        let second = Session::parse(&Session::cookie_value(&tenant, now + SESSION, &key()), key(), now).expect("valid");
        assert!(session.check_csrf(&second.csrf()).is_err());
        assert!(session.check_csrf("").is_err());
    }
}
