//! Reconciliation: Postgres wins when it and the broker disagree.
//!
//! Every delivery that waits for a step has its due time in Postgres. Each
//! worker, every `HOOKLINE_RECONCILE_INTERVAL_MS`, takes the deliveries whose
//! step is overdue by more than `HOOKLINE_RECONCILE_GRACE_MS` and not being
//! attempted (a retry whose message was lost with its delay tier, a worker
//! killed between a commit and a publish, a replay `recover` marked but could
//! not publish), gives each a fresh due time and publishes its step again.
//! The fresh due time fences off any older copy of the message. Workers take
//! different rows (`SKIP LOCKED`); in a healthy system nothing is found, and
//! each find is counted (`hookline_reconciled_total`) and logged as a warning
//! with the delivery's id.
//!
//! A fresh event's pending deliveries have no due time while their first
//! attempts are made from the event message. Should that message be lost
//! (its queue deleted, a quorum lost), nothing in the due-time index points
//! at them; so each worker also scans, through the primary key (UUIDv7 ids
//! are time-ordered), the deliveries created since its last look and older
//! than the dispatch lease plus the grace, for any still pending without a
//! due time. That scan reads each delivery once per worker, a few thousand
//! rows a second at full load, and starts [`LOOKBACK`] before the worker
//! started.

use std::{sync::Arc, time::Duration};

use hookline_core::format_timestamp;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::startup::Context;

/// Most deliveries one round takes (one statement, one batch of publishes).
pub const BATCH: i64 = 500;

/// Most rounds one tick runs before it waits for the next interval.
const ROUNDS: usize = 4;

/// How long messages have lately waited in the queues past their due time,
/// as this worker saw when it took them: the longest wait of the last 30 to
/// 60 s. A step is taken as lost only once it is overdue by the grace *plus
/// twice that wait*, so a backlog (every message late) is never mistaken
/// for lost messages and re-published on top of itself.
#[derive(Debug)]
pub struct Lateness {
    windows: std::sync::Mutex<(std::time::Instant, u64, u64)>,
}

/// How long one lateness window lasts.
const WINDOW: Duration = Duration::from_secs(30);

impl Default for Lateness {
    fn default() -> Self {
        Self { windows: std::sync::Mutex::new((std::time::Instant::now(), 0, 0)) }
    }
}

impl Lateness {
    fn windows(&self) -> std::sync::MutexGuard<'_, (std::time::Instant, u64, u64)> {
        let mut w = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.0.elapsed() >= WINDOW {
            // A quiet spell longer than a window forgets everything.
            let previous = if w.0.elapsed() >= WINDOW * 2 { 0 } else { w.1 };
            *w = (std::time::Instant::now(), 0, previous);
        }
        w
    }

    /// Notes a message taken `late_ms` after it was due (or accepted).
    pub fn observe(&self, late_ms: i64) {
        if let Ok(late) = u64::try_from(late_ms) {
            let mut w = self.windows();
            w.1 = w.1.max(late);
        }
    }

    /// The longest recent wait.
    pub fn recent(&self) -> Duration {
        let w = self.windows();
        Duration::from_millis(w.1.max(w.2))
    }
}

/// How far back the first scan for unstarted deliveries reaches.
pub const LOOKBACK: Duration = Duration::from_secs(15 * 60);

/// How often and how late.
#[derive(Clone, Copy, Debug)]
pub struct Every {
    /// Between two looks.
    pub interval: Duration,
    /// How late a step must be to count as lost.
    pub grace: Duration,
}

/// Looks for overdue steps until `shutdown` is cancelled.
pub(crate) async fn run(ctx: Arc<Context>, every: Every, shutdown: CancellationToken) {
    let lookback = time::Duration::try_from(LOOKBACK).unwrap_or(time::Duration::MINUTE);
    let mut scanned_to = OffsetDateTime::now_utc() - lookback;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every.interval) => {}
        }
        // A stopping worker does not finish a pass: what it took has due
        // times committed, and the next pass (any worker's) publishes it.
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = pass(&ctx, every, &mut scanned_to) => {}
        }
    }
}

