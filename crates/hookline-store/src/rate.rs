//! The per-webhook rate limit shared by every worker: one row per webhook
//! (`webhook_rate`), decided and written in one statement under the row's
//! lock, on the database's clock, by the rules of `hookline_core::rate`
//! ([`admit`](hookline_core::rate::admit) for a request,
//! [`release`](hookline_core::rate::release) for the queue). Each statement
//! is that rule in SQL, committed on its own (no transaction round trip
//! while the row is locked), so the lock is held for microseconds;
//! `tests/it/rate.rs` holds the SQL to the Rust rules case by case.
//!
//! A delivery that must wait is queued in Postgres (`deliveries.rate_queued`,
//! V0013): no due time, no message. [`Store::release_rate_queued`], run by
//! every worker's rate pump, hands the queued ones out in delivery order,
//! each with its due time, for one message each.
//!
//! The limiter's own writes do not wait for their WAL flush: a count lost
//! in a crash of Postgres costs at most a few early requests, and a release
//! lost is released again (its messages then find their due time gone).
//! Queueing a delivery does wait: its message is acked after it.

use hookline_core::{
    DeliveryId, RateLimit, WebhookId,
    rate::{Admission, cap, spacing},
};
use time::OffsetDateTime;

use crate::{Due, Result, Store, schedule::trigger_of};

/// `hookline_core::rate::admit` on the row of `$1` at `$4` (the database's
/// clock unless a test gives one): `$2` the cap, `$3` held, `$5` the
/// spacing in microseconds. Returns `send`; no row when the webhook has
/// none yet. The row is written only when the request goes.
const ADMIT: &str = "
WITH c AS (
    SELECT r.webhook_id, r.second, r.used, r.next_free, n.now,
           floor(extract(epoch FROM n.now))::bigint AS s
    FROM webhook_rate r,
         (SELECT COALESCE($4::timestamptz, clock_timestamp()) AS now,
                 set_config('synchronous_commit', 'off', true) AS async) n
    WHERE r.webhook_id = $1
    FOR UPDATE OF r
), e AS (
    SELECT c.*, CASE WHEN c.second = c.s THEN c.used ELSE 0 END AS u FROM c
), f AS (
    SELECT e.*, (e.u < $2 AND ($3 OR e.next_free <= e.now)) AS send FROM e
), w AS (
    UPDATE webhook_rate r SET
        second = f.s,
        used = f.u + 1,
        next_free = CASE WHEN $3 THEN r.next_free
                         ELSE GREATEST(r.next_free, f.now) + $5::bigint * interval '1 microsecond' END
    FROM f
    WHERE r.webhook_id = f.webhook_id AND f.send
)
SELECT send FROM f";

