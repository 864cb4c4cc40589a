//! `/v1/webhooks`: create, list, read, update, delete, rotate the token.
//!
//! A token is write-only: reads show it masked. Only a token Hookline
//! generated (none given at creation, or a rotation without one) is shown in
//! full, once, in the answer to the call that generated it.

use axum::{Router, extract::Path, http::StatusCode, routing::get};
use hookline_core::{
    EventFilters, SignatureScheme, SigningToken, TenantId, WebhookId, WebhookName, WebhookUrl, format_timestamp,
};
use hookline_store::{Created, NewWebhook, Webhook, WebhookPatch};
use serde::{Deserialize, Serialize};

use super::{
    State,
    page::{Page, PageQuery},
};
use crate::{
    ApiError,
    auth::Caller,
    json::{AppJson, AppQuery, OptionalJson},
};

pub(super) fn router() -> Router<std::sync::Arc<super::AppState>> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(read).patch(update).delete(remove))
        .route("/webhooks/{id}/resume", axum::routing::post(resume))
        .route("/webhooks/{id}/recover", axum::routing::post(recover))
        .route("/webhooks/{id}/rotate-token", axum::routing::post(rotate_token))
}

/// `POST /v1/webhooks` body (the portal's form fills the same).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateWebhook {
    pub(crate) name: String,
    pub(crate) url: String,
    /// Generated (and shown once) when omitted.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub(crate) token: Option<String>,
    pub(crate) events: Vec<String>,
    #[serde(default = "active_by_default")]
    pub(crate) active: bool,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub(crate) tenant: Option<String>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub(crate) signature_scheme: Option<String>,
}

fn active_by_default() -> bool {
    true
}

/// `PATCH /v1/webhooks/{id}` body: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateWebhook {
    #[serde(default, deserialize_with = "crate::json::present")]
    pub(crate) name: Option<String>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub(crate) url: Option<String>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub(crate) token: Option<String>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub(crate) events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub(crate) active: Option<bool>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub(crate) signature_scheme: Option<String>,
}

/// A webhook as the API shows it: the token only masked.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WebhookDto {
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

impl WebhookDto {
    /// The webhook with its token in full when `show` (a token Hookline has
    /// just generated), else masked.
    fn showing_token(webhook: Webhook, show: bool) -> Self {
        let full = show.then(|| webhook.token.expose().to_owned());
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
/// A fresh `whsec_` token from 32 bytes of the OS's randomness.
fn generated_token() -> Result<SigningToken, ApiError> {
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| ApiError::internal(&NoRandomness))?;
    Ok(SigningToken::parse(&hookline_core::new_secret(random)).expect("a generated secret is a valid token"))
}

/// The token given, or a generated one; the flag says it was generated.
fn given_or_generated(raw: Option<&str>) -> Result<(SigningToken, bool), ApiError> {
    match raw {
        Some(raw) => Ok((token(raw)?, false)),
        None => Ok((generated_token()?, true)),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the operating system gave no randomness")]
struct NoRandomness;

fn events(raw: &[String]) -> Result<EventFilters, ApiError> {
    EventFilters::parse(raw).map_err(|e| ApiError::invalid_field("events", e))
}
pub(super) fn tenant(raw: Option<&str>) -> Result<Option<TenantId>, ApiError> {
    raw.map(|t| TenantId::parse(t).map_err(|e| ApiError::invalid_field("tenant", e))).transpose()
}
pub(crate) fn webhook_id(raw: &str) -> Result<WebhookId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("webhook"))
}

impl CreateWebhook {
    /// Validates the body; the tenant is decided by the caller's rights.
    /// The flag says whether the token was generated.
    fn into_new(self, caller: &Caller) -> Result<(NewWebhook, bool), ApiError> {
        let body = self;
        let scheme = body.signature_scheme.as_deref().map(scheme).transpose()?.unwrap_or_default();
        let (token, generated) = given_or_generated(body.token.as_deref())?;
        let new = NewWebhook {
            tenant: caller.tenant_for_write(tenant(body.tenant.as_deref())?)?,
            name: name(&body.name)?,
            url: url(&body.url)?,
            token,
            scheme,
            events: events(&body.events)?,
            active: body.active,
        };
        Ok((new, generated))
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
    let (webhook, generated) = create_webhook(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, AppJson(WebhookDto::showing_token(webhook, generated))))
}

/// Validates and creates a webhook for `caller` (API and portal alike);
/// the flag says whether its token was generated.
pub(crate) async fn create_webhook(
    state: &super::AppState,
    caller: &Caller,
    body: CreateWebhook,
) -> Result<(Webhook, bool), ApiError> {
    let (new, generated) = body.into_new(caller)?;
    crate::destination::check(&new.url, &state.allowed_networks).await?;
    let id = WebhookId::from_uuid(uuid::Uuid::now_v7());
    let now = time::OffsetDateTime::now_utc();
    let webhook = match state.store.create_webhook(id, &new, now, state.max_webhooks_per_tenant).await? {
        Created::Webhook(webhook) => *webhook,
        Created::LimitReached => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "tenant_webhook_limit",
                format!(
                    "tenant `{}` already has the maximum of {} webhooks; delete one first",
                    new.tenant, state.max_webhooks_per_tenant
                ),
            ));
        }
    };
    tracing::info!(webhook_id = %webhook.id, tenant = %webhook.tenant, "webhook created");
    Ok((webhook, generated))
}

