//! The per-webhook rate limit shared by every worker: a generic cell rate
//! algorithm over one row per webhook (`webhook_rate`), on the database's
//! clock. Each request takes a slot `1/limit` seconds after the previous
//! one's, so requests to a webhook are evenly spaced and no second sees more
//! than its limit, whichever workers send them.
//!
//! A request goes out a little after its slot (the worker's own latency),
//! by at most [`LATE`] (a later one takes a new slot), and arrives after a
//! little network jitter: slots are spaced `(1 s + MARGIN) / limit` apart,
//! so any calendar second at the receiver holds at most `limit` of them.
//! Requests go at about 95 % of the limit ([`MARGIN`] of a second spare).
//!
//! The row is locked by each taker in turn: the commit does not wait for
//! its WAL flush (a slot lost in a crash of Postgres costs at most a few
//! early requests), so the lock is held for microseconds, not a disk flush.

use std::time::Duration;

use hookline_core::{RateLimit, WebhookId};

use crate::{Result, Store};

/// How late after its slot a request may still be sent on it.
pub const LATE: Duration = Duration::from_millis(25);
/// The part of a second slots leave free for lateness and jitter (a busy
/// 2-core machine showed 20 ms of jitter between worker and receiver).
pub const MARGIN: Duration = Duration::from_millis(50);

impl Store {
    /// Takes the next free slot of `webhook`'s rate limit when it is at most
    /// `within` away, returning how long until it (zero: send now); `None`
    /// when the next free slot is further away than that (nothing is
    /// taken). A slot taken is spent whether or not the request is made.
    pub async fn take_rate_slot(
        &self,
        webhook: WebhookId,
        limit: RateLimit,
        within: Duration,
    ) -> Result<Option<Duration>> {
        let spacing = (1.0 + MARGIN.as_secs_f64()) / f64::from(limit.per_second());
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit TO off").await?;
        // EXCLUDED.tat is now + spacing: the state after a request now; the
        // slot is the later of the stored time and now.
        let row = tx
            .query_opt(
                &tx.prepare_cached(
                    "INSERT INTO webhook_rate AS r (webhook_id, tat)
                         VALUES ($1, clock_timestamp() + make_interval(secs => $2))
                         ON CONFLICT (webhook_id) DO UPDATE
                            SET tat = GREATEST(r.tat + make_interval(secs => $2), EXCLUDED.tat)
                            WHERE r.tat <= EXCLUDED.tat - make_interval(secs => $2) + make_interval(secs => $3)
                         RETURNING GREATEST(0, (extract(epoch FROM tat - clock_timestamp()) * 1000)::bigint
                                              - (($2::float8) * 1000)::bigint) AS wait_ms",
                )
                .await?,
                &[&webhook.as_uuid(), &spacing, &within.as_secs_f64()],
            )
            .await?;
        tx.commit().await?;
        row.map(|r| Ok(Duration::from_millis(u64::try_from(r.try_get::<_, i64>("wait_ms")?).unwrap_or(0)))).transpose()
    }
}
