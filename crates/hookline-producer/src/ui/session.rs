//! Portal sessions: sign-in (an API key, or a tenant token, also as
//! `/ui/login?token=…`), the signed session cookie, its CSRF token, and
//! sign-out.
//!
//! The cookie is `HttpOnly`, `SameSite=Strict`, `Secure` behind HTTPS, and
//! signed with a key derived from the tenant-token secret; it holds the
//! caller's scope and expiry (no server-side state). A tenant token's
//! session ends when the token does.

use std::sync::Arc;

use axum::{
    Form,
    extract::{FromRequestParts, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use hookline_core::{TenantId, TokenSecret};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{
    error::PortalError,
    extract::{CsrfForm, Nothing},
    layout::page,
};
use crate::{auth::Caller, state::AppState};

const COOKIE: &str = "hookline_session";
/// How long a session lasts.
const SESSION: time::Duration = time::Duration::hours(8);

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
    fn csrf(&self) -> String {
        self.key.sign(&format!("csrf|{}", self.nonce))
    }

    /// A hidden form field with the CSRF token.
    pub(crate) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf()); }
    }

    /// Whether a posted CSRF token is this session's.
    pub(super) fn check_csrf(&self, posted: &str) -> Result<(), PortalError> {
        if self.key.check(&format!("csrf|{}", self.nonce), posted) { Ok(()) } else { Err(PortalError::Csrf) }
    }

    /// Who is signed in, for the page header.
    pub(super) fn describe(&self) -> String {
        match &self.caller {
            Caller::Admin => "signed in as administrator".to_owned(),
            Caller::Tenant(t) => format!("account {t}"),
        }
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

/// The session of a request; without a valid one, to the sign-in page.
impl FromRequestParts<Arc<AppState>> for Session {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        cookie_of(&parts.headers, COOKIE)
            .and_then(|v| Session::parse(v, session_key(state), OffsetDateTime::now_utc()))
            .ok_or(PortalError::SignIn)
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
pub(super) struct LoginQuery {
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
pub(super) async fn login_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    match q.token {
        Some(token) => sign_in(&state, &headers, &token),
        None => login_form(None).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    key: String,
}

/// `POST /ui/login`.
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    sign_in(&state, &headers, form.key.trim())
}

fn sign_in(state: &AppState, headers: &HeaderMap, credential: &str) -> Response {
    let Some(caller) = state.auth.caller(credential) else {
        let page = login_form(Some("That key or token is not valid (or has expired)."));
        return (StatusCode::UNAUTHORIZED, page).into_response();
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

/// `POST /ui/logout`.
pub(super) async fn logout(headers: HeaderMap, _: CsrfForm<Nothing>) -> Response {
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
