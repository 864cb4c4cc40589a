//! Retention: events older than `HOOKLINE_RETENTION` (default 30 days) are
//! removed, and with them their deliveries and attempts, by one worker at a
//! time; every worker makes the partitions of the days ahead.
//!
//! Every `HOOKLINE_RETENTION_INTERVAL_MS` each worker tries to start a run
//! (`Store::retention_run`: an advisory lock; a worker that does not get it
//! waits for the next interval). A run records its cutoff (now minus the
//! window), drops the day partitions of deliveries and attempts that lie
//! wholly before it (`RetentionRun::drop_expired`: no rows deleted, nothing
//! left to vacuum; see the store's `retention` module), then removes the
//! oldest events before it in batches of `HOOKLINE_RETENTION_BATCH`, each
//! its own short transaction, until a batch comes back short. Events are
//! the one table still deleted row by row (their key deduplicates across
//! any time, which a partitioned table cannot enforce). Between batches it
//! pauses, so deliveries never wait behind it and autovacuum can make the
//! freed space reusable as fast as it is freed: at least
//! `HOOKLINE_RETENTION_PAUSE_MS`, and long enough that the run spends at
//! most `HOOKLINE_RETENTION_BUSY_PERCENT` of its time deleting (a batch
//! that took 40 ms is followed by 760 ms at 5 %). The pause scales with
//! what a batch costs on this database at this moment, and it backs off
//! further when the database is busy ([`Pacer`]): a batch that took three
//! times as long as this worker's quickest is followed by a pause three
//! times as long again, so under full load the run takes about a third of
//! its share, and a quiet database clears a backlog at the full share.
//! Each run logs one line and counts the events it removed
//! (`hookline_retention_events_removed_total`).
//!
//! What goes: every event received before the cutoff, whatever its
//! deliveries' state; a delivery is shown only with its event, so its
//! deliveries are gone for every reader at once, and their rows with their
//! day's partition. A delivery before the cutoff still `pending` or
//! `retrying` (suspended for longer than the window) is deleted by the run
//! itself, so it is never attempted; a message that later arrives for it
//! finds no row and is acked without a request, as for a deleted webhook.
//! A redelivered event message is a duplicate only while its event is
//! within the window.

use std::{sync::Arc, time::Duration};

use hookline_store::{Dropped, Removed, Store};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::startup::Context;

/// How a worker applies retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Events received longer ago than this are removed
    /// (`HOOKLINE_RETENTION`); zero keeps everything.
    pub window: Duration,
    /// How often a worker tries to start a run
    /// (`HOOKLINE_RETENTION_INTERVAL_MS`).
    pub interval: Duration,
    /// Events removed per batch, each batch one transaction
    /// (`HOOKLINE_RETENTION_BATCH`).
    pub batch: u32,
    /// The least pause between two batches (`HOOKLINE_RETENTION_PAUSE_MS`).
    pub pause: Duration,
    /// The most of its time a run spends in batches, in percent
    /// (`HOOKLINE_RETENTION_BUSY_PERCENT`, 1 to 100).
    pub busy_percent: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(30 * 86_400),
            interval: Duration::from_secs(60),
            batch: 1000,
            pause: Duration::from_millis(20),
            // Measured (docs/BENCHMARKS.md, retention): at 10 % and no
            // back-off, the fan-out-1 load beside a removal ran at 0.81 of
            // its deliveries/s without; the share is halved and backs off.
            busy_percent: 5,
        }
    }
}

impl Retention {
    /// Whether anything is ever removed.
    pub fn is_on(&self) -> bool {
        !self.window.is_zero()
    }

    /// The pause after a batch that took `took`: long enough that batches
    /// take at most `busy_percent` of the run's time, and at least `pause`.
    pub fn pause_after(&self, took: Duration) -> Duration {
        let busy = self.busy_percent.clamp(1, 100);
        let idle = took.saturating_mul(100 - busy) / busy;
        idle.max(self.pause)
    }

    /// The cutoff at `now`: events received before it are removed.
    pub fn cutoff(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let window = time::Duration::try_from(self.window).ok()?;
        now.checked_sub(window)
    }
}

/// The most [`Pacer`] stretches a pause by: however busy the database, a
/// run still takes at least this fraction of its share, so a database that
/// is never quiet still sees its old rows go, only more slowly.
const MOST_BACK_OFF: f64 = 8.0;

