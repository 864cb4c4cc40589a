//! A delivery's next step, as the record: when it is due, who is taking it,
//! and what is overdue.
//!
//! A waiting delivery (`pending` or `retrying`) has one due time,
//! `next_attempt_at` (whole milliseconds), and the one delivery message that
//! may act on it carries that time (`hookline_core::fence`). A worker claims
//! the delivery before an attempt ([`Store::claim`]): one statement checks
//! the fence and takes a lease, so two copies of a message cannot both
//! attempt it. Whatever is overdue by more than a grace, because its message
//! was lost or its worker died, is found by [`Store::take_overdue`] and
//! published again with a fresh due time, which fences off any older copy.

use hookline_core::{
    DeliveryId, DeliveryState, EventId, Fence, HealthStatus, RateLimit, SignatureScheme, TenantId, Trigger, Waiting,
    WebhookId, WebhookUrl,
    fence::{truncate_ms, unix_ms},
};
use time::OffsetDateTime;

use crate::{DeliveryJob, Error, Result, Store};

/// A step to publish: the delivery, its webhook, when it is due and what
/// triggers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The delivery.
    pub id: DeliveryId,
    /// Its webhook.
    pub webhook_id: WebhookId,
    /// Its due time (whole milliseconds): the message's fence.
    pub at: OffsetDateTime,
    /// `Scheduled`, or `Recover` for a queued replay.
    pub trigger: Trigger,
}

/// What [`Store::claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// The message matches and the delivery is this worker's until the
    /// lease ends (or its attempt is recorded).
    Claimed(Box<DeliveryJob>),
    /// Not claimed: the delivery as it stands, and the lease another worker
    /// holds on it, if any. [`Fence::admits`] tells a stale message (ack it)
    /// from a busy delivery (try again after the lease).
    Refused {
        /// The row the fence was checked against.
        row: Waiting,
        /// Another worker's lease.
        claimed_until: Option<OffsetDateTime>,
    },
    /// The delivery no longer exists (its webhook was deleted).
    Gone,
}

/// The fence condition on `d` as SQL: `$2` is the kind (`due`, `manual`,
/// `legacy`), `$3` the due millisecond or attempt count, `$4` whether the
/// message is an automatic one.
const ADMITS: &str = "CASE $2::text
        WHEN 'due' THEN d.state IN ('pending', 'retrying') AND d.next_attempt_at IS NOT NULL
                        AND floor(extract(epoch FROM d.next_attempt_at) * 1000)::bigint = $3
        WHEN 'manual' THEN d.attempt_count = $3
        ELSE NOT $4 OR d.state IN ('pending', 'retrying')
    END";

pub(crate) fn corrupt(e: &dyn std::fmt::Display) -> Error {
    Error::corrupt("deliveries", e)
}

pub(crate) fn trigger_of(next_trigger: Option<&str>) -> Trigger {
    match next_trigger {
        Some("recover") => Trigger::Recover,
        Some("manual") => Trigger::Manual,
        _ => Trigger::Scheduled,
    }
}

