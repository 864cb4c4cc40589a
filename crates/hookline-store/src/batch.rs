//! Many rows in one round trip: the worker's hot path records fresh events
//! with their deliveries, successful attempts, and dispatched marks for
//! whole batches at once (group commit), so the cost of a commit is shared
//! by every delivery in it.

use std::collections::HashMap;

use hookline_core::{
    DeliveryId, DeliveryState, EventFilters, EventId, HealthStatus, SignatureScheme, SigningToken, TenantId, WebhookId,
    WebhookUrl,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Dispatch, Error, NewEvent, Result, Store};

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
    /// The webhook's health (never suspended: those deliveries are held).
    pub status: HealthStatus,
    /// Its last failed attempt.
    pub last_failure_at: Option<OffsetDateTime>,
}

/// What recording one event of a batch gave.
#[derive(Clone, Debug)]
pub enum Recorded {
    /// A new event: its deliveries to attempt now (suspended webhooks'
    /// deliveries are recorded as held and not listed).
    Fresh(Vec<FreshDelivery>),
    /// Seen before: as [`Store::record_event`] says.
    Seen(Dispatch),
}

/// An active webhook as a fan-out reads it (its tokens still sealed).
pub(crate) struct WebhookRow {
    pub(crate) id: WebhookId,
    pub(crate) filters: EventFilters,
    pub(crate) status: HealthStatus,
    last_failure_at: Option<OffsetDateTime>,
    url: String,
    token: String,
    previous_token: Option<String>,
    previous_until: Option<OffsetDateTime>,
    scheme: String,
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
                    previous_token_expires_at, signature_scheme
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
        });
    }
    Ok(by_tenant)
}

impl Store {
    /// What an attempt to `webhook` needs, its tokens opened.
    pub(crate) fn fresh_delivery(&self, id: DeliveryId, webhook: &WebhookRow) -> Result<FreshDelivery> {
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
        })
    }

    /// Records a batch of events in one transaction: each new one with one
    /// delivery per subscribed, active webhook of its tenant. An event seen
    /// before (a redelivery, a repeated id) is handled one by one as
    /// [`Store::record_event`] does. Results are in the order of `events`.
    pub async fn record_events(
        &self,
        events: &[NewEvent],
        now: OffsetDateTime,
        in_progress_for: time::Duration,
    ) -> Result<Vec<Recorded>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let bodies: Vec<&[u8]> = events.iter().map(|e| e.body.as_ref()).collect();
        let triggered: Vec<OffsetDateTime> = events.iter().map(|e| e.triggered_at).collect();
        let ingested: Vec<Option<OffsetDateTime>> = events.iter().map(|e| e.ingested_at).collect();
        let inserted = tx
            .query(
                &tx.prepare_cached(
                    "INSERT INTO events (tenant, id, event_type, body, triggered_at, received_at, ingested_at)
                 SELECT e.tenant, e.id, e.event_type, e.body, e.triggered_at, $7, e.ingested_at
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::timestamptz[], $6::timestamptz[])
                      AS e (tenant, id, event_type, body, triggered_at, ingested_at)
                 ON CONFLICT (tenant, id) DO NOTHING
                 RETURNING tenant, id",
                )
                .await?,
                &[&tenants, &ids, &types, &bodies, &triggered, &ingested, &now],
            )
            .await?;
        let mut fresh: std::collections::HashSet<(String, String)> = inserted
            .iter()
            .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, String>(1)?)))
            .collect::<Result<_>>()?;

        // The active webhooks of every tenant in the batch, read once.
        let by_tenant = active_webhooks(&tx, &tenants).await?;

        let mut d_ids: Vec<Uuid> = Vec::new();
        let mut d_webhooks: Vec<Uuid> = Vec::new();
        let mut d_states: Vec<&'static str> = Vec::new();
        let mut d_tenants: Vec<&str> = Vec::new();
        let mut d_events: Vec<&str> = Vec::new();
        let mut d_types: Vec<&str> = Vec::new();
        let mut results: Vec<Option<Recorded>> = Vec::with_capacity(events.len());
        for event in events {
            // `remove`: an id twice in one batch is fresh once; the second
            // copy takes the careful path below.
            if !fresh.remove(&(event.tenant.as_str().to_owned(), event.id.as_str().to_owned())) {
                results.push(None);
                continue;
            }
            let mut attempts = Vec::new();
            for webhook in by_tenant.get(event.tenant.as_str()).into_iter().flatten() {
                if !webhook.filters.matches(&event.event_type) {
                    continue;
                }
                let id = event.delivery_id(webhook.id);
                let state = if webhook.status == HealthStatus::Suspended {
                    DeliveryState::Suspended
                } else {
                    attempts.push(self.fresh_delivery(id, webhook)?);
                    DeliveryState::Pending
                };
                d_ids.push(id.as_uuid());
                d_webhooks.push(webhook.id.as_uuid());
                d_states.push(state.as_str());
                d_tenants.push(event.tenant.as_str());
                d_events.push(event.id.as_str());
                d_types.push(event.event_type.as_str());
            }
            results.push(Some(Recorded::Fresh(attempts)));
        }
        if !d_ids.is_empty() {
            tx.execute(
                &tx.prepare_cached("INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, created_at, updated_at)
                 SELECT d.id, d.tenant, d.event_id, d.webhook_id, d.event_type, d.state, $7, $7
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[])
                      AS d (id, tenant, event_id, webhook_id, event_type, state)").await?,
                &[&d_ids, &d_tenants, &d_events, &d_webhooks, &d_types, &d_states, &now],
            )
            .await?;
        }
        tx.commit().await?;
        drop(client);

        // Events seen before take the careful path, one by one.
        let mut out = Vec::with_capacity(events.len());
        for (event, result) in events.iter().zip(results) {
            out.push(match result {
                Some(recorded) => recorded,
                None => Recorded::Seen(self.record_event(event, now, in_progress_for).await?),
            });
        }
        Ok(out)
    }

    /// Marks a batch of events dispatched (see [`Store::mark_dispatched`]).
    pub async fn mark_dispatched_many(&self, events: &[(TenantId, EventId)], now: OffsetDateTime) -> Result<()> {
        let client = self.pool.get().await?;
        let tenants: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        let ids: Vec<&str> = events.iter().map(|(_, id)| id.as_str()).collect();
        client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE events SET dispatched_at = $3
                 FROM UNNEST($1::text[], $2::text[]) AS e (tenant, id)
                 WHERE events.tenant = e.tenant AND events.id = e.id AND events.dispatched_at IS NULL",
                    )
                    .await?,
                &[&tenants, &ids, &now],
            )
            .await?;
        Ok(())
    }
}
