//! The API's [`Caller`]: from `Authorization: Bearer <API key or tenant
//! token>`, checked by middleware on every `/v1` route before the request
//! is looked at any further. Failures answer `401` with no detail of what
//! was wrong.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};

use crate::{
    api::ApiError,
    auth::{Auth, Caller},
    state::AppState,
};

/// A request without valid credentials.
#[derive(Debug)]
pub(crate) struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            crate::api::error::Code::Unauthorized,
            "missing or invalid credentials: send `Authorization: Bearer <API key or tenant token>`",
        )
        .into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

fn authenticate(headers: &axum::http::HeaderMap, auth: &Auth) -> Option<Caller> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)?;
    auth.caller(bearer)
}

/// Middleware on every `/v1` route: no valid credential, no entry — even for
/// a handler that forgot to ask for a [`Caller`]. The caller it finds is kept
/// in the request for the handler's extractor.
pub(crate) async fn require_caller(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match authenticate(request.headers(), &state.auth) {
        Some(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        None => Unauthorized.into_response(),
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            None => authenticate(&parts.headers, &state.auth).ok_or(Unauthorized),
        }
    }
}
