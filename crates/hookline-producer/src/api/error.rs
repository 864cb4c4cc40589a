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
use utoipa::ToSchema;

use crate::{auth::Refused, ops};

/// An error the API answers with.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: Code,
    detail: String,
    field: Option<String>,
}

/// The stable machine codes: a client switches on these, never on `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// 400: the request could not be read.
    BadRequest,
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: an unknown query parameter, or one of the wrong type.
    InvalidQuery,
    /// 401: no valid API key or tenant token.
    Unauthorized,
    /// 403: an admin-only operation, asked by a tenant.
    AdminOnly,
    /// 403: a tenant acting for another tenant.
    TenantMismatch,
    /// 404: no such resource (or not the caller's).
    NotFound,
    /// 408: the request took longer than `HOOKLINE_API_TIMEOUT_MS`.
    RequestTimeout,
    /// 409: the webhook is inactive.
    WebhookInactive,
    /// 409: an update keeps the value of a header the webhook does not
    /// have (`field: headers`).
    HeaderNotSet,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 422: the body is JSON of the wrong shape.
    InvalidBody,
    /// 422: a field failed validation (`field` names it).
    InvalidField,
    /// 422: the URL is an address webhooks may not be sent to.
    BlockedDestination,
    /// 422: the tenant has as many webhooks as it may.
    TenantWebhookLimit,
    /// 422: an event type in Hookline's own namespace (`hookline.…`): only
    /// Hookline sends those.
    ReservedEventType,
    /// 500: an unexpected failure (logged).
    Internal,
    /// 503: the broker did not take the event; nothing was accepted.
    BrokerUnavailable,
    /// 503: the database is unavailable; try again.
    DatabaseUnavailable,
}

impl Code {
    /// The wire name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::MalformedJson => "malformed_json",
            Self::InvalidQuery => "invalid_query",
            Self::Unauthorized => "unauthorized",
            Self::AdminOnly => "admin_only",
            Self::TenantMismatch => "tenant_mismatch",
            Self::NotFound => "not_found",
            Self::RequestTimeout => "request_timeout",
            Self::WebhookInactive => "webhook_inactive",
            Self::HeaderNotSet => "header_not_set",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidBody => "invalid_body",
            Self::InvalidField => "invalid_field",
            Self::BlockedDestination => "blocked_destination",
            Self::TenantWebhookLimit => "tenant_webhook_limit",
            Self::ReservedEventType => "reserved_event_type",
            Self::Internal => "internal",
            Self::BrokerUnavailable => "broker_unavailable",
            Self::DatabaseUnavailable => "database_unavailable",
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Serialize, ToSchema)]
pub(crate) struct Problem<'a> {
    /// `https://hookline.dev/problems/<code with dashes>`.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    kind: String,
    /// The status's reason phrase.
    title: &'a str,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    code: Code,
    /// For humans; it may change.
    detail: &'a str,
    /// The request field (body field or query parameter) it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: Code, detail: impl Into<String>) -> Self {
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
            code: Code::InvalidField,
            detail: format!("{field}: {error}"),
            field: Some(field.to_owned()),
        }
    }

    /// The resource does not exist (or is not visible to the caller).
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, Code::NotFound, format!("{what} not found"))
    }

    /// The broker did not take the message; nothing was accepted.
    pub fn broker_unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, Code::BrokerUnavailable, ops::Error::BrokerUnavailable.to_string())
    }

    /// The request took longer than the producer allows
    /// (`HOOKLINE_API_TIMEOUT_MS`).
    pub fn timed_out() -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, Code::RequestTimeout, "the request took too long and was abandoned")
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
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, "an internal error occurred")
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> Code {
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
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, Code::BlockedDestination, format!("url: {blocked}"))
                    .with_field("url")
            }
            e @ E::WebhookLimit { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, Code::TenantWebhookLimit, e.to_string())
            }
            e @ E::WebhookInactive => Self::new(StatusCode::CONFLICT, Code::WebhookInactive, e.to_string()),
            E::BrokerUnavailable => Self::broker_unavailable(),
            E::Store(e) if e.is_transient() => {
                tracing::warn!(error.message = %e, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Code::DatabaseUnavailable,
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
            Refused::AdminOnly => Code::AdminOnly,
            Refused::TenantMismatch => Code::TenantMismatch,
        };
        Self::new(StatusCode::FORBIDDEN, code, refused.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("https://hookline.dev/problems/{}", self.code.as_str().replace('_', "-")),
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
