//! An unhealthy webhook's probe: one request in flight across all workers.
//! The delivery that takes it is attempted; the others wait in Postgres
//! (parked, `awaits_probe`) and are woken when its outcome is recorded: all
//! at once on a success, the oldest on a failure, held on a suspension.

use hookline_core::{DeliveryId, HealthStatus, WebhookId, fence::truncate_ms};
use time::OffsetDateTime;

use crate::{Due, Error, Result, Store, schedule::trigger_of};

/// What [`Store::take_probe`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// This worker sends the webhook's one request.
    Taken,
    /// Another request is in flight until then (its lease).
    Busy(Option<OffsetDateTime>),
    /// The webhook is no longer unhealthy: healthy (go ahead) or suspended
    /// (hold), or gone.
    Status(HealthStatus),
}

/// What [`Store::park_for_probe`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parked {
    /// The delivery waits for its turn.
    Parked,
    /// The probe is no longer in flight: try to take it.
    ProbeEnded,
    /// The message no longer matches the delivery.
    Stale,
}

impl Store {
    /// Takes an unhealthy webhook's probe: its one request in flight across
    /// all workers. The lease runs to `now + lease`; the probe is given back
    /// when its outcome is recorded.
    ///
    /// While a probe is in flight the statement matches no row and so locks
    /// none: the deliveries that find it busy do not queue on the webhook.
    pub async fn take_probe(&self, webhook: WebhookId, now: OffsetDateTime, lease: time::Duration) -> Result<Probe> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let take = tx
            .prepare_cached(
                "WITH t AS (
                    UPDATE webhooks w SET probes = 1, probe_until = $3
                    WHERE w.id = $1 AND w.status = 'unhealthy'
                      AND (w.probe_until IS NULL OR w.probe_until <= $2 OR w.probes < 1)
                    RETURNING w.id
                 )
                 SELECT status, probe_until, EXISTS (SELECT 1 FROM t) AS taken FROM webhooks WHERE id = $1",
            )
            .await?;
        // Like a claim, a lease lost in a crash of Postgres costs at most
        // one extra request: no need to wait for its WAL flush. The setting
        // and the statement go in one round trip.
        let (id, until) = (webhook.as_uuid(), now + lease);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&id, &now, &until];
        let (_, row) =
            tokio::try_join!(tx.batch_execute("SET LOCAL synchronous_commit TO off"), tx.query_opt(&take, &params),)?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(Probe::Status(HealthStatus::Suspended)) };
        if row.try_get::<_, bool>("taken")? {
            return Ok(Probe::Taken);
        }
        let status = HealthStatus::parse(row.try_get("status")?).map_err(|e| Error::corrupt("webhooks", e))?;
        Ok(match status {
            HealthStatus::Unhealthy => Probe::Busy(row.try_get("probe_until")?),
            other => Probe::Status(other),
        })
    }

    /// Parks a claimed delivery whose webhook's probe is in flight: it
    /// waits its turn in Postgres (no message), due at `fallback` should the
    /// turn never be handed to it (reconciliation then takes it). Parked
    /// only while the probe is still in flight, under a share lock on the
    /// webhook, so a probe that ends concurrently either sees this delivery
    /// when it hands the turn on, or this call sees the probe ended.
    pub async fn park_for_probe(
        &self,
        id: DeliveryId,
        webhook: WebhookId,
        due_ms: i64,
        now: OffsetDateTime,
        fallback: OffsetDateTime,
    ) -> Result<Parked> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &client
                    .prepare_cached(
                        "WITH w AS (
                    SELECT id FROM webhooks
                    WHERE id = $2 AND status = 'unhealthy' AND probe_until > $4 AND probes >= 1
                    FOR SHARE
                 ), p AS (
                    UPDATE deliveries d SET awaits_probe = true, next_attempt_at = $5, claimed_until = NULL
                    WHERE d.id = $1 AND EXISTS (SELECT 1 FROM w)
                      AND d.state IN ('pending', 'retrying') AND d.next_attempt_at IS NOT NULL
                      AND floor(extract(epoch FROM d.next_attempt_at) * 1000)::bigint = $3
                    RETURNING d.id
                 )
                 SELECT EXISTS (SELECT 1 FROM p) AS parked, EXISTS (SELECT 1 FROM w) AS busy",
                    )
                    .await?,
                &[&id.as_uuid(), &webhook.as_uuid(), &due_ms, &now, &truncate_ms(fallback)],
            )
            .await?;
        Ok(match (row.try_get::<_, bool>("parked")?, row.try_get::<_, bool>("busy")?) {
            (true, _) => Parked::Parked,
            (false, true) => Parked::Stale,
            (false, false) => Parked::ProbeEnded,
        })
    }

    /// Hands the turn to up to `limit` deliveries parked for `webhook`'s
    /// probe, oldest first: each is due at `now` again; the caller publishes
    /// them. One after a probe that failed; all after a success.
    pub async fn wake_parked(&self, webhook: WebhookId, now: OffsetDateTime, limit: i64) -> Result<Vec<Due>> {
        let client = self.pool.get().await?;
        let at = truncate_ms(now);
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "WITH w AS (
                    SELECT id FROM deliveries WHERE webhook_id = $1 AND awaits_probe
                    ORDER BY next_attempt_at LIMIT $3
                    FOR UPDATE SKIP LOCKED
                 )
                 UPDATE deliveries d SET awaits_probe = false, next_attempt_at = $2
                 FROM w WHERE d.id = w.id
                 RETURNING d.id, d.next_trigger",
                    )
                    .await?,
                &[&webhook.as_uuid(), &at, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Due {
                    id: DeliveryId::from_uuid(r.try_get("id")?),
                    webhook_id: webhook,
                    at,
                    trigger: trigger_of(r.try_get("next_trigger")?),
                })
            })
            .collect()
    }

    /// Holds every delivery parked for `webhook`'s probe: the webhook was
    /// suspended, so they are logged as `suspended`, not sent.
    pub async fn hold_parked(&self, webhook: WebhookId, now: OffsetDateTime) -> Result<u64> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE deliveries SET state = 'suspended', next_attempt_at = NULL, next_trigger = NULL,
                                       awaits_probe = false, claimed_until = NULL, updated_at = $2
                 WHERE webhook_id = $1 AND awaits_probe",
                    )
                    .await?,
                &[&webhook.as_uuid(), &now],
            )
            .await?)
    }
}
