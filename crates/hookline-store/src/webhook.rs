//! Webhooks: create, read, list, update, delete, rotate the token.
//!
//! Tokens are sealed on the way in and opened on the way out
//! ([`crate::secret`]): no query writes or reads one in plaintext.

use hookline_core::{
    CustomHeaders, EventFilters, HealthStatus, RateLimit, Recovery, SignatureScheme, SigningToken, TenantId, WebhookId,
    WebhookName, WebhookUrl,
};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::{Error, Result, Store, headers, secret::EncryptionKeys};

/// A webhook as stored.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// The account it belongs to; it only ever sees this tenant's events.
    pub tenant: TenantId,
    /// Human label.
    pub name: WebhookName,
    /// Where deliveries are POSTed.
    pub url: WebhookUrl,
    /// The signing secret.
    pub token: SigningToken,
    /// How deliveries are signed.
    pub scheme: SignatureScheme,
    /// Until when the token replaced by the last rotation still signs.
    pub previous_token_expires_at: Option<OffsetDateTime>,
    /// Event types and patterns it subscribes to.
    pub events: EventFilters,
    /// When false, nothing is sent and nothing is logged for it.
    pub active: bool,
    /// Extra request headers.
    pub headers: CustomHeaders,
    /// At most this many requests per second, across all workers.
    pub rate_limit: Option<RateLimit>,
    /// Probes (and replay) while suspended.
    pub recovery: Recovery,
    /// Health, derived from recent attempts.
    pub status: HealthStatus,
    /// Failed attempts since the last success.
    pub consecutive_failures: i32,
    /// The last successful attempt (to within a second).
    pub last_success_at: Option<OffsetDateTime>,
    /// The last failed attempt.
    pub last_failure_at: Option<OffsetDateTime>,
    /// When it was suspended, while it is.
    pub suspended_at: Option<OffsetDateTime>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    pub updated_at: OffsetDateTime,
}

/// What it takes to create a webhook.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    /// The account it belongs to.
    pub tenant: TenantId,
    /// Human label.
    pub name: WebhookName,
    /// Where deliveries are POSTed.
    pub url: WebhookUrl,
    /// The signing secret.
    pub token: SigningToken,
    /// How deliveries are signed.
    pub scheme: SignatureScheme,
    /// Event types and patterns it subscribes to.
    pub events: EventFilters,
    /// Whether it receives events.
    pub active: bool,
    /// Extra request headers.
    pub headers: CustomHeaders,
    /// At most this many requests per second.
    pub rate_limit: Option<RateLimit>,
    /// Probes (and replay) while suspended.
    pub recovery: Recovery,
}

/// A partial update: `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WebhookPatch {
    /// New label.
    pub name: Option<WebhookName>,
    /// New URL.
    pub url: Option<WebhookUrl>,
    /// New signing secret (replacing the old one at once, no grace period).
    pub token: Option<SigningToken>,
    /// New signature scheme.
    pub scheme: Option<SignatureScheme>,
    /// New subscriptions.
    pub events: Option<EventFilters>,
    /// New active flag.
    pub active: Option<bool>,
    /// New extra headers (the whole list).
    pub headers: Option<CustomHeaders>,
    /// New rate limit: `Some(None)` removes it.
    pub rate_limit: Option<Option<RateLimit>>,
    /// New recovery settings.
    pub recovery: Option<Recovery>,
}

/// The result of [`Store::create_webhook`].
#[derive(Clone, Debug)]
pub enum Created {
    /// The new webhook.
    Webhook(Box<Webhook>),
    /// The tenant already has the maximum number of webhooks.
    LimitReached,
}

const COLUMNS: &str = "id, tenant, name, url, token, signature_scheme, previous_token_expires_at, events, active, status, \
     consecutive_failures, last_success_at, last_failure_at, suspended_at, created_at, updated_at, headers, rate_limit, \
     recovery_probe, recovery_replay";

