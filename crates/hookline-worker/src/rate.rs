//! The rate limit's queue in Postgres, from the worker's side.
//!
//! A delivery of a rate-limited webhook that cannot go now is queued in
//! Postgres (`Store::queue_for_rate`) and its message acked: it waits as a
//! row, not as a message hopping through the delay tiers, and it holds no
//! worker slot. Every `HOOKLINE_RATE_TICK_MS` each worker's pump releases
//! the queued deliveries whose places fall within the next tick and second
//! (`Store::release_rate_queued`: one statement for every limited webhook,
//! each webhook's row locked by one worker at a time) and attempts them
//! itself at their times, holding their places, a clump of places at a
//! time, with no broker message (sent one message each through the broker,
//! a drained delivery cost about 15 times the CPU of a fresh one, measured
//! in docs/BENCHMARKS.md). Each still takes its own claim, admission and
//! record: a clump's claims and admissions take turns, so its records
//! mostly reach the group commit one by one.
//! A released delivery has a due time in Postgres like any step: if the
//! worker stops or dies before it is attempted, reconciliation publishes
//! it. The pump is what moves a queued delivery on; every worker runs one,
//! so the queue moves while any worker is up.
//!
//! Once a worker has seen a webhook's limit full, it queues that webhook's
//! fresh deliveries straight away for a tick ([`Waiting`]), without asking
//! the limiter's row: a burst of thousands costs one cheap update each, not
//! a turn on one locked row each.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use hookline_core::{WebhookId, fence::unix_ms};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::startup::Context;

/// Most deliveries of one webhook released by one tick.
const PER_WEBHOOK: i64 = 2_000;

/// How far ahead of now places are handed out, beyond one tick: a pump
/// that runs late (a loaded machine) by less than this loses no places,
/// since the queue's end is then still ahead of now.
const AHEAD: Duration = Duration::from_secs(1);

/// How many webhooks [`Waiting`] holds before it drops those that ran out.
const PRUNE_AT: usize = 256;

/// Webhooks whose limit a worker found full lately: their fresh deliveries
/// are queued without asking the limiter for a tick.
#[derive(Debug)]
pub struct Waiting {
    /// The rate pump's tick (`HOOKLINE_RATE_TICK_MS`).
    tick: Duration,
    until: Mutex<HashMap<WebhookId, Instant>>,
}

impl Waiting {
    /// Remembering a full limit for `tick`.
    pub fn new(tick: Duration) -> Self {
        Self { tick, until: Mutex::default() }
    }

    /// Whether `webhook`'s limit was found full within the last tick.
    pub fn is_full(&self, webhook: WebhookId) -> bool {
        let mut until = self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match until.get(&webhook) {
            Some(t) if *t > Instant::now() => true,
            Some(_) => {
                until.remove(&webhook);
                false
            }
            None => false,
        }
    }

    /// `webhook`'s limit was found full: queue its fresh deliveries for a tick.
    /// Entries that ran out are dropped once there are [`PRUNE_AT`] of
    /// them, so webhooks limited once do not stay in the map.
    pub fn found_full(&self, webhook: WebhookId) {
        let mut until = self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if until.len() >= PRUNE_AT {
            until.retain(|_, t| *t > now);
        }
        until.insert(webhook, now + self.tick);
    }

    /// Webhooks remembered (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

/// Released places that fall within the same window of this many
/// milliseconds go together (a divisor of 1,000, so a window never spans
/// two seconds and no request goes in an earlier second than its place).
const CLUMP_MS: i64 = 100;

/// Releases queued deliveries every `tick` until `shutdown` is cancelled;
/// what it releases is attempted on `tracker`'s tasks (which a stopping
/// worker waits for).
pub(crate) async fn run(ctx: Arc<Context>, tick: Duration, tracker: TaskTracker, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let horizon = time::Duration::try_from(tick + AHEAD).unwrap_or(time::Duration::SECOND);
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let steps = match ctx.store.release_rate_queued(horizon, PER_WEBHOOK).await {
            Ok(steps) => {
                failing = false;
                steps
            }
            Err(e) => {
                // Said once per outage; the next tick tries again.
                if !failing {
                    tracing::warn!(error.message = %e, "releasing rate-limited deliveries failed");
                }
                failing = true;
                continue;
            }
        };
        if steps.is_empty() {
            continue;
        }
        ctx.metrics.rate_released.add(&[], u64::try_from(steps.len()).unwrap_or(u64::MAX));
        tracker.spawn(send_in_time(ctx.clone(), steps, tracker.clone(), shutdown.clone()));
    }
}