/// A worker's pacing across its runs: the share of [`Retention::pause_after`],
/// backed off further while batches run slower than this worker's quickest.
///
/// Why the batch's own time is the signal: deleting a thousand events costs
/// the same work whenever it runs, so a batch that takes three times as long
/// as the quickest one waited for the CPU, the disk or locks, which the
/// deliveries want too. Multiplying the pause by that slowdown brings the
/// run's share down with it (to a third of `busy_percent` at three times),
/// where a pause proportional to the batch alone would keep the share the
/// same however loaded the database is.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pacer {
    /// The quickest full batch this worker ran. It creeps up by 1/256 of
    /// the gap after each slower batch, so tables grown for good (or a
    /// slower database) are not taken as busy forever: a load that lasts
    /// hours becomes the norm and the run goes back to its full share.
    quickest: Option<Duration>,
}

impl Pacer {
    /// The pause after a full batch that took `took`.
    pub fn pause_after(&mut self, retention: &Retention, took: Duration) -> Duration {
        let quickest = match self.quickest {
            Some(q) if q <= took => q + (took - q) / 256,
            _ => took,
        };
        self.quickest = Some(quickest);
        let slowdown = (took.as_secs_f64() / quickest.as_secs_f64().max(1e-6)).clamp(1.0, MOST_BACK_OFF);
        retention.pause_after(took).mul_f64(slowdown).max(retention.pause)
    }
}

/// What one run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Swept {
    /// Events removed (with their deliveries and attempts).
    pub events: u64,
    /// Batches run.
    pub batches: u32,
    /// The days of deliveries and attempts dropped, and the rows before the
    /// cutoff deleted one by one.
    pub dropped: Dropped,
    /// The run's cutoff.
    pub cutoff: OffsetDateTime,
    /// Whether it stopped before removing everything before the cutoff
    /// (the worker is stopping).
    pub interrupted: bool,
}

