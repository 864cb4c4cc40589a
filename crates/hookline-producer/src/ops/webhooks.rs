//! Webhooks: create, list, read, update, delete, resume, rotate the token,
//! and send a test event; a webhook's health changes and attempts per hour
//! (its portal page).
//!
//! A token Hookline generates (none given at creation, or a rotation
//! without one) is returned once, flagged, for the caller to show in full;
//! everything else shows tokens masked.

use hookline_broker::DeliveryMessage;
use hookline_core::{
    CustomHeaders, DeliveryId, Event, EventFilters, EventId, EventType, RateLimit, Recovery, SignatureScheme,
    SigningToken, TenantId, WebhookId, WebhookName, WebhookUrl,
};
use hookline_store::{Created, HealthChange, HourlyAttempts, NewWebhook, Webhook, WebhookPatch};
use time::OffsetDateTime;

use super::{Error, Resource, Result, destination};
use crate::{auth::Caller, state::AppState};

/// A webhook to create, its fields validated.
#[derive(Debug)]
pub(crate) struct Draft {
    /// The tenant asked for (an admin's choice, `default` when absent).
    pub(crate) tenant: Option<TenantId>,
    pub(crate) name: WebhookName,
    pub(crate) url: WebhookUrl,
    /// Generated when absent.
    pub(crate) token: Option<SigningToken>,
    pub(crate) scheme: SignatureScheme,
    pub(crate) events: EventFilters,
    pub(crate) active: bool,
    pub(crate) headers: CustomHeaders,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) recovery: Recovery,
}

/// A webhook, and whether its token was just generated (then it is shown
/// in full, this once).
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) webhook: Webhook,
    pub(crate) token_generated: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the operating system gave no randomness")]
struct NoRandomness;

/// A fresh `whsec_` token from 32 bytes of the OS's randomness.
fn generated_token() -> Result<SigningToken> {
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| Error::Internal(Box::new(NoRandomness)))?;
    Ok(SigningToken::parse(&hookline_core::new_secret(random)).expect("a generated secret is a valid token"))
}

/// The token given, or a generated one (flagged).
fn given_or_generated(token: Option<SigningToken>) -> Result<(SigningToken, bool)> {
    match token {
        Some(token) => Ok((token, false)),
        None => Ok((generated_token()?, true)),
    }
}

/// Creates a webhook for `caller`, in the tenant its rights decide.
pub(crate) async fn create(state: &AppState, caller: &Caller, draft: Draft) -> Result<Issued> {
    let tenant = caller.tenant_for_write(draft.tenant)?;
    let (token, token_generated) = given_or_generated(draft.token)?;
    destination::check(&draft.url, &state.allowed_networks).await.map_err(Error::Blocked)?;
    let new = NewWebhook {
        tenant,
        name: draft.name,
        url: draft.url,
        token,
        scheme: draft.scheme,
        events: draft.events,
        active: draft.active,
        headers: draft.headers,
        rate_limit: draft.rate_limit,
        recovery: draft.recovery,
    };
    let id = WebhookId::from_uuid(uuid::Uuid::now_v7());
    let now = OffsetDateTime::now_utc();
    let webhook = match state.store.create_webhook(id, &new, now, state.max_webhooks_per_tenant).await? {
        Created::Webhook(webhook) => *webhook,
        Created::LimitReached => {
            return Err(Error::WebhookLimit { tenant: new.tenant, max: state.max_webhooks_per_tenant });
        }
    };
    tracing::info!(webhook_id = %webhook.id, tenant = %webhook.tenant, "webhook created");
    Ok(Issued { webhook, token_generated })
}

/// One page of the webhooks `caller` sees (of `tenant`, when asked), by id
/// after `after`.
pub(crate) async fn list(
    state: &AppState,
    caller: &Caller,
    tenant: Option<TenantId>,
    after: Option<WebhookId>,
    limit: i64,
) -> Result<Vec<Webhook>> {
    let tenant = caller.tenant_for_read(tenant)?;
    Ok(state.store.list_webhooks(tenant.as_ref(), after, limit).await?)
}

/// One webhook `caller` sees.
pub(crate) async fn get(state: &AppState, caller: &Caller, id: WebhookId) -> Result<Webhook> {
    state.store.get_webhook(id, caller.scope()).await?.ok_or(Error::NotFound(Resource::Webhook))
}

/// Applies a change (its fields validated) to a webhook of `caller`'s.
pub(crate) async fn update(state: &AppState, caller: &Caller, id: WebhookId, patch: &WebhookPatch) -> Result<Webhook> {
    if let Some(url) = &patch.url {
        destination::check(url, &state.allowed_networks).await.map_err(Error::Blocked)?;
    }
    state
        .store
        .update_webhook(id, caller.scope(), patch, OffsetDateTime::now_utc())
        .await?
        .ok_or(Error::NotFound(Resource::Webhook))
}

/// Deletes a webhook of `caller`'s, with its event log.
pub(crate) async fn delete(state: &AppState, caller: &Caller, id: WebhookId) -> Result<()> {
    if state.store.delete_webhook(id, caller.scope()).await? {
        tracing::info!(webhook_id = %id, "webhook deleted");
        Ok(())
    } else {
        Err(Error::NotFound(Resource::Webhook))
    }
}