/// `hookline_core::rate::release` for every webhook with queued deliveries
/// whose queue's end is within the horizon, at `$1` (the database's clock
/// unless a test gives one): `$2` the horizon in microseconds, `$3` the most
/// handed out per webhook. Webhooks another worker is releasing are
/// skipped. A webhook whose limit was removed has its queue handed out at
/// once, `$3` at a time. Returns the released deliveries with their due
/// times (whole milliseconds: the messages' fences).
///
/// Every look at `deliveries` goes through an index whatever the planner
/// guesses of the table: the queue's partial index, ordered and limited,
/// and the primary key for the update (an `EXISTS` and a join on the picked
/// ids each became a sequential scan of every delivery, ten times a second
/// per worker, while the table had no statistics).
const RELEASE: &str = "
WITH n AS (
    SELECT COALESCE($1::timestamptz, clock_timestamp()) AS now,
           set_config('synchronous_commit', 'off', true) AS async
), w AS (
    SELECT r.webhook_id, n.now, n.now + $2::bigint * interval '1 microsecond' AS horizon,
           GREATEST(r.next_free, n.now) AS start,
           CASE WHEN h.rate_limit IS NULL THEN 0 ELSE 1080000 / h.rate_limit END AS spacing
    FROM webhook_rate r JOIN webhooks h ON h.id = r.webhook_id, n
    WHERE (h.rate_limit IS NULL OR r.next_free < n.now + $2::bigint * interval '1 microsecond')
      AND (SELECT d.id FROM deliveries d WHERE d.webhook_id = r.webhook_id AND d.rate_queued
           ORDER BY d.id LIMIT 1) IS NOT NULL
    FOR UPDATE OF r SKIP LOCKED
), k AS (
    SELECT w.*,
           CASE WHEN w.spacing = 0 THEN $3::bigint
                ELSE LEAST($3::bigint,
                           ((extract(epoch FROM w.horizon - w.start) * 1000000)::bigint + w.spacing - 1) / w.spacing)
           END AS places
    FROM w
), pick AS (
    SELECT k.webhook_id, k.start, k.spacing, x.id,
           row_number() OVER (PARTITION BY k.webhook_id ORDER BY x.id) - 1 AS i
    FROM k CROSS JOIN LATERAL (
        SELECT d.id FROM deliveries d
        WHERE d.webhook_id = k.webhook_id AND d.rate_queued
        ORDER BY d.id
        LIMIT k.places
        FOR UPDATE OF d SKIP LOCKED
    ) x
), moved AS (
    UPDATE deliveries d SET
        rate_queued = false,
        next_attempt_at = CASE WHEN d.state IN ('pending', 'retrying')
                               THEN date_trunc('milliseconds', p.start + p.i * p.spacing * interval '1 microsecond')
                          END,
        claimed_until = NULL
    FROM pick p
    WHERE d.id = p.id AND d.id = ANY (ARRAY(SELECT id FROM pick))
    RETURNING d.id, d.webhook_id, d.next_trigger, d.next_attempt_at, d.state
), ends AS (
    UPDATE webhook_rate r SET next_free = q.start + q.taken * q.spacing * interval '1 microsecond'
    FROM (SELECT webhook_id, start, spacing, count(*) AS taken FROM pick GROUP BY webhook_id, start, spacing) q
    WHERE r.webhook_id = q.webhook_id AND q.spacing > 0
)
SELECT id, webhook_id, next_trigger, next_attempt_at FROM moved
WHERE state IN ('pending', 'retrying')
ORDER BY next_attempt_at";

impl Store {
    /// Whether a request to `webhook` may go now under `limit` (counted if
    /// so) or must wait in the queue. `held`: the request was released from
    /// the queue (it has its place).
    pub async fn rate_admit(&self, webhook: WebhookId, limit: RateLimit, held: bool) -> Result<Admission> {
        self.rate_admit_at(webhook, limit, held, None).await
    }

    /// [`Store::rate_admit`] at `now` instead of the database's clock (for
    /// tests that hold the SQL to the rule).
    #[doc(hidden)]
    pub async fn rate_admit_at(
        &self,
        webhook: WebhookId,
        limit: RateLimit,
        held: bool,
        now: Option<OffsetDateTime>,
    ) -> Result<Admission> {
        let client = self.pool.get().await?;
        let cap = i32::try_from(cap(limit)).unwrap_or(i32::MAX);
        let spacing = i64::try_from(spacing(limit).whole_microseconds()).unwrap_or(i64::MAX);
        let admit = client.prepare_cached(ADMIT).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [&webhook.as_uuid(), &cap, &held, &now, &spacing];
        let mut row = client.query_opt(&admit, &params).await?;
        if row.is_none() {
            // The webhook's first request under a limit: its row, then again.
            client
                .execute(
                    "INSERT INTO webhook_rate (webhook_id) VALUES ($1) ON CONFLICT (webhook_id) DO NOTHING",
                    &[&webhook.as_uuid()],
                )
                .await?;
            row = client.query_opt(&admit, &params).await?;
        }
        // No row even then: the webhook was deleted meanwhile; the request
        // waits, and its delivery is found gone.
        let send: bool = row.map(|r| r.try_get("send")).transpose()?.unwrap_or(false);
        Ok(if send { Admission::Send } else { Admission::Wait })
    }