/// One pass: overdue steps, then the next stretch of unstarted deliveries.
async fn pass(ctx: &Context, every: Every, scanned_to: &mut OffsetDateTime) {
    let grace = time::Duration::try_from(every.grace + ctx.lateness.recent() * 2).unwrap_or(time::Duration::HOUR);
    for _ in 0..ROUNDS {
        match round(ctx, grace).await {
            Ok(n) if n == usize::try_from(BATCH).unwrap_or(usize::MAX) => continue,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error.message = %e, "reconciliation failed; trying again at the next interval");
                break;
            }
        }
    }
    let until = OffsetDateTime::now_utc() - ctx.lease - grace;
    for _ in 0..ROUNDS {
        if *scanned_to >= until {
            break;
        }
        match unstarted(ctx, *scanned_to, until).await {
            Ok(next) => *scanned_to = next,
            Err(e) => {
                tracing::warn!(error.message = %e, "reconciliation failed; trying again at the next interval");
                break;
            }
        }
    }
}

/// One scan for deliveries created in `[from, until)` still waiting for a
/// first attempt from a lost event message; returns where the next starts.
pub async fn unstarted(
    ctx: &Context,
    from: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<OffsetDateTime, RoundError> {
    let (steps, next) = ctx.store.take_unstarted(from, until, OffsetDateTime::now_utc(), BATCH).await?;
    if !steps.is_empty() {
        for due in &steps {
            tracing::warn!(
                delivery_id = %due.id,
                webhook_id = %due.webhook_id,
                "pending delivery whose event message is gone; publishing its first attempt"
            );
        }
        ctx.metrics.reconciled.add(&[], u64::try_from(steps.len()).unwrap_or(u64::MAX));
        if let Err(e) = ctx.publish_steps(&steps).await {
            // Their due times are set: the overdue scan takes them later.
            ctx.metrics.publish_failures.inc(&[]);
            return Err(e.into());
        }
    }
    Ok(next)
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// The overdue rows could not be read.
    #[error(transparent)]
    Store(#[from] hookline_store::Error),
    /// Their messages could not be published (they are taken again once
    /// the grace has passed).
    #[error(transparent)]
    Broker(#[from] hookline_broker::Error),
}

/// One round: take up to [`BATCH`] overdue steps and publish them.
pub async fn round(ctx: &Context, grace: time::Duration) -> Result<usize, RoundError> {
    let overdue = ctx.store.take_overdue(OffsetDateTime::now_utc(), grace, BATCH).await?;
    if overdue.is_empty() {
        return Ok(0);
    }
    for (due, was) in &overdue {
        tracing::warn!(
            delivery_id = %due.id,
            webhook_id = %due.webhook_id,
            trigger = due.trigger.as_str(),
            was_due = %format_timestamp(*was),
            "delivery step overdue; publishing it again"
        );
    }
    ctx.metrics.reconciled.add(&[], u64::try_from(overdue.len()).unwrap_or(u64::MAX));
    let steps: Vec<hookline_store::Due> = overdue.into_iter().map(|(due, _)| due).collect();
    if let Err(e) = ctx.publish_steps(&steps).await {
        ctx.metrics.publish_failures.inc(&[]);
        return Err(e.into());
    }
    Ok(steps.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest recent wait is remembered for one more window, and
    /// forgotten after a quiet spell; early messages count as on time.
    #[test]
    fn lateness_windows() {
        let lateness = Lateness::default();
        lateness.observe(-500);
        assert_eq!(lateness.recent(), Duration::ZERO);
        lateness.observe(1200);
        lateness.observe(300);
        assert_eq!(lateness.recent(), Duration::from_millis(1200));
        {
            let mut w = lateness.windows.lock().expect("not poisoned");
            w.0 -= WINDOW;
        }
        assert_eq!(lateness.recent(), Duration::from_millis(1200), "kept for one more window");
        {
            let mut w = lateness.windows.lock().expect("not poisoned");
            w.0 -= WINDOW * 2;
        }
        assert_eq!(lateness.recent(), Duration::ZERO, "forgotten after a quiet spell");
    }
}
