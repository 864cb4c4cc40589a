//! Portal sessions: sign-in, the signed session cookie, its CSRF token,
//! and sign-out.
//!
//! **Signing in** is a `POST` of the sign-in form and nothing else (a `GET`
//! never signs a browser in). The form carries a CSRF token bound to the
//! browser before there is a session: `GET /ui/login` sets a random,
//! expiring nonce in the `hookline_login` cookie (`HttpOnly`,
//! `SameSite=Strict`, path `/ui/login`) and puts the nonce's MAC in the
//! form; `POST /ui/login` is refused unless the two agree. Another site can
//! neither read that pair nor make one, so it cannot sign a visitor in to
//! an account of its choosing (login CSRF).
//!
//! **A sign-in link** for an account is `/ui/login#token=<tenant token>`:
//! the token is in the fragment, which a browser never sends, so it reaches
//! no server, proxy log or `Referer`. A script on the sign-in page removes
//! it from the address bar and history entry, puts it in the form's field
//! and says which account it is for; the user presses "Sign in". An older
//! `?token=` link signs nobody in: the page asks for the token to be pasted
//! (and does not repeat it).
//!
//! **The session cookie** is `HttpOnly`, `SameSite=Strict`, `Secure` behind
//! HTTPS, and signed with a key derived from the tenant-token secret; it
//! holds the caller's scope and expiry (no server-side state). A tenant
//! token's session ends when the token does. An administrator's session
//! names the API key that opened it (a MAC of the key's digest, so the
//! cookie reveals nothing about the key) and is accepted only while that
//! key is configured: a producer started without the key ends it.

use std::sync::Arc;

use axum::{
    Form,
    extract::{FromRequestParts, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use hookline_core::{TenantId, TokenSecret};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{
    error::PortalError,
    extract::{CsrfForm, Nothing},
    layout::page,
};
use crate::{
    auth::{ApiKeys, Caller, KeyDigest},
    state::AppState,
};

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

/// Who a session is for, as its cookie records it.
#[derive(Debug, Clone, Copy)]
enum Opener<'a> {
    /// An administrator, with the API key they signed in with.
    Admin(KeyDigest),
    /// One tenant's token.
    Tenant(&'a TenantId),
}

/// What an admin session's cookie says about its key: a MAC of the key's
/// digest under the session key.
fn admin_key_payload(digest: KeyDigest) -> String {
    format!("admin-key|{}", digest.to_hex())
}

impl Session {
    fn cookie_value(opener: Opener<'_>, expires: OffsetDateTime, key: &TokenSecret) -> String {
        let scope = match opener {
            Opener::Admin(digest) => format!("admin:{}", key.sign(&admin_key_payload(digest))),
            Opener::Tenant(t) => format!("t:{t}"),
        };
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let payload = format!("v2|{scope}|{}|{nonce}", expires.unix_timestamp());
        format!("{payload}|{}", key.sign(&payload))
    }

    /// The session a cookie holds: genuine, unexpired, and (for an admin)
    /// opened with one of the API keys accepted now.
    fn parse(value: &str, key: TokenSecret, keys: &ApiKeys, now: OffsetDateTime) -> Option<Self> {
        let (payload, signature) = value.rsplit_once('|')?;
        if !key.check(payload, signature) {
            return None;
        }
        let mut parts = payload.split('|');
        let (version, scope, expires, nonce) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "v2" || expires.parse::<i64>().ok()? <= now.unix_timestamp() {
            return None;
        }
        let caller = if let Some(mac) = scope.strip_prefix("admin:") {
            let current = keys.digests().iter().any(|d| key.check(&admin_key_payload(*d), mac));
            current.then_some(Caller::Admin)?
        } else {
            Caller::Tenant(TenantId::parse(scope.strip_prefix("t:")?).ok()?)
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
            .and_then(|v| Session::parse(v, session_key(state), &state.auth.keys, OffsetDateTime::now_utc()))
            .ok_or(PortalError::SignIn)
    }
}

/// A `Set-Cookie` for `name` on `path` (`max_age` 0 removes it).
fn set_cookie(headers: &HeaderMap, name: &str, path: &str, value: &str, max_age: i64) -> HeaderValue {
    // Behind a TLS-terminating proxy the cookie is `Secure`.
    let https = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
        .expect("cookie values are ASCII")
}

/// The sign-in form's cookie: the browser's half of its CSRF pair.
const LOGIN_COOKIE: &str = "hookline_login";
/// How long a sign-in form can be posted.
const LOGIN_FORM: time::Duration = time::Duration::hours(1);

/// The nonce that binds a sign-in form to one browser: `<expiry>.<random>`,
/// kept in [`LOGIN_COOKIE`]; the form carries its MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoginNonce {
    value: String,
    expires: i64,
}

impl LoginNonce {
    fn fresh(now: OffsetDateTime) -> Self {
        let expires = (now + LOGIN_FORM).unix_timestamp();
        Self { value: format!("{expires}.{}", uuid::Uuid::new_v4().simple()), expires }
    }

    /// The nonce a cookie holds, while it has not expired.
    fn parse(value: &str, now: OffsetDateTime) -> Option<Self> {
        let (expires, random) = value.split_once('.')?;
        let expires = expires.parse::<i64>().ok()?;
        let well_formed = random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit());
        (well_formed && expires > now.unix_timestamp()).then(|| Self { value: value.to_owned(), expires })
    }

    fn csrf(&self, key: &TokenSecret) -> String {
        key.sign(&format!("login|{}", self.value))
    }

    fn check(&self, key: &TokenSecret, posted: &str) -> bool {
        key.check(&format!("login|{}", self.value), posted)
    }
}

/// Fills the field from a `#token=` link (on load, and when the link is
/// opened on a sign-in page already showing), says which account it is
/// for, and takes the token out of the address bar and this history entry;
/// signing in still needs the button.
const LINK_SCRIPT: &str = r#"(function () {
  function fromLink() {
    var m = /[#&]token=([^&]*)/.exec(location.hash);
    if (location.hash || location.search) { history.replaceState(null, "", location.pathname); }
    if (!m) { return; }
    var token;
    try { token = decodeURIComponent(m[1]); } catch (e) { return; }
    document.getElementById("key").value = token;
    var account = "";
    try {
      var parts = token.split(".");
      if (parts[0] === "hlt1") { account = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")); }
    } catch (e) {}
    var note = document.getElementById("link-note");
    note.textContent = account
      ? "This link signs you in to the account “" + account + "”. Press “Sign in” to continue."
      : "The token from your link is filled in. Press “Sign in” to continue.";
    note.hidden = false;
    document.getElementById("sign-in").focus();
  }
  fromLink();
  window.addEventListener("hashchange", fromLink);
})();"#;

/// The sign-in page, its form bound to `nonce`, with `message` above it.
fn login_form(nonce: &LoginNonce, key: &TokenSecret, message: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            @if let Some(m) = message { p.error role="alert" { (m) } }
            p id="link-note" role="status" hidden {}
            form method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(nonce.csrf(key));
                label for="key" { "API key or account token" }
                input type="password" id="key" name="key" autocomplete="current-password" required;
                button id="sign-in" { "Sign in" }
            }
            script { (PreEscaped(LINK_SCRIPT)) }
        },
    )
}

