//! The per-webhook rate limit shared by every worker: one row per webhook
//! (`webhook_rate`), decided and written in one statement under the row's
//! lock, on the database's clock, by the rule of `hookline_core::rate::admit`
//! (a hard count per second and an even queue for what must wait). The
//! statement is that rule in SQL, so the lock is held for microseconds, not
//! round trips; `tests/it/rate.rs` holds it to the Rust rule case by case.
//!
//! The commit does not wait for its WAL flush: a count lost in a crash of
//! Postgres costs at most a few early requests.

use hookline_core::{
    RateLimit, WebhookId,
    rate::{Admission, cap, spacing},
};
use time::OffsetDateTime;

use crate::{Result, Store};

/// `hookline_core::rate::admit` on the row of `$1` at `$5` (the database's
/// clock unless a test gives one): `$2` the cap, `$3` the spacing in
/// microseconds, `$4`
/// held. Returns `back` (NULL: send now).
const ADMIT: &str = "
WITH c AS (
    SELECT r.webhook_id, r.second, r.used, r.next_free, n.now,
           floor(extract(epoch FROM n.now))::bigint AS s
    FROM webhook_rate r, (SELECT COALESCE($5::timestamptz, clock_timestamp()) AS now) n
    WHERE r.webhook_id = $1
    FOR UPDATE OF r
), d AS (
    SELECT c.*, CASE WHEN c.second = c.s THEN c.used ELSE 0 END AS u FROM c
), e AS (
    SELECT d.*, d.u < $2 AS room, (d.u < $2 AND ($4 OR d.next_free <= d.now)) AS send,
           GREATEST(d.next_free, d.now) AS later
    FROM d
), f AS (
    SELECT e.*, CASE WHEN NOT e.room AND floor(extract(epoch FROM e.later))::bigint = e.s
                     THEN to_timestamp(e.s + 1) ELSE e.later END AS back
    FROM e
)
UPDATE webhook_rate r SET
    second = CASE WHEN f.send THEN f.s ELSE r.second END,
    used = CASE WHEN f.send THEN f.u + 1 ELSE r.used END,
    next_free = CASE WHEN f.send AND $4 THEN r.next_free
                     WHEN f.send THEN GREATEST(r.next_free, f.now) + $3::bigint * interval '1 microsecond'
                     ELSE f.back + $3::bigint * interval '1 microsecond' END
FROM f
WHERE r.webhook_id = f.webhook_id
RETURNING CASE WHEN f.send THEN NULL ELSE f.back END AS back";

impl Store {
    /// Whether a request to `webhook` may go now under `limit`, counted if
    /// so; else when to come back. `held`: the request was told to come
    /// back before (it has its place in the queue).
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
        let mut client = self.pool.get().await?;
        let cap = i32::try_from(cap(limit)).unwrap_or(i32::MAX);
        let spacing = i64::try_from(spacing(limit).whole_microseconds()).unwrap_or(i64::MAX);
        let admit = client.prepare_cached(ADMIT).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [&webhook.as_uuid(), &cap, &spacing, &held, &now];
        let tx = client.transaction().await?;
        let (_, mut row) =
            tokio::try_join!(tx.batch_execute("SET LOCAL synchronous_commit TO off"), tx.query_opt(&admit, &params))?;
        if row.is_none() {
            // The webhook's first request under a limit: its row, then again.
            tx.execute(
                "INSERT INTO webhook_rate (webhook_id) VALUES ($1) ON CONFLICT (webhook_id) DO NOTHING",
                &[&webhook.as_uuid()],
            )
            .await?;
            row = tx.query_opt(&admit, &params).await?;
        }
        tx.commit().await?;
        // No row even then: the webhook was deleted meanwhile, and its claim
        // finds it gone.
        let back: Option<OffsetDateTime> = row.map(|r| r.try_get("back")).transpose()?.flatten();
        Ok(back.map_or(Admission::Send, Admission::ComeBack))
    }
}