/// Applies retention until `shutdown` is cancelled: a first run at start,
/// then one every interval; and makes the partitions ahead, at start and
/// every [`PARTITION_CHECK`], whether retention is on or off.
pub(crate) async fn run(ctx: Arc<Context>, retention: Retention, shutdown: CancellationToken) {
    let mut partitions_made_at: Option<tokio::time::Instant> = None;
    if !retention.is_on() {
        tracing::info!("retention is off (HOOKLINE_RETENTION=0): events, deliveries and attempts are kept");
    }
    let mut pacer = Pacer::default();
    loop {
        // Partitions ahead, whether or not anything is removed: without
        // them every delivery would go to the default partition.
        if partitions_made_at.is_none_or(|at| at.elapsed() >= PARTITION_CHECK) {
            match make_partitions(&ctx.store, OffsetDateTime::now_utc()).await {
                Ok(made) => {
                    partitions_made_at = Some(tokio::time::Instant::now());
                    if made > 0 {
                        tracing::info!(days = made, "made the day partitions of deliveries and attempts ahead");
                    }
                }
                Err(e) => {
                    tracing::warn!(error.message = %e, "making partitions ahead failed; trying again next interval")
                }
            }
        }
        if retention.is_on() {
            let started = tokio::time::Instant::now();
            match sweep(&ctx.store, &retention, &mut pacer, OffsetDateTime::now_utc(), &shutdown, |n| {
                ctx.metrics.retention_removed.add(&[], n);
            })
            .await
            {
                Ok(Some(swept)) => tracing::info!(
                    events_removed = swept.events,
                    batches = swept.batches,
                    days_dropped = swept.dropped.days,
                    days_deferred = swept.dropped.deferred,
                    stragglers = swept.dropped.stragglers,
                    cutoff = %hookline_core::format_timestamp(swept.cutoff),
                    took_ms = started.elapsed().as_millis(),
                    interrupted = swept.interrupted,
                    "retention run"
                ),
                Ok(None) => tracing::debug!("retention: another worker's run is under way"),
                // The database is away, or a batch lost a lock race: the rows
                // are still there for the next run.
                Err(e) => tracing::warn!(error.message = %e, "retention run failed; trying again next interval"),
            }
        }
        let wait = if retention.is_on() { retention.interval } else { PARTITION_CHECK };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Days of partitions made ahead of today (UTC): a worker that stops for
/// less than this leaves none of the days to come without partitions.
pub const PARTITION_DAYS_AHEAD: i64 = 7;

/// How often a worker checks that the days ahead have their partitions.
const PARTITION_CHECK: Duration = Duration::from_secs(3600);

/// Makes the partitions of today and the [`PARTITION_DAYS_AHEAD`] days
/// after it that are missing; returns how many days it made.
pub async fn make_partitions(store: &Store, now: OffsetDateTime) -> Result<u64, hookline_store::Error> {
    store.make_partitions(now, now + time::Duration::days(PARTITION_DAYS_AHEAD)).await
}

/// One run at `now`, if no other worker's is under way (`None`): removes
/// everything received before the cutoff, batch by batch, calling
/// `removed` after each batch with the events it removed, pausing between
/// batches as `pacer` says. A stop ends it between batches.
pub async fn sweep(
    store: &Store,
    retention: &Retention,
    pacer: &mut Pacer,
    now: OffsetDateTime,
    shutdown: &CancellationToken,
    mut removed: impl FnMut(u64),
) -> Result<Option<Swept>, hookline_store::Error> {
    let Some(cutoff) = retention.cutoff(now) else { return Ok(None) };
    let Some(run) = store.retention_run().await? else { return Ok(None) };
    let limit = i64::from(retention.batch.max(1));
    let result = async {
        run.begin(cutoff, now).await?;
        let dropped = run.drop_expired(cutoff).await?;
        let mut swept = Swept { events: 0, batches: 0, dropped, cutoff, interrupted: false };
        let mut from = None;
        loop {
            let began = tokio::time::Instant::now();
            let Removed { events, through } = run.remove(from, cutoff, limit).await?;
            let took = began.elapsed();
            swept.batches += 1;
            swept.events += events;
            removed(events);
            if events < u64::try_from(limit).unwrap_or(u64::MAX) {
                return Ok(swept);
            }
            from = through;
            tokio::select! {
                () = shutdown.cancelled() => return Ok(Swept { interrupted: true, ..swept }),
                () = tokio::time::sleep(pacer.pause_after(retention, took)) => {}
            }
        }
    }
    .await;
    run.finish().await;
    result.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pause keeps batches to their share of the run's time, and is
    /// never below the least pause.
    #[test]
    fn pauses_keep_the_share() {
        let r = Retention { pause: Duration::from_millis(20), busy_percent: 10, ..Retention::default() };
        assert_eq!(r.pause_after(Duration::from_millis(40)), Duration::from_millis(360));
        assert_eq!(r.pause_after(Duration::from_millis(1)), Duration::from_millis(20));
        let all = Retention { busy_percent: 100, pause: Duration::ZERO, ..r };
        assert_eq!(all.pause_after(Duration::from_millis(40)), Duration::ZERO);
        let zero = Retention { busy_percent: 0, ..r };
        assert_eq!(zero.pause_after(Duration::from_millis(40)), Duration::from_millis(3960), "taken as 1 %");
    }

    /// A batch as quick as the quickest keeps the share; a slower one
    /// stretches the pause by its slowdown, up to the most back-off; the
    /// quickest creeps towards slower batches and follows quicker ones.
    #[test]
    fn backs_off_while_batches_are_slow() {
        let r = Retention { pause: Duration::from_millis(20), busy_percent: 5, ..Retention::default() };
        let ms = Duration::from_millis;
        let mut pacer = Pacer::default();
        assert_eq!(pacer.pause_after(&r, ms(40)), ms(760), "the first batch is the quickest");
        assert_eq!(pacer.pause_after(&r, ms(40)), ms(760));
        // Three times as long: 3 × 19 × 120 ms, i.e. a share of 1.7 %.
        let slow = pacer.pause_after(&r, ms(120));
        assert!(slow > ms(6700) && slow <= ms(6840), "{slow:?}");
        assert_eq!(pacer.quickest, Some(ms(40) + ms(80) / 256), "crept up");
        let stalled = pacer.pause_after(&r, ms(4000));
        assert!(
            stalled <= ms(4000 * 19 * 8) && stalled > ms(4000 * 19 * 7),
            "at most {MOST_BACK_OFF} times: {stalled:?}"
        );
        assert_eq!(pacer.pause_after(&r, ms(20)), ms(380), "a quicker batch is the new quickest");
        assert_eq!(pacer.pause_after(&r, ms(0)), ms(20), "never below the least pause");
    }

    /// The cutoff is the window before now; a zero window is off.
    #[test]
    fn cutoff() {
        let now = time::macros::datetime!(2026-12-31 00:00 UTC);
        let r = Retention::default();
        assert_eq!(r.cutoff(now), Some(time::macros::datetime!(2026-12-01 00:00 UTC)));
        assert!(r.is_on());
        assert!(!Retention { window: Duration::ZERO, ..r }.is_on());
    }
}