    /// Queues `delivery` for its webhook's rate limit: no due time, no
    /// message; the rate pump releases it. `due_ms`: the due time of the
    /// message that found the limit full (whole milliseconds), which the
    /// delivery must still have; `None`: a fresh delivery being attempted
    /// straight from its event message (pending, no due time). Clears a
    /// claim. `false` when the delivery is no longer what the caller saw
    /// (the message is stale, or the delivery gone).
    pub async fn queue_for_rate(&self, delivery: DeliveryId, due_ms: Option<i64>) -> Result<bool> {
        Ok(self.queue_all_for_rate(&[(delivery, due_ms)]).await?.first().copied().unwrap_or(false))
    }

    /// [`Store::queue_for_rate`] for many deliveries in one statement (one
    /// commit): whether each was queued, in the order given. A delivery may
    /// appear once per call.
    pub async fn queue_all_for_rate(&self, items: &[(DeliveryId, Option<i64>)]) -> Result<Vec<bool>> {
        let client = self.pool.get().await?;
        let ids: Vec<uuid::Uuid> = items.iter().map(|(id, _)| id.as_uuid()).collect();
        let dues: Vec<Option<i64>> = items.iter().map(|(_, due)| *due).collect();
        let (least, greatest) = crate::delivery::id_range(&ids);
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "UPDATE deliveries d SET rate_queued = true, next_attempt_at = NULL, claimed_until = NULL
                         FROM UNNEST($1::uuid[], $2::bigint[]) AS q (id, due_ms)
                         WHERE d.id = q.id AND d.id BETWEEN $3 AND $4
                           AND NOT d.rate_queued AND d.state IN ('pending', 'retrying')
                           AND CASE WHEN q.due_ms IS NULL
                                    THEN d.state = 'pending' AND d.next_attempt_at IS NULL
                                    ELSE floor(extract(epoch FROM d.next_attempt_at) * 1000)::bigint = q.due_ms
                               END
                         RETURNING d.id",
                    )
                    .await?,
                &[&ids, &dues, &least, &greatest],
            )
            .await?;
        let queued: std::collections::HashSet<uuid::Uuid> =
            rows.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>()?;
        Ok(ids.iter().map(|id| queued.contains(id)).collect())
    }

    /// Hands out queued deliveries whose places fall within `horizon` of
    /// now, for every rate-limited webhook this worker can lock (at most
    /// `per_webhook` each): each gets its due time; the caller publishes one
    /// message per returned step, holding its place. A step whose message
    /// is lost is overdue like any other and reconciled.
    pub async fn release_rate_queued(&self, horizon: time::Duration, per_webhook: i64) -> Result<Vec<Due>> {
        self.release_rate_queued_at(horizon, per_webhook, None).await
    }

    /// [`Store::release_rate_queued`] at `now` instead of the database's
    /// clock (for tests that hold the SQL to the rule).
    #[doc(hidden)]
    pub async fn release_rate_queued_at(
        &self,
        horizon: time::Duration,
        per_webhook: i64,
        now: Option<OffsetDateTime>,
    ) -> Result<Vec<Due>> {
        let client = self.pool.get().await?;
        let horizon = i64::try_from(horizon.whole_microseconds()).unwrap_or(i64::MAX);
        let rows = client.query(&client.prepare_cached(RELEASE).await?, &[&now, &horizon, &per_webhook]).await?;
        rows.iter()
            .map(|r| {
                Ok(Due {
                    id: DeliveryId::from_uuid(r.try_get("id")?),
                    webhook_id: WebhookId::from_uuid(r.try_get("webhook_id")?),
                    at: r.try_get("next_attempt_at")?,
                    trigger: trigger_of(r.try_get("next_trigger")?),
                })
            })
            .collect()
    }
}
