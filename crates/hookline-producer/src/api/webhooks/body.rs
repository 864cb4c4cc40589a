//! The webhook's JSON shapes: the create and update bodies (with their
//! conversion to domain values) and the webhook as the API shows it.

use axum::http::StatusCode;
use hookline_core::{
    CustomHeaders, EventFilters, InvalidHeader, RateLimit, Recovery, SignatureScheme, SigningToken, WebhookName,
    WebhookUrl, format_timestamp,
};
use hookline_store::{Webhook, WebhookPatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tenant;
use crate::{
    api::{ApiError, error::Code, schema},
    ops::webhooks::{Draft, Issued},
};

/// `POST /v1/webhooks` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(in crate::api) struct CreateWebhook {
    #[schema(value_type = schema::WebhookName)]
    name: String,
    #[schema(value_type = schema::WebhookUrl)]
    url: String,
    /// Generated (and shown once) when omitted.
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = schema::SigningToken)]
    token: Option<String>,
    /// What the webhook subscribes to.
    #[schema(value_type = Vec<schema::EventFilter>, min_items = 1, max_items = 100)]
    events: Vec<String>,
    #[serde(default = "active_by_default")]
    #[schema(default = true)]
    active: bool,
    /// The tenant it belongs to (a tenant token's own by default; an admin's
    /// default is `default`).
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = schema::TenantId)]
    tenant: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = schema::SignatureSchemeName)]
    signature_scheme: Option<String>,
    /// Extra request headers (at most 20).
    #[serde(default)]
    #[schema(max_items = 20)]
    headers: Vec<NewHeader>,
    /// At most this many requests per second to this webhook, across all
    /// workers; `0` (the default) for no limit.
    #[serde(default, deserialize_with = "crate::api::json::integer")]
    #[schema(value_type = i64, minimum = 0, maximum = 10000, default = 0)]
    rate_limit: i64,
    #[serde(default)]
    recovery: RecoveryBody,
}

/// An extra request header, as created.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(in crate::api) struct NewHeader {
    #[schema(value_type = schema::HeaderName)]
    name: String,
    #[schema(value_type = schema::HeaderValue)]
    value: String,
    /// Write-only, like the token: reads show `****`.
    #[serde(default)]
    secret: bool,
}

/// An extra request header in an update: without `value`, the current
/// value of the header of that name is kept (a secret cannot be read back
/// to send again).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(in crate::api) struct HeaderChange {
    #[schema(value_type = schema::HeaderName)]
    name: String,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = schema::HeaderValue)]
    value: Option<String>,
    #[serde(default)]
    secret: bool,
}

/// What Hookline does on its own while the webhook is suspended.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = Recovery)]
pub(in crate::api) struct RecoveryBody {
    /// Send a signed `hookline.probe` on a backoff (1 min doubling to 1 h);
    /// the first 2xx resumes the webhook.
    #[serde(default)]
    probe: bool,
    /// With `probe`: on resuming, also recover what was held while
    /// suspended, at the recover rate.
    #[serde(default)]
    replay: bool,
}

impl From<Recovery> for RecoveryBody {
    fn from(r: Recovery) -> Self {
        Self { probe: r.probe(), replay: r.replay() }
    }
}

/// An extra request header as reads show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Header)]
pub(in crate::api) struct HeaderDto {
    #[schema(value_type = schema::HeaderName)]
    name: String,
    /// `****` when secret.
    value: String,
    secret: bool,
}

fn active_by_default() -> bool {
    true
}

/// `PATCH /v1/webhooks/{id}` body: every field optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(in crate::api) struct UpdateWebhook {
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = schema::WebhookName)]
    name: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = schema::WebhookUrl)]
    url: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = schema::SigningToken)]
    token: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = Vec<schema::EventFilter>, min_items = 1, max_items = 100)]
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = bool)]
    active: Option<bool>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = schema::SignatureSchemeName)]
    signature_scheme: Option<String>,
    /// The whole list of extra headers.
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(max_items = 20, nullable = false)]
    headers: Option<Vec<HeaderChange>>,
    /// Requests per second; `0` removes the limit.
    #[serde(default, deserialize_with = "crate::api::json::present_integer")]
    #[schema(value_type = i64, minimum = 0, maximum = 10000)]
    rate_limit: Option<i64>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(nullable = false)]
    recovery: Option<RecoveryBody>,
}

impl UpdateWebhook {
    /// Whether a header keeps its current value (the update needs the
    /// webhook's current headers).
    pub(in crate::api) fn keeps_a_header(&self) -> bool {
        self.headers.iter().flatten().any(|h| h.value.is_none())
    }

    /// The change, its fields validated; `current` fills header values
    /// left out.
    pub(in crate::api) fn into_patch(self, current: &CustomHeaders) -> Result<WebhookPatch, ApiError> {
        let headers = self
            .headers
            .map(|items| {
                CustomHeaders::parse(items.iter().map(|h| (h.name.as_str(), h.value.as_deref(), h.secret)), current)
            })
            .transpose()
            .map_err(|e| match e {
                // Valid as written, but the webhook has no such header to
                // keep: the request conflicts with its state.
                InvalidHeader::Missing(_) => {
                    ApiError::new(StatusCode::CONFLICT, Code::HeaderNotSet, format!("headers: {e}"))
                        .with_field("headers")
                }
                e => ApiError::invalid_field("headers", e),
            })?;
        Ok(WebhookPatch {
            name: self.name.as_deref().map(name).transpose()?,
            url: self.url.as_deref().map(url).transpose()?,
            token: self.token.as_deref().map(token).transpose()?,
            scheme: self.signature_scheme.as_deref().map(scheme).transpose()?,
            events: self.events.as_deref().map(events).transpose()?,
            active: self.active,
            headers,
            rate_limit: self.rate_limit.map(rate_limit).transpose()?,
            recovery: self.recovery.map(|r| Recovery::new(r.probe, r.replay)),
        })
    }
}