fn from_row(keys: &EncryptionKeys, row: &Row) -> Result<Webhook> {
    let bad = |e: &dyn std::fmt::Display| Error::corrupt("webhooks", e);
    let events: Vec<String> = row.try_get("events")?;
    let id = WebhookId::from_uuid(row.try_get("id")?);
    Ok(Webhook {
        id,
        tenant: TenantId::parse(row.try_get("tenant")?).map_err(|e| bad(&e))?,
        name: WebhookName::parse(row.try_get("name")?).map_err(|e| bad(&e))?,
        url: WebhookUrl::parse_stored(row.try_get("url")?).map_err(|e| bad(&e))?,
        token: keys.open(id, row.try_get("token")?)?,
        scheme: SignatureScheme::parse(row.try_get("signature_scheme")?).map_err(|e| bad(&e))?,
        previous_token_expires_at: row.try_get("previous_token_expires_at")?,
        events: EventFilters::parse(&events).map_err(|e| bad(&e))?,
        active: row.try_get("active")?,
        headers: headers::open(keys, id, &row.try_get("headers")?)?,
        rate_limit: row
            .try_get::<_, Option<i32>>("rate_limit")?
            .map(|n| RateLimit::new(n.into()))
            .transpose()
            .map_err(|e| bad(&e))?,
        recovery: Recovery::new(row.try_get("recovery_probe")?, row.try_get("recovery_replay")?),
        status: HealthStatus::parse(row.try_get("status")?).map_err(|e| bad(&e))?,
        consecutive_failures: row.try_get("consecutive_failures")?,
        last_success_at: row.try_get("last_success_at")?,
        last_failure_at: row.try_get("last_failure_at")?,
        suspended_at: row.try_get("suspended_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A rate limit as its column holds it (at most 10,000: fits).
fn limit_column(limit: RateLimit) -> i32 {
    i32::try_from(limit.per_second()).unwrap_or(i32::MAX)
}

impl Store {
    /// Inserts a new webhook, healthy, with the given id and creation time,
    /// unless its tenant already has `max_per_tenant` webhooks. The count is
    /// exact under concurrent creates (a per-tenant transaction lock).
    pub async fn create_webhook(
        &self,
        id: WebhookId,
        new: &NewWebhook,
        now: OffsetDateTime,
        max_per_tenant: i64,
    ) -> Result<Created> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('webhooks:' || $1))", &[&new.tenant.as_str()]).await?;
        let count: i64 = tx
            .query_one("SELECT count(*) FROM webhooks WHERE tenant = $1", &[&new.tenant.as_str()])
            .await?
            .try_get(0)?;
        if count >= max_per_tenant {
            return Ok(Created::LimitReached);
        }
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO webhooks (id, tenant, name, url, token, events, active, created_at, updated_at,
                                           signature_scheme, headers, rate_limit, recovery_probe, recovery_replay)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12, $13) RETURNING {COLUMNS}"
                ),
                &[
                    &id.as_uuid(),
                    &new.tenant.as_str(),
                    &new.name.as_str(),
                    &new.url.as_str(),
                    &self.keys.seal(id, &new.token)?,
                    &new.events.as_strings(),
                    &new.active,
                    &now,
                    &new.scheme.as_str(),
                    &headers::seal(&self.keys, id, &new.headers)?,
                    &new.rate_limit.map(limit_column),
                    &new.recovery.probe(),
                    &new.recovery.replay(),
                ],
            )
            .await?;
        let webhook = from_row(&self.keys, &row)?;
        tx.commit().await?;
        Ok(Created::Webhook(Box::new(webhook)))
    }

    /// One webhook, if it exists (and belongs to `tenant`, when given).
    pub async fn get_webhook(&self, id: WebhookId, tenant: Option<&TenantId>) -> Result<Option<Webhook>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)"),
                &[&id.as_uuid(), &tenant.map(TenantId::as_str)],
            )
            .await?;
        row.as_ref().map(|r| from_row(&self.keys, r)).transpose()
    }

    /// A webhook's health and whether it is active, read now (`None`: it is
    /// gone). Read just before a request whose webhook was looked up a
    /// while ago (another worker may have recorded a `410` meanwhile).
    pub async fn standing(&self, id: WebhookId) -> Result<Option<(HealthStatus, bool)>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &client.prepare_cached("SELECT status, active FROM webhooks WHERE id = $1").await?,
                &[&id.as_uuid()],
            )
            .await?;
        row.map(|r| {
            let status = HealthStatus::parse(r.try_get("status")?).map_err(|e| Error::corrupt("webhooks", e))?;
            Ok((status, r.try_get("active")?))
        })
        .transpose()
    }

    /// A page of webhooks in creation order, after the cursor `after`.
    pub async fn list_webhooks(
        &self,
        tenant: Option<&TenantId>,
        after: Option<WebhookId>,
        limit: i64,
    ) -> Result<Vec<Webhook>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM webhooks
                     WHERE ($1::text IS NULL OR tenant = $1) AND ($2::uuid IS NULL OR id > $2)
                     ORDER BY id LIMIT $3"
                ),
                &[&tenant.map(TenantId::as_str), &after.map(|id| id.as_uuid()), &limit],
            )
            .await?;
        rows.iter().map(|r| from_row(&self.keys, r)).collect()
    }

    /// Applies `patch`; `None` when the webhook does not exist (or belongs to
    /// another tenant than `tenant`).
    pub async fn update_webhook(
        &self,
        id: WebhookId,
        tenant: Option<&TenantId>,
        patch: &WebhookPatch,
        now: OffsetDateTime,
    ) -> Result<Option<Webhook>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE webhooks SET
                        name = COALESCE($3, name),
                        url = COALESCE($4, url),
                        token = COALESCE($5, token),
                        previous_token = CASE WHEN $5 IS NULL THEN previous_token END,
                        previous_token_expires_at = CASE WHEN $5 IS NULL THEN previous_token_expires_at END,
                        events = COALESCE($6, events),
                        active = COALESCE($7, active),
                        updated_at = $8,
                        signature_scheme = COALESCE($9, signature_scheme),
                        headers = COALESCE($10, headers),
                        rate_limit = CASE WHEN $11 THEN $12 ELSE rate_limit END,
                        recovery_probe = COALESCE($13, recovery_probe),
                        recovery_replay = COALESCE($14, recovery_replay)
                     WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)
                     RETURNING {COLUMNS}"
                ),
                &[
                    &id.as_uuid(),
                    &tenant.map(TenantId::as_str),
                    &patch.name.as_ref().map(WebhookName::as_str),
                    &patch.url.as_ref().map(WebhookUrl::as_str),
                    &patch.token.as_ref().map(|t| self.keys.seal(id, t)).transpose()?,
                    &patch.events.as_ref().map(EventFilters::as_strings),
                    &patch.active,
                    &now,
                    &patch.scheme.map(SignatureScheme::as_str),
                    &patch.headers.as_ref().map(|h| headers::seal(&self.keys, id, h)).transpose()?,
                    &patch.rate_limit.is_some(),
                    &patch.rate_limit.flatten().map(limit_column),
                    &patch.recovery.map(Recovery::probe),
                    &patch.recovery.map(Recovery::replay),
                ],
            )
            .await?;
        row.as_ref().map(|r| from_row(&self.keys, r)).transpose()
    }

    /// Deletes a webhook and its event log; false when it did not exist.
    /// Its deliveries go through their key's cascade; their attempts have
    /// no key to cascade through (a partition referenced by one could not
    /// be dropped cheaply: V0014), so they are deleted in the same
    /// transaction, first.
    pub async fn delete_webhook(&self, id: WebhookId, tenant: Option<&TenantId>) -> Result<bool> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let tenant = tenant.map(TenantId::as_str);
        // Attempts first: the webhook's delete cascades to its deliveries,
        // and the attempts are found through them.
        tx.execute(
            "DELETE FROM attempts a USING deliveries d, webhooks w
             WHERE a.delivery_id = d.id AND d.webhook_id = w.id AND w.id = $1 AND ($2::text IS NULL OR w.tenant = $2)",
            &[&id.as_uuid(), &tenant],
        )
        .await?;
        let n = tx
            .execute(
                "DELETE FROM webhooks WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)",
                &[&id.as_uuid(), &tenant],
            )
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }
}