impl Store {
    /// Claims a delivery for one attempt by a message with `fence` and
    /// `trigger`: in one statement, the fence is checked against the row
    /// and a lease until `now + lease` is taken unless another worker holds
    /// one. A claimed delivery comes with everything the attempt needs.
    pub async fn claim(
        &self,
        id: DeliveryId,
        fence: Fence,
        trigger: Trigger,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Claim> {
        let (kind, value) = match fence {
            Fence::Due(ms) => ("due", ms),
            Fence::Manual(n) => ("manual", i64::from(n)),
            Fence::Legacy => ("legacy", 0),
        };
        let automatic = trigger == Trigger::Scheduled;
        let client = self.pool.get().await?;
        // A claim need not survive a crash of Postgres: lost, it only lets
        // a copy of the message claim again, which the fence still limits
        // to the same step. Not waiting for its WAL flush keeps a disk
        // flush off the path of every queued attempt. The setting is made
        // inside the statement, which commits on its own: one round trip,
        // not four (begin, set, claim, commit). It is evaluated whenever
        // the row exists, which is whenever the claim can have written.
        let claim = client
            .prepare_cached(&format!(
                "WITH c AS (
                        UPDATE deliveries d SET claimed_until = $6
                        WHERE d.id = $1 AND (d.claimed_until IS NULL OR d.claimed_until <= $5) AND {ADMITS}
                        RETURNING d.id
                     )
                     SELECT d.tenant, d.state, d.attempt_count, d.next_attempt_at, d.claimed_until,
                            EXISTS (SELECT 1 FROM c) AS claimed,
                            d.event_id, d.event_type, e.body,
                            w.id AS webhook_id, w.url, w.token, w.active, w.status, w.signature_scheme,
                            w.previous_token, w.previous_token_expires_at, w.headers, w.rate_limit,
                            COALESCE(e.ingested_at, e.received_at) AS ingested_at,
                            set_config('synchronous_commit', 'off', true) AS async
                     FROM deliveries d
                     JOIN events e ON e.tenant = d.tenant AND e.id = d.event_id
                     JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.id = $1"
            ))
            .await?;
        let row = client.query_opt(&claim, &[&id.as_uuid(), &kind, &value, &automatic, &now, &(now + lease)]).await?;
        let Some(row) = row else { return Ok(Claim::Gone) };
        let state = DeliveryState::parse(row.try_get("state")?).map_err(|e| corrupt(&e))?;
        let attempt_count: i32 = row.try_get("attempt_count")?;
        let next_attempt_at: Option<OffsetDateTime> = row.try_get("next_attempt_at")?;
        if !row.try_get::<_, bool>("claimed")? {
            return Ok(Claim::Refused {
                row: Waiting { state, attempt_count, next_attempt_ms: next_attempt_at.map(unix_ms) },
                claimed_until: row.try_get("claimed_until")?,
            });
        }
        let webhook_id = WebhookId::from_uuid(row.try_get("webhook_id")?);
        let previous_token = match (
            row.try_get::<_, Option<&str>>("previous_token")?,
            row.try_get::<_, Option<OffsetDateTime>>("previous_token_expires_at")?,
        ) {
            (Some(stored), Some(until)) => Some((self.keys.open(webhook_id, stored)?, until)),
            _ => None,
        };
        Ok(Claim::Claimed(Box::new(DeliveryJob {
            id,
            tenant: TenantId::parse(row.try_get("tenant")?).map_err(|e| corrupt(&e))?,
            state,
            attempt_count,
            next_attempt_at,
            event_id: EventId::parse(row.try_get("event_id")?).map_err(|e| corrupt(&e))?,
            event_type: row.try_get("event_type")?,
            body: bytes::Bytes::from(row.try_get::<_, Vec<u8>>("body")?),
            webhook_id,
            url: WebhookUrl::parse_stored(row.try_get("url")?).map_err(|e| corrupt(&e))?,
            token: self.keys.open(webhook_id, row.try_get("token")?)?,
            previous_token,
            scheme: SignatureScheme::parse(row.try_get("signature_scheme")?).map_err(|e| corrupt(&e))?,
            ingested_at: row.try_get("ingested_at")?,
            active: row.try_get("active")?,
            status: HealthStatus::parse(row.try_get("status")?).map_err(|e| corrupt(&e))?,
            headers: crate::headers::open(&self.keys, webhook_id, &row.try_get("headers")?)?,
            rate_limit: row
                .try_get::<_, Option<i32>>("rate_limit")?
                .map(|n| RateLimit::new(n.into()))
                .transpose()
                .map_err(|e| corrupt(&e))?,
        })))
    }

    /// Ends a claimed delivery's wait without an attempt: it takes `state`
    /// (`skipped` for an inactive webhook, `suspended` for a suspended one),
    /// with no due time and no lease.
    pub async fn hold(&self, id: DeliveryId, state: DeliveryState, now: OffsetDateTime) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client.prepare_cached("UPDATE deliveries SET state = $2, next_attempt_at = NULL, next_trigger = NULL, claimed_until = NULL,
                                       awaits_probe = false, rate_queued = false, updated_at = $3
                 WHERE id = $1").await?,
                &[&id.as_uuid(), &state.as_str(), &now],
            )
            .await?;
        Ok(())
    }

    /// Moves a waiting delivery's step from `due_ms` to `to` (a delivery
    /// deferred because its webhook or its tenant is busy), giving up the
    /// caller's claim when `release`. `false` when the step is no longer due
    /// at `due_ms`: the message asking for it is stale.
    pub async fn postpone(&self, id: DeliveryId, due_ms: i64, to: OffsetDateTime, release: bool) -> Result<bool> {
        let client = self.pool.get().await?;
        let moved = client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE deliveries d SET next_attempt_at = $3,
                                         claimed_until = CASE WHEN $4 THEN NULL ELSE d.claimed_until END
                 WHERE d.id = $1 AND d.state IN ('pending', 'retrying') AND d.next_attempt_at IS NOT NULL
                   AND floor(extract(epoch FROM d.next_attempt_at) * 1000)::bigint = $2",
                    )
                    .await?,
                &[&id.as_uuid(), &due_ms, &truncate_ms(to), &release],
            )
            .await?;
        Ok(moved == 1)
    }

    /// Gives up a claim without changing anything else.
    pub async fn release(&self, id: DeliveryId) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client.prepare_cached("UPDATE deliveries SET claimed_until = NULL WHERE id = $1").await?,
                &[&id.as_uuid()],
            )
            .await?;
        Ok(())
    }

    /// Hands pending deliveries of a fresh event (being attempted straight
    /// from the event message) to the deliveries queue: each gets the due
    /// time `at`, unless it already has one (then a message exists). The
    /// caller publishes one message for each returned step.
    pub async fn hand_off(&self, ids: &[DeliveryId], at: OffsetDateTime) -> Result<Vec<Due>> {
        let client = self.pool.get().await?;
        let ids: Vec<uuid::Uuid> = ids.iter().map(DeliveryId::as_uuid).collect();
        let at = truncate_ms(at);
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "UPDATE deliveries SET next_attempt_at = $2
                 WHERE id = ANY($1) AND state = 'pending' AND next_attempt_at IS NULL AND NOT rate_queued
                 RETURNING id, webhook_id",
                    )
                    .await?,
                &[&ids, &at],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Due {
                    id: DeliveryId::from_uuid(r.try_get(0)?),
                    webhook_id: WebhookId::from_uuid(r.try_get(1)?),
                    at,
                    trigger: Trigger::Scheduled,
                })
            })
            .collect()
    }
}
