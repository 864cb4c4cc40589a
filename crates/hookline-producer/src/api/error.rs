//! API errors, answered as RFC 9457 `application/problem+json`.
//!
//! Every error has a stable machine `code` (clients switch on it) and a human
//! `detail`. Unexpected errors are logged once with their cause chain and
//! answered with an opaque 500.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{auth::Refused, ops};

/// An error the API answers with.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    field: Option<String>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), field: None }
    }

    /// The human explanation.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The request field it is about, if one.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The same error, naming the request field it is about.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }

    /// A field of the request failed validation (422, `invalid_field`).
    pub fn invalid_field(field: &str, error: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            detail: format!("{field}: {error}"),
            field: Some(field.to_owned()),
        }
    }

    /// The resource does not exist (or is not visible to the caller).
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// The broker did not take the message; nothing was accepted.
    pub fn broker_unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", ops::Error::BrokerUnavailable.to_string())
    }

    /// The request took longer than the producer allows
    /// (`HOOKLINE_API_TIMEOUT_MS`).
    pub fn timed_out() -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request took too long and was abandoned")
    }

    /// An unexpected failure: logged here with its cause chain, answered opaquely.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        tracing::error!(error.message = %error, error.cause_chain = ?chain, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred")
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<ops::Error> for ApiError {
    fn from(e: ops::Error) -> Self {
        use ops::Error as E;
        match e {
            E::NotFound(what) => Self::not_found(&what.to_string()),
            E::Refused(refused) => refused.into(),
            E::Blocked(blocked) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "blocked_destination", format!("url: {blocked}"))
                    .with_field("url")
            }
            e @ E::WebhookLimit { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "tenant_webhook_limit", e.to_string())
            }
            e @ E::WebhookInactive => Self::new(StatusCode::CONFLICT, "webhook_inactive", e.to_string()),
            E::BrokerUnavailable => Self::broker_unavailable(),
            E::Store(e) if e.is_transient() => {
                tracing::warn!(error.message = %e, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable, try again",
                )
            }
            E::Store(e) => Self::internal(&e),
            E::Internal(e) => Self::internal(&*e),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        let code = match refused {
            Refused::AdminOnly => "admin_only",
            Refused::TenantMismatch => "tenant_mismatch",
        };
        Self::new(StatusCode::FORBIDDEN, code, refused.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("https://hookline.dev/problems/{}", self.code.replace('_', "-")),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            code: self.code,
            detail: &self.detail,
            field: self.field.as_deref(),
        };
        let body = serde_json::to_vec(&problem).expect("a problem document always serialises");
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response
    }
}