impl Store {
    /// Makes a webhook healthy again (from any state), clearing its failure
    /// count; `None` when it does not exist for `tenant`.
    pub async fn resume_webhook(
        &self,
        id: WebhookId,
        tenant: Option<&TenantId>,
        now: OffsetDateTime,
    ) -> Result<Option<Webhook>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE webhooks SET status = 'healthy', consecutive_failures = 0, suspended_at = NULL, probe_until = NULL, probes = 0,
                                        recovery_next_at = NULL, recovery_interval_ms = NULL, updated_at = $3
                     WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)
                     RETURNING {COLUMNS}"
                ),
                &[&id.as_uuid(), &tenant.map(TenantId::as_str), &now],
            )
            .await?;
        row.as_ref().map(|r| from_row(&self.keys, r)).transpose()
    }
}

impl Store {
    /// Replaces the token with `token`; the old one keeps signing beside it
    /// until `grace_until` (no grace when that is not after `now`). A token
    /// still in an earlier grace period is dropped. `None` when the webhook
    /// does not exist for `tenant`.
    pub async fn rotate_token(
        &self,
        id: WebhookId,
        tenant: Option<&TenantId>,
        token: &SigningToken,
        grace_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Webhook>> {
        let client = self.pool.get().await?;
        let in_grace = grace_until > now;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE webhooks SET
                        previous_token = CASE WHEN $4 THEN token END,
                        previous_token_expires_at = CASE WHEN $4 THEN $5::timestamptz END,
                        token = $3,
                        updated_at = $6
                     WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)
                     RETURNING {COLUMNS}"
                ),
                &[
                    &id.as_uuid(),
                    &tenant.map(TenantId::as_str),
                    &self.keys.seal(id, token)?,
                    &in_grace,
                    &grace_until,
                    &now,
                ],
            )
            .await?;
        row.as_ref().map(|r| from_row(&self.keys, r)).transpose()
    }
}

impl Store {
    /// How many webhooks are in each health state (states with none are
    /// left out).
    pub async fn webhook_counts(&self) -> Result<Vec<(String, i64)>> {
        let client = self.pool.get().await?;
        let rows = client.query("SELECT status, count(*) FROM webhooks GROUP BY status", &[]).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }
}
