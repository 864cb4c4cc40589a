//! The webhook's JSON shapes: the create and update bodies (with their
//! conversion to domain values) and the webhook as the API shows it.

use hookline_core::{EventFilters, SignatureScheme, SigningToken, WebhookName, WebhookUrl, format_timestamp};
use hookline_store::{Webhook, WebhookPatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tenant;
use crate::{
    api::{ApiError, schema},
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
        })
    }
}

impl TryFrom<UpdateWebhook> for WebhookPatch {
    type Error = ApiError;

    fn try_from(body: UpdateWebhook) -> Result<Self, ApiError> {
        Ok(Self {
            name: body.name.as_deref().map(name).transpose()?,
            url: body.url.as_deref().map(url).transpose()?,
            token: body.token.as_deref().map(token).transpose()?,
            scheme: body.signature_scheme.as_deref().map(scheme).transpose()?,
            events: body.events.as_deref().map(events).transpose()?,
            active: body.active,
        })
    }
}