/// Healthy again, failure count cleared.
pub(crate) async fn resume(state: &AppState, caller: &Caller, id: WebhookId) -> Result<Webhook> {
    let webhook = state
        .store
        .resume_webhook(id, caller.scope(), OffsetDateTime::now_utc())
        .await?
        .ok_or(Error::NotFound(Resource::Webhook))?;
    tracing::info!(webhook_id = %webhook.id, "webhook resumed");
    Ok(webhook)
}

/// How long a rotated-out token keeps signing beside the new one: at most
/// a week, a day by default, 0 ends it at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grace(time::Duration);

/// A grace period longer than a week, or negative.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("must be 0 to {max} (a week)", max = Grace::MAX_SECONDS)]
pub(crate) struct GraceOutOfRange;

impl Grace {
    /// The longest grace period, in seconds.
    pub(crate) const MAX_SECONDS: i64 = 7 * 24 * 3600;
    /// A day.
    pub(crate) const DEFAULT: Self = Self(time::Duration::DAY);

    /// A grace period of `seconds`, 0 to [`Self::MAX_SECONDS`].
    pub(crate) fn from_seconds(seconds: i64) -> Result<Self, GraceOutOfRange> {
        if (0..=Self::MAX_SECONDS).contains(&seconds) {
            Ok(Self(time::Duration::seconds(seconds)))
        } else {
            Err(GraceOutOfRange)
        }
    }
}

/// Rotates a webhook's token to `token` (generated when `None`, flagged);
/// the old one signs beside it for `grace`. Rotating to the token it
/// already has changes nothing.
pub(crate) async fn rotate_token(
    state: &AppState,
    caller: &Caller,
    id: WebhookId,
    token: Option<SigningToken>,
    grace: Grace,
) -> Result<Issued> {
    let (new_token, token_generated) = given_or_generated(token)?;
    let current = get(state, caller, id).await?;
    if new_token == current.token {
        return Ok(Issued { webhook: current, token_generated: false });
    }
    let now = OffsetDateTime::now_utc();
    let webhook = state
        .store
        .rotate_token(id, caller.scope(), &new_token, now + grace.0, now)
        .await?
        .ok_or(Error::NotFound(Resource::Webhook))?;
    tracing::info!(webhook_id = %webhook.id, grace_seconds = grace.0.whole_seconds(), "webhook token rotated");
    Ok(Issued { webhook, token_generated })
}

/// One `hookline.test` event to this webhook only, attempted at once
/// whatever its health (a success makes it healthy). The delivery is
/// recorded with its due time before it is published, so a failed publish
/// is only late: reconciliation publishes it.
pub(crate) async fn send_test(state: &AppState, caller: &Caller, id: WebhookId) -> Result<DeliveryId> {
    let now = OffsetDateTime::now_utc();
    let event_type = EventType::parse("hookline.test").expect("a valid event type");
    let data = serde_json::json!({
        "test": true,
        "webhookId": id.to_string(),
        "message": "A test event sent from the Hookline portal.",
    });
    let body = Event::new(event_type.clone(), data, now).to_body();
    let event_id = EventId::generate(uuid::Uuid::now_v7());
    let delivery = state
        .store
        .create_test_delivery(id, caller.scope(), &event_id, event_type.as_str(), &body, now)
        .await?
        .ok_or(Error::NotFound(Resource::Webhook))?;
    let message = DeliveryMessage::due(
        delivery.id.as_uuid(),
        id.as_uuid(),
        hookline_core::fence::unix_ms(delivery.at),
        delivery.trigger,
    );
    let published = match state.publisher() {
        Some(publisher) => publisher.publish_now(&message).await.is_ok(),
        None => false,
    };
    if !published {
        tracing::warn!(delivery_id = %delivery.id, "publishing a test send failed; reconciliation will send it");
    }
    Ok(delivery.id)
}

/// Event types seen lately (for suggestions).
pub(crate) async fn recent_event_types(state: &AppState, caller: &Caller) -> Result<Vec<String>> {
    Ok(state.store.recent_event_types(caller.scope()).await?)
}

/// A webhook's latest `limit` health changes, newest first (none when
/// `caller` does not see it).
pub(crate) async fn health_changes(
    state: &AppState,
    caller: &Caller,
    id: WebhookId,
    limit: i64,
) -> Result<Vec<HealthChange>> {
    Ok(state.store.health_changes(caller.scope(), id, limit).await?)
}

/// `webhook`'s attempts per hour over the last 24 hours, delivered and
/// failed; `webhook` as [`get`] read it for `caller`.
pub(crate) async fn hourly_attempts(state: &AppState, caller: &Caller, webhook: &Webhook) -> Result<HourlyAttempts> {
    if caller.scope().is_some_and(|tenant| *tenant != webhook.tenant) {
        return Err(Error::NotFound(Resource::Webhook));
    }
    Ok(state.store.hourly_attempts(webhook, OffsetDateTime::now_utc()).await?)
}
