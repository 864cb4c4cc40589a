//! `/v1/webhooks`: create, list, read, update, delete, resume, recover,
//! rotate the token.
//!
//! A token is write-only: reads show it masked. Only a token Hookline
//! generated (none given at creation, or a rotation without one) is shown in
//! full, once, in the answer to the call that generated it.

use std::sync::Arc;

use axum::{
    Router,
    extract::Path,
    http::StatusCode,
    routing::{get, post},
};
use hookline_core::{
    EventFilters, SignatureScheme, SigningToken, TenantId, WebhookId, WebhookName, WebhookUrl, format_timestamp,
    parse_timestamp,
};
use hookline_store::{Webhook, WebhookPatch};
use serde::{Deserialize, Serialize};

use super::{
    ApiError, State,
    json::{AppJson, AppQuery, OptionalJson},
    page::{Page, PageQuery},
};
use crate::{
    auth::Caller,
    ops::{
        self,
        recover::{Recovering, Replay},
        webhooks::{Draft, Grace, Issued},
    },
    state::AppState,
};

pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(read).patch(update).delete(remove))
        .route("/webhooks/{id}/resume", post(resume))
        .route("/webhooks/{id}/recover", post(recover))
        .route("/webhooks/{id}/rotate-token", post(rotate_token))
}

/// `POST /v1/webhooks` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateWebhook {
    name: String,
    url: String,
    /// Generated (and shown once) when omitted.
    #[serde(default, deserialize_with = "crate::api::json::present")]
    token: Option<String>,
    events: Vec<String>,
    #[serde(default = "active_by_default")]
    active: bool,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    tenant: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    signature_scheme: Option<String>,
}

fn active_by_default() -> bool {
    true
}

/// `PATCH /v1/webhooks/{id}` body: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateWebhook {
    #[serde(default, deserialize_with = "crate::api::json::present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    url: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    token: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    active: Option<bool>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    signature_scheme: Option<String>,
}

/// A webhook as the API shows it: the token only masked.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookDto {
    id: String,
    tenant: String,
    name: String,
    url: String,
    token: String,
    signature_scheme: &'static str,
    /// While a rotated-out token still signs beside the new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_token_expires_at: Option<String>,
    events: Vec<String>,
    active: bool,
    status: &'static str,
    consecutive_failures: i32,
    last_success_at: Option<String>,
    last_failure_at: Option<String>,
    suspended_at: Option<String>,
    created_at: String,
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
fn token(raw: &str) -> Result<SigningToken, ApiError> {
    SigningToken::parse(raw).map_err(|e| ApiError::invalid_field("token", e))
}
fn scheme(raw: &str) -> Result<SignatureScheme, ApiError> {
    SignatureScheme::parse(raw).map_err(|e| ApiError::invalid_field("signatureScheme", e))
}
fn events(raw: &[String]) -> Result<EventFilters, ApiError> {
    EventFilters::parse(raw).map_err(|e| ApiError::invalid_field("events", e))
}

/// A `tenant` field or parameter.
pub(super) fn tenant(raw: Option<&str>) -> Result<Option<TenantId>, ApiError> {
    raw.map(|t| TenantId::parse(t).map_err(|e| ApiError::invalid_field("tenant", e))).transpose()
}

/// A webhook id from a path or parameter; anything else is a webhook that
/// does not exist.
pub(super) fn webhook_id(raw: &str) -> Result<WebhookId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("webhook"))
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

async fn create(
    state: State,
    caller: Caller,
    AppJson(body): AppJson<CreateWebhook>,
) -> Result<(StatusCode, AppJson<WebhookDto>), ApiError> {
    let issued = ops::webhooks::create(&state, &caller, body.try_into()?).await?;
    Ok((StatusCode::CREATED, AppJson(issued.into())))
}

async fn list(
    state: State,
    caller: Caller,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<AppJson<Page<WebhookDto>>, ApiError> {
    let limit = query.limit()?;
    let tenant = tenant(query.tenant.as_deref())?;
    let webhooks = ops::webhooks::list(&state, &caller, tenant, query.cursor()?, limit).await?;
    Ok(AppJson(Page::new(webhooks.into_iter().map(WebhookDto::from).collect(), limit, |w| w.id.clone())))
}

async fn read(state: State, caller: Caller, Path(id): Path<String>) -> Result<AppJson<WebhookDto>, ApiError> {
    Ok(AppJson(ops::webhooks::get(&state, &caller, webhook_id(&id)?).await?.into()))
}

async fn update(
    state: State,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateWebhook>,
) -> Result<AppJson<WebhookDto>, ApiError> {
    let id = webhook_id(&id)?;
    Ok(AppJson(ops::webhooks::update(&state, &caller, id, &body.try_into()?).await?.into()))
}

async fn remove(state: State, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    ops::webhooks::delete(&state, &caller, webhook_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/webhooks/{id}/resume`: healthy again, failure count cleared.
async fn resume(state: State, caller: Caller, Path(id): Path<String>) -> Result<AppJson<WebhookDto>, ApiError> {
    Ok(AppJson(ops::webhooks::resume(&state, &caller, webhook_id(&id)?).await?.into()))
}

/// `POST /v1/webhooks/{id}/recover` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Recover {
    since: String,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    until: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RecoveringDto {
    /// Deliveries found in the window (at most 10,000 are queued per call).
    count: usize,
    /// Deliveries queued by this call (0 on a dry run).
    queued: usize,
    dry_run: bool,
    /// When the last queued delivery will be attempted, at the recover rate.
    finishes_at: Option<String>,
}

/// `POST /v1/webhooks/{id}/recover`: replays the failed and suspended
/// deliveries created in [since, until), oldest first, at a bounded rate.
async fn recover(
    state: State,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<Recover>,
) -> Result<(StatusCode, AppJson<RecoveringDto>), ApiError> {
    let id = webhook_id(&id)?;
    let since = parse_timestamp(&body.since).map_err(|e| ApiError::invalid_field("since", e))?;
    let until =
        body.until.as_deref().map(parse_timestamp).transpose().map_err(|e| ApiError::invalid_field("until", e))?;
    let replay = Replay { since, until, dry_run: body.dry_run };
    let Recovering { count, queued, dry_run, finishes_at } = ops::recover::recover(&state, &caller, id, replay).await?;
    let status = if dry_run { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, AppJson(RecoveringDto { count, queued, dry_run, finishes_at: finishes_at.map(format_timestamp) })))
}

/// `POST /v1/webhooks/{id}/rotate-token` body (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RotateToken {
    /// The new token; generated (and shown once) when omitted.
    #[serde(default, deserialize_with = "crate::api::json::present")]
    token: Option<String>,
    /// How long the old token keeps signing beside the new one (default a
    /// day, at most a week; 0 ends it at once).
    #[serde(default, deserialize_with = "crate::api::json::present_integer")]
    grace_seconds: Option<i64>,
}

/// `POST /v1/webhooks/{id}/rotate-token`: a new token; during the grace
/// period every delivery carries a signature by each token.
async fn rotate_token(
    state: State,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RotateToken>,
) -> Result<AppJson<WebhookDto>, ApiError> {
    let id = webhook_id(&id)?;
    let grace = match body.grace_seconds {
        None => Grace::DEFAULT,
        Some(seconds) => Grace::from_seconds(seconds).map_err(|e| ApiError::invalid_field("graceSeconds", e))?,
    };
    let token = body.token.as_deref().map(token).transpose()?;
    Ok(AppJson(ops::webhooks::rotate_token(&state, &caller, id, token, grace).await?.into()))
}