/// The sign-in page as an answer: the browser's nonce while it has at least
/// half its life left, else a fresh one (set in the cookie).
fn login_response(state: &AppState, headers: &HeaderMap, status: StatusCode, message: Option<&str>) -> Response {
    let now = OffsetDateTime::now_utc();
    let half = (now + LOGIN_FORM / 2_i32).unix_timestamp();
    let kept = cookie_of(headers, LOGIN_COOKIE).and_then(|v| LoginNonce::parse(v, now)).filter(|n| n.expires > half);
    let nonce = kept.clone().unwrap_or_else(|| LoginNonce::fresh(now));
    let mut response = (status, login_form(&nonce, &session_key(state), message)).into_response();
    if kept.is_none() {
        let cookie = set_cookie(headers, LOGIN_COOKIE, "/ui/login", &nonce.value, LOGIN_FORM.whole_seconds());
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /ui/login`: the form. Never signs in; an old `?token=` link is
/// answered with the form and a request to paste the token.
pub(super) async fn login_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let old_link = query.as_deref().is_some_and(|q| q.split('&').any(|p| p.split('=').next() == Some("token")));
    let message = old_link.then_some(
        "Sign-in links no longer carry the token in the address. Paste the account token from your link into the field below, or ask for a new link.",
    );
    login_response(&state, &headers, StatusCode::OK, message)
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    /// The form's half of the CSRF pair (missing: refused like a wrong one).
    #[serde(default)]
    csrf: String,
    key: String,
}

/// `POST /ui/login`: the form's CSRF token must match this browser's nonce,
/// then the credential is checked.
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let now = OffsetDateTime::now_utc();
    let key = session_key(&state);
    let nonce = cookie_of(&headers, LOGIN_COOKIE).and_then(|v| LoginNonce::parse(v, now));
    if !nonce.is_some_and(|n| n.check(&key, &form.csrf)) {
        let message = "This sign-in form has expired or did not come from Hookline; sign in again.";
        return login_response(&state, &headers, StatusCode::FORBIDDEN, Some(message));
    }
    sign_in(&state, &headers, form.key.trim(), now)
}

fn sign_in(state: &AppState, headers: &HeaderMap, credential: &str, now: OffsetDateTime) -> Response {
    let refused = || {
        let message = "That key or token is not valid (or has expired).";
        login_response(state, headers, StatusCode::UNAUTHORIZED, Some(message))
    };
    let Some(caller) = state.auth.caller(credential) else { return refused() };
    let opener = match &caller {
        Caller::Admin => match state.auth.keys.find(credential) {
            Some(digest) => Opener::Admin(digest),
            None => return refused(),
        },
        Caller::Tenant(tenant) => Opener::Tenant(tenant),
    };
    // A tenant token's session ends when the token does: a short-lived link
    // stays short-lived.
    let mut expires = now + SESSION;
    if let Ok((_, token_expiry)) = state.auth.tokens.verify_until(credential, now) {
        expires = expires.min(token_expiry);
    }
    let value = Session::cookie_value(opener, expires, &session_key(state));
    let mut response = Redirect::to("/ui/webhooks").into_response();
    let cookies = response.headers_mut();
    let max_age = (expires - now).whole_seconds();
    cookies.append(header::SET_COOKIE, set_cookie(headers, COOKIE, "/ui", &value, max_age));
    cookies.append(header::SET_COOKIE, set_cookie(headers, LOGIN_COOKIE, "/ui/login", "", 0));
    response
}

/// `POST /ui/logout`.
pub(super) async fn logout(headers: HeaderMap, _: CsrfForm<Nothing>) -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, set_cookie(&headers, COOKIE, "/ui", "", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Secret;

    fn key() -> TokenSecret {
        TokenSecret::new(b"0123456789abcdef0123".to_vec()).expect("long enough")
    }

    fn keys(list: &[&str]) -> ApiKeys {
        ApiKeys::new(&list.iter().map(|k| Secret::new((*k).to_owned())).collect::<Vec<_>>())
    }

    /// A session cookie round-trips; tampered, expired or foreign ones do not.
    #[test]
    fn session_cookies() {
        let now = OffsetDateTime::now_utc();
        let none = keys(&[]);
        let acct = TenantId::parse("acct-1").expect("valid");
        let tenant = Caller::Tenant(acct.clone());
        let value = Session::cookie_value(Opener::Tenant(&acct), now + SESSION, &key());
        let session = Session::parse(&value, key(), &none, now).expect("valid");
        assert_eq!(session.caller, tenant);
        assert!(Session::parse(&value.replace("t:acct-1", "admin"), key(), &none, now).is_none(), "scope is signed");
        assert!(Session::parse(&value, key(), &none, now + SESSION + time::Duration::SECOND).is_none(), "expired");
        let other = TokenSecret::new(b"another-secret-0123456".to_vec()).expect("long enough");
        assert!(Session::parse(&value, other, &none, now).is_none(), "another key");
        assert!(Session::parse(&value.replacen("v2|", "v1|", 1), key(), &none, now).is_none(), "old format");
        // CSRF tokens are per session.
        assert!(session.check_csrf(&session.csrf()).is_ok());
        let second = Session::cookie_value(Opener::Tenant(&acct), now + SESSION, &key());
        let second = Session::parse(&second, key(), &none, now).expect("valid");
        assert!(session.check_csrf(&second.csrf()).is_err());
        assert!(session.check_csrf("").is_err());
    }

    /// An admin session is accepted while the key it was opened with is
    /// configured, and not once it is removed; the cookie does not carry
    /// the key's digest.
    #[test]
    fn admin_sessions_end_with_their_key() {
        let now = OffsetDateTime::now_utc();
        let both = keys(&["first-key-0123456789", "second-key-0123456789"]);
        let digest = both.find("second-key-0123456789").expect("a key");
        let value = Session::cookie_value(Opener::Admin(digest), now + SESSION, &key());
        assert!(!value.contains(&digest.to_hex()));
        let session = Session::parse(&value, key(), &both, now).expect("the key is configured");
        assert_eq!(session.caller, Caller::Admin);
        assert!(Session::parse(&value, key(), &keys(&["second-key-0123456789"]), now).is_some());
        assert!(Session::parse(&value, key(), &keys(&["first-key-0123456789"]), now).is_none(), "key removed");
        assert!(Session::parse(&value, key(), &keys(&[]), now).is_none());
        let forged = value.replacen("admin:", "admin:x", 1);
        assert!(Session::parse(&forged, key(), &both, now).is_none());
    }

    /// A sign-in form's CSRF token holds only with its own, unexpired nonce.
    #[test]
    fn login_nonces() {
        let now = OffsetDateTime::now_utc();
        let nonce = LoginNonce::fresh(now);
        let parsed = LoginNonce::parse(&nonce.value, now).expect("fresh");
        assert_eq!(parsed, nonce);
        assert!(parsed.check(&key(), &nonce.csrf(&key())));
        assert!(!parsed.check(&key(), &LoginNonce::fresh(now).csrf(&key())), "another browser's form");
        assert!(!parsed.check(&key(), ""));
        assert!(LoginNonce::parse(&nonce.value, now + LOGIN_FORM).is_none(), "expired");
        assert!(LoginNonce::parse("99999999999.short", now).is_none());
        assert!(LoginNonce::parse("", now).is_none());
    }
}
