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
use hookline_core::{TenantId, WebhookId, format_timestamp, parse_timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod body;

use body::{CreateWebhook, UpdateWebhook, WebhookDto, token};

use super::{
    ApiError, State,
    json::{AppJson, AppQuery, OptionalJson},
    listing::{ListQuery, Listing},
    openapi::{Forbidden, HeaderConflict, NotFound},
    schema,
};
use crate::{
    auth::Caller,
    ops::{
        self,
        recover::{Recovering, Replay},
        webhooks::Grace,
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

/// A `tenant` field or parameter.
pub(super) fn tenant(raw: Option<&str>) -> Result<Option<TenantId>, ApiError> {
    raw.map(|t| TenantId::parse(t).map_err(|e| ApiError::invalid_field("tenant", e))).transpose()
}

/// A webhook id from a path or parameter; anything else is a webhook that
/// does not exist.
pub(super) fn webhook_id(raw: &str) -> Result<WebhookId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("webhook"))
}

#[utoipa::path(post, path = "/v1/webhooks", operation_id = "createWebhook", tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created; the token in full when Hookline generated it", body = WebhookDto),
        (status = 403, response = Forbidden),
    ))]
async fn create(
    state: State,
    caller: Caller,
    AppJson(body): AppJson<CreateWebhook>,
) -> Result<(StatusCode, AppJson<WebhookDto>), ApiError> {
    let issued = ops::webhooks::create(&state, &caller, body.try_into()?).await?;
    Ok((StatusCode::CREATED, AppJson(issued.into())))
}

#[utoipa::path(get, path = "/v1/webhooks", operation_id = "listWebhooks", tag = "webhooks",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("cursor" = Option<uuid::Uuid>, Query, description = "`nextCursor` of the previous page"),
        ("tenant" = Option<schema::TenantId>, Query, description = "Only this tenant's (admin)"),
    ),
    responses((status = 200, description = "A page, by id", body = Listing<WebhookDto>), (status = 403, response = Forbidden)))]
async fn list(
    state: State,
    caller: Caller,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<AppJson<Listing<WebhookDto>>, ApiError> {
    let limit = query.limit()?;
    let tenant = tenant(query.tenant.as_deref())?;
    let webhooks = ops::webhooks::list(&state, &caller, tenant, query.cursor()?, limit).await?;
    Ok(AppJson(Listing::new(webhooks.into_iter().map(WebhookDto::from).collect(), limit, |w| w.id.clone())))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", operation_id = "getWebhook", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    responses((status = 200, description = "The webhook", body = WebhookDto), (status = 404, response = NotFound)))]
async fn read(state: State, caller: Caller, Path(id): Path<String>) -> Result<AppJson<WebhookDto>, ApiError> {
    Ok(AppJson(ops::webhooks::get(&state, &caller, webhook_id(&id)?).await?.into()))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", operation_id = "updateWebhook", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The updated webhook", body = WebhookDto),
        (status = 404, response = NotFound),
        (status = 409, response = HeaderConflict),
    ))]
async fn update(
    state: State,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateWebhook>,
) -> Result<AppJson<WebhookDto>, ApiError> {
    let id = webhook_id(&id)?;
    let current =
        if body.keeps_a_header() { ops::webhooks::get(&state, &caller, id).await?.headers } else { Default::default() };
    let patch = body.into_patch(&current)?;
    Ok(AppJson(ops::webhooks::update(&state, &caller, id, &patch).await?.into()))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", operation_id = "deleteWebhook", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    responses((status = 204, description = "Deleted"), (status = 404, response = NotFound)))]
async fn remove(state: State, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    ops::webhooks::delete(&state, &caller, webhook_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/webhooks/{id}/resume`: healthy again, failure count cleared.
#[utoipa::path(post, path = "/v1/webhooks/{id}/resume", operation_id = "resumeWebhook", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    responses((status = 200, description = "The webhook, healthy", body = WebhookDto), (status = 404, response = NotFound)))]
async fn resume(state: State, caller: Caller, Path(id): Path<String>) -> Result<AppJson<WebhookDto>, ApiError> {
    Ok(AppJson(ops::webhooks::resume(&state, &caller, webhook_id(&id)?).await?.into()))
}

/// `POST /v1/webhooks/{id}/recover` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Recover {
    /// Deliveries created at or after this instant.
    #[schema(format = DateTime)]
    since: String,
    /// Deliveries created before this instant (default: now).
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(format = DateTime, nullable = false)]
    until: Option<String>,
    /// Count, queue nothing.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Recovering)]
pub(super) struct RecoveringDto {
    /// Deliveries found in the window (at most 10,000 are queued per call).
    count: usize,
    /// Deliveries queued by this call (0 on a dry run).
    queued: usize,
    dry_run: bool,
    /// When the last queued delivery will be attempted, at the recover rate.
    #[schema(format = DateTime)]
    finishes_at: Option<String>,
    /// Set when the window reaches back past retention
    /// (`HOOKLINE_RETENTION`): deliveries created before this instant have
    /// been removed and cannot be replayed; `count` covers the rest.
    #[schema(format = DateTime)]
    expired_before: Option<String>,
    /// Says so in a sentence when `expiredBefore` is set.
    message: Option<String>,
}

impl From<Recovering> for RecoveringDto {
    fn from(r: Recovering) -> Self {
        let message = r.expired_before.map(|cutoff| {
            format!(
                "Deliveries created before {} are past retention and have been removed: they cannot be replayed. \
                 The count covers the rest of the window.",
                format_timestamp(cutoff)
            )
        });
        Self {
            count: r.count,
            queued: r.queued,
            dry_run: r.dry_run,
            finishes_at: r.finishes_at.map(format_timestamp),
            expired_before: r.expired_before.map(format_timestamp),
            message,
        }
    }
}

/// `POST /v1/webhooks/{id}/recover`: replays the failed and suspended
/// deliveries created in [since, until), oldest first, at a bounded rate.
#[utoipa::path(post, path = "/v1/webhooks/{id}/recover", operation_id = "recoverWebhook", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    request_body = Recover,
    responses(
        (status = 200, description = "Dry run: counted, nothing queued", body = RecoveringDto),
        (status = 202, description = "Queued", body = RecoveringDto),
        (status = 404, response = NotFound),
    ))]
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
    let recovering = ops::recover::recover(&state, &caller, id, replay).await?;
    let status = if recovering.dry_run { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, AppJson(recovering.into())))
}

/// `POST /v1/webhooks/{id}/rotate-token` body (may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RotateToken {
    /// The new token; generated (and shown once) when omitted.
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = schema::SigningToken)]
    token: Option<String>,
    /// How long the old token keeps signing beside the new one (default a
    /// day, at most a week; 0 ends it at once).
    #[serde(default, deserialize_with = "crate::api::json::present_integer")]
    #[schema(value_type = i64, minimum = 0, maximum = 604_800)]
    grace_seconds: Option<i64>,
}

/// `POST /v1/webhooks/{id}/rotate-token`: a new token; during the grace
/// period every delivery carries a signature by each token.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-token", operation_id = "rotateWebhookToken", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    request_body(content = Option<RotateToken>, description = "May be left out"),
    responses(
        (status = 200, description = "The webhook; the token in full when Hookline generated it", body = WebhookDto),
        (status = 404, response = NotFound),
    ))]
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