async fn list(
    state: State,
    caller: Caller,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<AppJson<Page<WebhookDto>>, ApiError> {
    let limit = query.limit()?;
    let tenant = caller.tenant_for_read(tenant(query.tenant.as_deref())?)?;
    let webhooks = state.store.list_webhooks(tenant.as_ref(), query.cursor()?, limit).await?;
    let page = Page::new(webhooks.into_iter().map(WebhookDto::from).collect(), limit, |w| w.id.clone());
    Ok(AppJson(page))
}

async fn read(state: State, caller: Caller, Path(id): Path<String>) -> Result<AppJson<WebhookDto>, ApiError> {
    let webhook = state
        .store
        .get_webhook(webhook_id(&id)?, caller.scope())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(AppJson(webhook.into()))
}

async fn update(
    state: State,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateWebhook>,
) -> Result<AppJson<WebhookDto>, ApiError> {
    Ok(AppJson(update_webhook(&state, &caller, webhook_id(&id)?, body).await?.into()))
}

/// Validates and applies a change to a webhook of `caller`'s (API and
/// portal alike).
pub(crate) async fn update_webhook(
    state: &super::AppState,
    caller: &Caller,
    id: WebhookId,
    body: UpdateWebhook,
) -> Result<Webhook, ApiError> {
    let patch = WebhookPatch::try_from(body)?;
    if let Some(url) = &patch.url {
        crate::destination::check(url, &state.allowed_networks).await?;
    }
    state
        .store
        .update_webhook(id, caller.scope(), &patch, time::OffsetDateTime::now_utc())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

async fn remove(state: State, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    if state.store.delete_webhook(webhook_id(&id)?, caller.scope()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook"))
    }
}

/// `POST /v1/webhooks/{id}/resume`: healthy again, failure count cleared.
async fn resume(state: State, caller: Caller, Path(id): Path<String>) -> Result<AppJson<WebhookDto>, ApiError> {
    let webhook = state
        .store
        .resume_webhook(webhook_id(&id)?, caller.scope(), time::OffsetDateTime::now_utc())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    tracing::info!(webhook_id = %webhook.id, "webhook resumed");
    Ok(AppJson(webhook.into()))
}

/// Most deliveries one `recover` call replays; call again for the rest.
const MAX_RECOVER: usize = 10_000;

/// `POST /v1/webhooks/{id}/recover` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Recover {
    since: String,
    #[serde(default, deserialize_with = "crate::json::present")]
    until: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Recovering {
    /// Deliveries found in the window (at most 10,000 are queued per call).
    pub(crate) count: usize,
    /// Deliveries queued by this call (0 on a dry run).
    pub(crate) queued: usize,
    pub(crate) dry_run: bool,
    /// When the last queued delivery will be attempted, at the recover rate.
    pub(crate) finishes_at: Option<String>,
}

/// `POST /v1/webhooks/{id}/recover`: replays the failed and suspended
/// deliveries created in [since, until), oldest first, at a bounded rate.
async fn recover(
    state: State,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<Recover>,
) -> Result<(StatusCode, AppJson<Recovering>), ApiError> {
    let recovering =
        recover_webhook(&state, &caller, webhook_id(&id)?, &body.since, body.until.as_deref(), body.dry_run).await?;
    let status = if recovering.dry_run { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, AppJson(recovering)))
}

/// Counts (`dry_run`) or queues the replay of a webhook's failed and
/// suspended deliveries created in [since, until) (API and portal).
pub(crate) async fn recover_webhook(
    state: &super::AppState,
    caller: &Caller,
    id: WebhookId,
    since: &str,
    until: Option<&str>,
    dry_run: bool,
) -> Result<Recovering, ApiError> {
    use hookline_broker::DeliveryMessage;
    let now = time::OffsetDateTime::now_utc();
    let since = hookline_core::parse_timestamp(since).map_err(|e| ApiError::invalid_field("since", e))?;
    let until = match until {
        Some(raw) => hookline_core::parse_timestamp(raw).map_err(|e| ApiError::invalid_field("until", e))?,
        None => now,
    };
    let webhook = state.store.get_webhook(id, caller.scope()).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    if until <= since {
        // An empty window: nothing to replay.
        return Ok(Recovering { count: 0, queued: 0, dry_run, finishes_at: None });
    }
    let ids = state.store.recoverable(&hookline_store::RecoverWindow { webhook: webhook.id, since, until }).await?;
    let count = ids.len();
    if dry_run {
        return Ok(Recovering { count, queued: 0, dry_run: true, finishes_at: None });
    }
    let batch = &ids[..count.min(MAX_RECOVER)];
    let spacing = time::Duration::milliseconds(1000 / i64::from(state.recover_rate_per_sec.max(1)));
    // Marked first (each only if still failed or suspended), then
    // published: a replay whose message is lost is reconciled like any
    // other step, and what could not be published is unmarked.
    let replays = state.store.mark_replays(batch, now, spacing, now).await?;
    let publisher = match state.publisher() {
        Ok(publisher) => publisher,
        Err(e) => {
            state.store.unmark_replays(&replays, now).await?;
            return Err(e);
        }
    };
    let now_ms = hookline_core::fence::unix_ms(now);
    for (i, replay) in replays.iter().enumerate() {
        let due = &replay.due;
        let message = DeliveryMessage::due(
            due.id.as_uuid(),
            due.webhook_id.as_uuid(),
            hookline_core::fence::unix_ms(due.at),
            due.trigger,
        );
        if let Err(e) = publisher.schedule(&message, now_ms).await {
            tracing::error!(error.message = %e, "publishing a recover message failed");
            let undone = state.store.unmark_replays(&replays[i..], now).await?;
            tracing::info!(webhook_id = %webhook.id, queued = i, undone, "recover stopped; the rest is unmarked");
            return Err(ApiError::broker_unavailable());
        }
    }
    let last_due = replays.last().map(|r| r.due.at);
    tracing::info!(webhook_id = %webhook.id, count, queued = replays.len(), "recover queued");
    Ok(Recovering { count, queued: replays.len(), dry_run: false, finishes_at: last_due.map(format_timestamp) })
}

/// Longest grace period of a rotation: a week.
const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;

/// `POST /v1/webhooks/{id}/rotate-token` body (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RotateToken {
    /// The new token; generated (and shown once) when omitted.
    #[serde(default, deserialize_with = "crate::json::present")]
    token: Option<String>,
    /// How long the old token keeps signing beside the new one (default a
    /// day, at most a week; 0 ends it at once).
    #[serde(default, deserialize_with = "crate::json::present_integer")]
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
    let (webhook, generated) =
        rotate_webhook_token(&state, &caller, webhook_id(&id)?, body.token.as_deref(), body.grace_seconds).await?;
    Ok(AppJson(WebhookDto::showing_token(webhook, generated)))
}

/// Rotates a webhook's token (generated when `token` is `None`; the flag
/// says so); the old one signs beside it for `grace_seconds` (default a
/// day). API and portal alike.
pub(crate) async fn rotate_webhook_token(
    state: &super::AppState,
    caller: &Caller,
    id: WebhookId,
    token: Option<&str>,
    grace_seconds: Option<i64>,
) -> Result<(Webhook, bool), ApiError> {
    let grace = grace_seconds.unwrap_or(24 * 3600);
    if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
        return Err(ApiError::invalid_field("graceSeconds", format!("must be 0 to {MAX_GRACE_SECONDS} (a week)")));
    }
    let (new_token, generated) = given_or_generated(token)?;
    let current = state.store.get_webhook(id, caller.scope()).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    if new_token == current.token {
        // The token it already has: nothing to rotate.
        return Ok((current, false));
    }
    let now = time::OffsetDateTime::now_utc();
    let webhook = state
        .store
        .rotate_token(id, caller.scope(), &new_token, now + time::Duration::seconds(grace), now)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    tracing::info!(webhook_id = %webhook.id, grace_seconds = grace, "webhook token rotated");
    Ok((webhook, generated))
}