/// A webhook as the API shows it: the token only masked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Webhook)]
pub(in crate::api) struct WebhookDto {
    #[schema(format = Uuid)]
    pub(super) id: String,
    #[schema(value_type = schema::TenantId)]
    tenant: String,
    #[schema(value_type = schema::WebhookName)]
    name: String,
    #[schema(format = "uri")]
    url: String,
    /// Masked, except in the answer to the call that generated it.
    token: String,
    #[schema(value_type = schema::SignatureSchemeName)]
    signature_scheme: &'static str,
    /// While a rotated-out token still signs beside the new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    previous_token_expires_at: Option<String>,
    #[schema(value_type = Vec<schema::EventFilter>)]
    events: Vec<String>,
    active: bool,
    headers: Vec<HeaderDto>,
    /// Requests per second at most; `0`: no limit.
    #[schema(minimum = 0, maximum = 10000)]
    rate_limit: u32,
    recovery: RecoveryBody,
    #[schema(value_type = schema::HealthStatusName)]
    status: &'static str,
    #[schema(minimum = 0)]
    consecutive_failures: i32,
    #[schema(format = DateTime)]
    last_success_at: Option<String>,
    #[schema(format = DateTime)]
    last_failure_at: Option<String>,
    #[schema(format = DateTime)]
    suspended_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<Issued> for WebhookDto {
    /// The token in full when Hookline has just generated it, else masked.
    fn from(Issued { webhook, token_generated }: Issued) -> Self {
        let full = token_generated.then(|| webhook.token.expose().to_owned());
        let mut dto = Self::from(webhook);
        if let Some(full) = full {
            dto.token = full;
        }
        dto
    }
}

impl From<Webhook> for WebhookDto {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id.to_string(),
            tenant: w.tenant.to_string(),
            name: w.name.as_str().to_owned(),
            url: w.url.as_str().to_owned(),
            token: w.token.masked(),
            signature_scheme: w.scheme.as_str(),
            previous_token_expires_at: w.previous_token_expires_at.map(format_timestamp),
            events: w.events.as_strings(),
            active: w.active,
            headers: w
                .headers
                .iter()
                .map(|h| HeaderDto { name: h.name.as_str().to_owned(), value: h.shown().to_owned(), secret: h.secret })
                .collect(),
            rate_limit: w.rate_limit.map_or(0, RateLimit::per_second),
            recovery: w.recovery.into(),
            status: w.status.as_str(),
            consecutive_failures: w.consecutive_failures,
            last_success_at: w.last_success_at.map(format_timestamp),
            last_failure_at: w.last_failure_at.map(format_timestamp),
            suspended_at: w.suspended_at.map(format_timestamp),
            created_at: format_timestamp(w.created_at),
            updated_at: format_timestamp(w.updated_at),
        }
    }
}

fn name(raw: &str) -> Result<WebhookName, ApiError> {
    WebhookName::parse(raw).map_err(|e| ApiError::invalid_field("name", e))
}
fn url(raw: &str) -> Result<WebhookUrl, ApiError> {
    WebhookUrl::parse(raw).map_err(|e| ApiError::invalid_field("url", e))
}
pub(super) fn token(raw: &str) -> Result<SigningToken, ApiError> {
    SigningToken::parse(raw).map_err(|e| ApiError::invalid_field("token", e))
}
fn scheme(raw: &str) -> Result<SignatureScheme, ApiError> {
    SignatureScheme::parse(raw).map_err(|e| ApiError::invalid_field("signatureScheme", e))
}
fn events(raw: &[String]) -> Result<EventFilters, ApiError> {
    EventFilters::parse(raw).map_err(|e| ApiError::invalid_field("events", e))
}
/// `0` is no limit.
fn rate_limit(raw: i64) -> Result<Option<RateLimit>, ApiError> {
    if raw == 0 {
        return Ok(None);
    }
    RateLimit::new(raw).map(Some).map_err(|e| ApiError::invalid_field("rateLimit", e))
}

impl TryFrom<CreateWebhook> for Draft {
    type Error = ApiError;

    fn try_from(body: CreateWebhook) -> Result<Self, ApiError> {
        Ok(Self {
            scheme: body.signature_scheme.as_deref().map(scheme).transpose()?.unwrap_or_default(),
            token: body.token.as_deref().map(token).transpose()?,
            tenant: tenant(body.tenant.as_deref())?,
            name: name(&body.name)?,
            url: url(&body.url)?,
            events: events(&body.events)?,
            active: body.active,
            headers: CustomHeaders::parse(
                body.headers.iter().map(|h| (h.name.as_str(), Some(h.value.as_str()), h.secret)),
                &CustomHeaders::default(),
            )
            .map_err(|e| ApiError::invalid_field("headers", e))?,
            rate_limit: rate_limit(body.rate_limit)?,
            recovery: Recovery::new(body.recovery.probe, body.recovery.replay),
        })
    }
}
