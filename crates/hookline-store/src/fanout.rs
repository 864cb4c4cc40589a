//! Fan-out: who an event goes to. One delivery per subscribed, active
//! webhook of the event's tenant, read for a whole batch of events at once
//! ([`active_webhooks`]) and matched per event ([`Store::fan_out`]); both the
//! early path ([`Store::look_up`]) and the careful one
//! ([`Store::record_events`]) go through here.

use std::collections::HashMap;

use hookline_core::{
    CustomHeaders, DeliveryId, EventFilters, HealthStatus, RateLimit, SignatureScheme, SigningToken, WebhookId,
    WebhookUrl,
};
use time::OffsetDateTime;

use crate::{Error, NewEvent, Result, Store, headers};

/// A delivery of a fresh event that can be attempted at once: everything
/// the attempt needs, read with the fan-out.
#[derive(Clone, Debug)]
pub struct FreshDelivery {
    /// The delivery.
    pub id: DeliveryId,
    /// Its webhook.
    pub webhook_id: WebhookId,
    /// Where to POST.
    pub url: WebhookUrl,
    /// The signing secret.
    pub token: SigningToken,
    /// A rotated-out token still in its grace period, with its end.
    pub previous_token: Option<(SigningToken, OffsetDateTime)>,
    /// How to sign.
    pub scheme: SignatureScheme,
    /// The webhook's health as read with the fan-out (a suspended webhook's
    /// delivery is held, not attempted).
    pub status: HealthStatus,
    /// Its last failed attempt.
    pub last_failure_at: Option<OffsetDateTime>,
    /// Extra request headers.
    pub headers: CustomHeaders,
    /// Its shared rate limit.
    pub rate_limit: Option<RateLimit>,
}

/// An active webhook as a fan-out reads it (its tokens still sealed).
pub(crate) struct WebhookRow {
    id: WebhookId,
    filters: EventFilters,
    status: HealthStatus,
    last_failure_at: Option<OffsetDateTime>,
    url: String,
    token: String,
    previous_token: Option<String>,
    previous_until: Option<OffsetDateTime>,
    scheme: String,
    headers: serde_json::Value,
    rate_limit: Option<i32>,
}

/// The active webhooks of `tenants` (a batch's, repeats and all), by
/// tenant, in id order.
pub(crate) async fn active_webhooks(
    client: &impl deadpool_postgres::GenericClient,
    tenants: &[&str],
) -> Result<HashMap<String, Vec<WebhookRow>>> {
    let mut tenants = tenants.to_vec();
    tenants.sort_unstable();
    tenants.dedup();
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT id, tenant, events, status, last_failure_at, url, token, previous_token,
                    previous_token_expires_at, signature_scheme, headers, rate_limit
             FROM webhooks WHERE tenant = ANY($1) AND active ORDER BY id",
                )
                .await?,
            &[&tenants],
        )
        .await?;
    let bad = |e: &dyn std::fmt::Display| Error::corrupt("webhooks", e);
    let mut by_tenant: HashMap<String, Vec<WebhookRow>> = HashMap::new();
    for row in &rows {
        let events: Vec<String> = row.try_get("events")?;
        by_tenant.entry(row.try_get("tenant")?).or_default().push(WebhookRow {
            id: WebhookId::from_uuid(row.try_get("id")?),
            filters: EventFilters::parse(&events).map_err(|e| bad(&e))?,
            status: HealthStatus::parse(row.try_get("status")?).map_err(|e| bad(&e))?,
            last_failure_at: row.try_get("last_failure_at")?,
            url: row.try_get("url")?,
            token: row.try_get("token")?,
            previous_token: row.try_get("previous_token")?,
            previous_until: row.try_get("previous_token_expires_at")?,
            scheme: row.try_get("signature_scheme")?,
            headers: row.try_get("headers")?,
            rate_limit: row.try_get("rate_limit")?,
        });
    }
    Ok(by_tenant)
}

impl Store {
    /// What an attempt to `webhook` needs, its tokens opened.
    fn fresh_delivery(&self, id: DeliveryId, webhook: &WebhookRow) -> Result<FreshDelivery> {
        let bad = |e: &dyn std::fmt::Display| Error::corrupt("webhooks", e);
        let previous_token = match (&webhook.previous_token, webhook.previous_until) {
            (Some(stored), Some(until)) => Some((self.keys.open(webhook.id, stored)?, until)),
            _ => None,
        };
        Ok(FreshDelivery {
            id,
            webhook_id: webhook.id,
            url: WebhookUrl::parse_stored(&webhook.url).map_err(|e| bad(&e))?,
            token: self.keys.open(webhook.id, &webhook.token)?,
            previous_token,
            scheme: SignatureScheme::parse(&webhook.scheme).map_err(|e| bad(&e))?,
            status: webhook.status,
            last_failure_at: webhook.last_failure_at,
            headers: headers::open(&self.keys, webhook.id, &webhook.headers)?,
            rate_limit: webhook.rate_limit.map(|n| RateLimit::new(n.into())).transpose().map_err(|e| bad(&e))?,
        })
    }

    /// The deliveries of `event`, one per webhook of its tenant in
    /// `by_tenant` whose filters match its type, in webhook id order;
    /// suspended webhooks included (their [`FreshDelivery::status`] says so).
    pub(crate) fn fan_out(
        &self,
        event: &NewEvent,
        by_tenant: &HashMap<String, Vec<WebhookRow>>,
    ) -> Result<Vec<FreshDelivery>> {
        by_tenant
            .get(event.tenant.as_str())
            .into_iter()
            .flatten()
            .filter(|webhook| webhook.filters.matches(&event.event_type))
            .map(|webhook| self.fresh_delivery(event.delivery_id(webhook.id), webhook))
            .collect()
    }
}