/// How many of the places (Unix ms, in order) go now, at the first one's
/// time: those in the first one's window of [`CLUMP_MS`] (and any before it
/// that are late). At least one.
fn clump(mut places: impl Iterator<Item = i64>) -> usize {
    let Some(first) = places.next() else { return 1 };
    let window = first.div_euclid(CLUMP_MS);
    1 + places.take_while(|at| at.div_euclid(CLUMP_MS) <= window).count()
}

/// Attempts the released steps (in due order) in this worker, a clump at a
/// time ([`CLUMP_MS`]) from the first place of each clump, holding their
/// places, with no broker message. Each attempt takes
/// one of the worker's attempt permits (`HOOKLINE_WORKER_CONCURRENCY`).
/// Cut short by `shutdown`, it queues the rest again (at the front: the
/// queue is in delivery order); what it cannot is overdue in Postgres and
/// reconciled.
async fn send_in_time(
    ctx: Arc<Context>,
    steps: Vec<hookline_store::Due>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut rest = steps.as_slice();
    while let Some(first) = rest.first() {
        let wait = first.at - OffsetDateTime::now_utc();
        if let Ok(wait) = Duration::try_from(wait)
            && !wait.is_zero()
        {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let back: Vec<_> = rest.iter().map(|s| (s.id, Some(unix_ms(s.at)))).collect();
                    let _ = ctx.store.queue_all_for_rate(&back).await;
                    return;
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
        let (due, later) = rest.split_at(clump(rest.iter().map(|s| unix_ms(s.at))));
        rest = later;
        for step in due {
            let msg = crate::startup::step_message(step).holding_slot(unix_ms(step.at));
            let ctx = ctx.clone();
            tracker.spawn(async move {
                let Ok(_permit) = ctx.attempts.acquire().await else { return };
                crate::deliver::handle_released(&ctx, msg).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Webhooks whose tick ran out are dropped once the map is large,
    /// without a lookup of each.
    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_pruned() {
        let waiting = Waiting::new(Duration::from_millis(100));
        for _ in 0..PRUNE_AT {
            waiting.found_full(WebhookId::from_uuid(uuid::Uuid::now_v7()));
        }
        assert_eq!(waiting.len(), PRUNE_AT);
        tokio::time::advance(Duration::from_millis(101)).await;
        let w = WebhookId::from_uuid(uuid::Uuid::now_v7());
        waiting.found_full(w);
        assert_eq!(waiting.len(), 1, "only the live entry is left");
        assert!(waiting.is_full(w));
    }

    /// A clump is one window of its first place: places 21.6 ms apart
    /// (50/s) go four or five at a time, never across a second.
    #[test]
    fn clumps_stay_within_their_window_and_second() {
        let places: Vec<i64> = (0..200).map(|i| 1_000_000_980 + i * 216 / 10).collect();
        let mut rest = places.as_slice();
        while !rest.is_empty() {
            let n = clump(rest.iter().copied());
            let (now, later) = rest.split_at(n);
            assert!((1..=5).contains(&n), "{n} in one clump");
            assert_eq!(now[0] / 1000, now[n - 1] / 1000, "a clump never spans two seconds");
            assert_eq!(now[0] / CLUMP_MS, now[n - 1] / CLUMP_MS);
            if let Some(next) = later.first() {
                assert!(next / CLUMP_MS > now[0] / CLUMP_MS, "the next clump is a later window");
            }
            rest = later;
        }
        assert_eq!(clump([5, 3, 120].into_iter()), 2, "late places go with the clump");
        assert_eq!(clump(std::iter::empty()), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_limit_is_remembered_for_a_tick() {
        let waiting = Waiting::new(Duration::from_millis(100));
        let w = WebhookId::from_uuid(uuid::Uuid::now_v7());
        assert!(!waiting.is_full(w));
        waiting.found_full(w);
        assert!(waiting.is_full(w));
        assert!(!waiting.is_full(WebhookId::from_uuid(uuid::Uuid::now_v7())), "per webhook");
        tokio::time::advance(Duration::from_millis(101)).await;
        assert!(!waiting.is_full(w), "forgotten after the tick");
    }
}
