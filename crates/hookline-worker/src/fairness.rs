//! Fair shares of a worker's attempt capacity: one slow or failing endpoint,
//! or one account with many of them, cannot take the slots others need.
//!
//! - Per webhook ([`InFlight`]): at most `cap` requests in flight per worker.
//!   A delivery that finds its webhook at the cap waits for a slot only when
//!   that is quick: the webhook is answering (a request finished in the last
//!   [`FLOWING`]) and answers fast (recent requests took under [`QUICK`] on
//!   average, a bar that rises up to [`MAX_QUICK`] while all of the worker's
//!   requests are slow), and for at most [`MAX_WAIT`]; otherwise it goes back to the
//!   broker at once (a delay tier, [`defer_delay`]: 2 s, doubling up to 30 s
//!   as it keeps finding the webhook busy), freeing the worker's slot.
//! - Per tenant ([`Shares`]): at most `share` requests in flight per worker
//!   for one account. A delivery to a webhook not known to be slow (quick,
//!   or not answered yet) waits for a slot in its account's share while
//!   that stays so (they turn over within moments); one to a slow webhook
//!   goes back to the broker at once, so an
//!   account whose endpoints are slow never holds the capacity other
//!   accounts' deliveries need.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use hookline_core::{TenantId, WebhookId};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    // Tokio's clock, so tests can pause it.
    time::Instant,
};

/// A webhook with a request finished this recently counts as answering.
pub const FLOWING: Duration = Duration::from_millis(500);

/// How often a delivery waiting for a slot checks that its webhook still
/// answers.
pub const WAIT_FOR_SLOT: Duration = Duration::from_millis(200);

/// A webhook whose recent requests took less than this on average is worth
/// waiting for when it is at its cap. While every request of the worker is
/// slow (the machine is overloaded), the bar rises with the worker's typical
/// request time, up to [`MAX_QUICK`]: a webhook is slow beside the others,
/// not because everything is.
pub const QUICK: Duration = Duration::from_millis(250);

/// The highest the bar for "quick" goes under overload: an endpoint that
/// takes longer than this is slow whatever else is.
pub const MAX_QUICK: Duration = Duration::from_secs(1);

/// The longest a delivery waits for a busy webhook's slot.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// How long a deferred delivery waits before trying again, the first time.
pub const DEFER: Duration = Duration::from_secs(2);

/// The longest a deferred delivery waits before trying again.
pub const MAX_DEFER: Duration = Duration::from_secs(30);

/// The longest a delivery deferred for a busy but quick webhook (or
/// account) waits.
pub const MAX_QUICK_DEFER: Duration = Duration::from_secs(4);

/// How long a delivery whose webhook is busy but answers quickly waits after
/// `deferrals` deferrals: from [`PROBE_WAIT`], doubling up to
/// [`MAX_QUICK_DEFER`] (its slots free up within moments).
pub fn quick_defer_delay(deferrals: u32) -> Duration {
    PROBE_WAIT.saturating_mul(1u32 << deferrals.min(8)).min(MAX_QUICK_DEFER)
}

/// How long a delivery waiting for its unhealthy webhook's probe waits, the
/// first time.
pub const PROBE_WAIT: Duration = Duration::from_millis(250);

/// How long a delivery that found its unhealthy webhook's probe in flight
/// `deferrals` times already waits now: from [`PROBE_WAIT`] (a probe that
/// succeeds brings the webhook back to full speed quickly), doubling up to
/// [`MAX_DEFER`] while it keeps failing.
pub fn probe_wait_delay(deferrals: u32) -> Duration {
    PROBE_WAIT.saturating_mul(1u32 << deferrals.min(8)).min(MAX_DEFER)
}

/// How long a delivery deferred `deferrals` times already waits now: twice
/// as long each time, up to [`MAX_DEFER`], so the messages of a webhook that
/// hangs for a long time do not circle through the broker every few seconds.
pub fn defer_delay(deferrals: u32) -> Duration {
    DEFER.saturating_mul(1u32 << deferrals.min(8)).min(MAX_DEFER)
}

#[derive(Debug)]
struct Pace {
    /// When a request last finished, or the webhook last went from idle to
    /// busy (so a burst of first requests counts as progress, not a hang).
    last_progress: Instant,
    /// How long its requests took lately (a moving average); `None` until
    /// its first answer.
    typical: Option<Duration>,
}

#[derive(Debug)]
struct Entry {
    semaphore: Arc<Semaphore>,
    pace: Mutex<Pace>,
}

impl Entry {
    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn progress(&self) {
        self.pace().last_progress = Instant::now();
    }

    fn took(&self, took: Duration) {
        let mut pace = self.pace();
        pace.last_progress = Instant::now();
        // Each request counts for a quarter: a slowing endpoint is noticed
        // within a few requests.
        pace.typical = Some(pace.typical.map_or(took, |typical| (typical * 3 + took) / 4));
    }

    /// Answering, and fast enough that waiting for a slot costs little.
    fn worth_waiting(&self, quick: Duration) -> bool {
        let pace = self.pace();
        pace.last_progress.elapsed() < FLOWING && pace.typical.is_none_or(|t| t < quick)
    }
}

/// One request's slot. Releasing it is not progress: a slot given back
/// unused (its delivery deferred) says nothing about the webhook; a
/// finished request is noted by [`InFlight::answered`].
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// The per-webhook slots of one worker.
#[derive(Debug)]
pub struct InFlight {
    cap: usize,
    entries: Mutex<HashMap<WebhookId, Arc<Entry>>>,
    /// How long this worker's requests took lately, whatever their webhook
    /// (a moving average): what "quick" is measured against.
    overall: Mutex<Option<Duration>>,
}

impl InFlight {
    /// At most `cap` requests per webhook at once.
    pub fn new(cap: usize) -> Self {
        Self { cap: cap.max(1), entries: Mutex::new(HashMap::new()), overall: Mutex::new(None) }
    }

    /// Below this, a webhook's typical request time is quick: [`QUICK`], or
    /// twice the worker's typical request time when every request is slow,
    /// at most [`MAX_QUICK`].
    pub fn quick(&self) -> Duration {
        let overall = *self.overall.lock().unwrap_or_else(PoisonError::into_inner);
        overall.map_or(QUICK, |o| o.saturating_mul(2).clamp(QUICK, MAX_QUICK))
    }

    fn entry(&self, webhook: WebhookId) -> Arc<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .entry(webhook)
            .or_insert_with(|| {
                Arc::new(Entry {
                    semaphore: Arc::new(Semaphore::new(self.cap)),
                    pace: Mutex::new(Pace { last_progress: Instant::now(), typical: None }),
                })
            })
            .clone()
    }

    /// Whether `webhook` is not known to be slow: its recent requests took
    /// under [`InFlight::quick`] on average (or it has not answered yet),
    /// and while it has requests in flight one has finished within that
    /// time. A webhook whose first requests hang is slow once they have
    /// hung that long.
    pub fn is_quick(&self, webhook: WebhookId) -> bool {
        let quick = self.quick();
        let entry = self.entry(webhook);
        let busy = entry.semaphore.available_permits() < self.cap;
        let pace = entry.pace();
        pace.typical.is_none_or(|t| t < quick) && !(busy && pace.last_progress.elapsed() > quick)
    }

    /// Notes how long `webhook` took to answer a request (the request
    /// alone: recording it is not the webhook's time).
    pub fn answered(&self, webhook: WebhookId, took: Duration) {
        self.entry(webhook).took(took);
        let mut overall = self.overall.lock().unwrap_or_else(PoisonError::into_inner);
        // Each request counts for a sixteenth: the bar moves with the
        // machine, not with one endpoint's burst.
        *overall = Some(overall.map_or(took, |o| (o * 15 + took) / 16));
    }

    fn try_entry(entry: Arc<Entry>, cap: usize) -> Result<Slot, Arc<Entry>> {
        let idle = entry.semaphore.available_permits() == cap;
        match entry.semaphore.clone().try_acquire_owned() {
            Ok(permit) => {
                if idle {
                    entry.progress();
                }
                Ok(Slot { _permit: permit })
            }
            Err(_) => Err(entry),
        }
    }

    /// A slot for `webhook`; `None` when the caller should defer the delivery.
    pub async fn acquire(&self, webhook: WebhookId) -> Option<Slot> {
        let entry = match Self::try_entry(self.entry(webhook), self.cap) {
            Ok(slot) => return Some(slot),
            Err(entry) => entry,
        };
        // Wait for a slot while the webhook answers quickly, for a bounded
        // time; give up as soon as it slows down or stops.
        let started = Instant::now();
        loop {
            if !entry.worth_waiting(self.quick()) || started.elapsed() >= MAX_WAIT {
                return None;
            }
            match tokio::time::timeout(WAIT_FOR_SLOT, entry.semaphore.clone().acquire_owned()).await {
                Ok(Ok(permit)) => return Some(Slot { _permit: permit }),
                Ok(Err(_)) => return None,
                Err(_) => {}
            }
        }
    }
}

/// One account's share of a worker's attempts.
#[derive(Debug)]
pub struct Shares {
    share: usize,
    tenants: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
}

/// A slot in an account's share, held for one request.
#[derive(Debug)]
pub struct Share(#[allow(dead_code)] OwnedSemaphorePermit);

impl Shares {
    /// At most `share` requests in flight per account.
    pub fn new(share: usize) -> Self {
        Self { share: share.max(1), tenants: Mutex::new(HashMap::new()) }
    }

    fn semaphore(&self, tenant: &TenantId) -> Arc<Semaphore> {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants.entry(tenant.clone()).or_insert_with(|| Arc::new(Semaphore::new(self.share))).clone()
    }

    /// A slot in `tenant`'s share, without waiting: `None` when the account
    /// has its share in flight (its delivery goes back to the broker).
    pub fn try_take(&self, tenant: &TenantId) -> Option<Share> {
        self.semaphore(tenant).try_acquire_owned().ok().map(Share)
    }

    /// A slot in `tenant`'s share for a request to a webhook that answers
    /// quickly: its slots turn over within moments, so it waits (at most
    /// [`MAX_WAIT`]) rather than going back to the broker, for as long as
    /// `still_quick` says the webhook is (checked every [`WAIT_FOR_SLOT`]).
    pub async fn take_quick(&self, tenant: &TenantId, still_quick: impl Fn() -> bool) -> Option<Share> {
        let semaphore = self.semaphore(tenant);
        let started = Instant::now();
        while started.elapsed() < MAX_WAIT {
            match tokio::time::timeout(WAIT_FOR_SLOT, semaphore.clone().acquire_owned()).await {
                Ok(Ok(permit)) => return Some(Share(permit)),
                Ok(Err(_)) => return None,
                Err(_) if !still_quick() => return None,
                Err(_) => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits for a probe double from [`PROBE_WAIT`] and stop at [`MAX_DEFER`].
    #[test]
    fn probe_waits_back_off() {
        assert_eq!(probe_wait_delay(0), PROBE_WAIT);
        assert_eq!(probe_wait_delay(2), PROBE_WAIT * 4);
        assert_eq!(probe_wait_delay(u32::MAX), MAX_DEFER);
    }

    /// Deferral delays double from [`DEFER`] and stop at [`MAX_DEFER`].
    #[test]
    fn deferral_backs_off() {
        assert_eq!(defer_delay(0), DEFER);
        assert_eq!(defer_delay(1), DEFER * 2);
        assert_eq!(defer_delay(3), DEFER * 8);
        assert_eq!(defer_delay(4), MAX_DEFER);
        assert_eq!(defer_delay(u32::MAX), MAX_DEFER);
    }

    /// A webhook gets `cap` slots; others are unaffected. At the cap, a
    /// webhook that made progress lately (here: a burst just started) and
    /// answers quickly makes the next caller wait for a slot; one whose
    /// requests have hung for [`FLOWING`] is deferred at once. On tokio's
    /// paused clock: the sleeps and waits are exact, whatever the machine's
    /// load.
    #[tokio::test(start_paused = true)]
    async fn caps_per_webhook() {
        let in_flight = Arc::new(InFlight::new(2));
        let a = WebhookId::from_uuid(uuid::Uuid::from_u128(1));
        let b = WebhookId::from_uuid(uuid::Uuid::from_u128(2));
        let first = in_flight.acquire(a).await.expect("slot 1");
        let second = in_flight.acquire(a).await.expect("slot 2");
        // A burst just started: the third waits and gets the slot freed.
        let waiter = {
            let in_flight = in_flight.clone();
            tokio::spawn(async move { in_flight.acquire(a).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        let third = waiter.await.expect("task").expect("a busy, answering webhook's delivery waits for a slot");
        assert!(in_flight.acquire(b).await.is_some(), "b is not affected");

        // Nothing finishes for longer than FLOWING: a is hanging.
        tokio::time::sleep(FLOWING + Duration::from_millis(50)).await;
        let started = Instant::now();
        assert!(in_flight.acquire(a).await.is_none(), "a hanging webhook at its cap is deferred");
        assert!(started.elapsed() < WAIT_FOR_SLOT, "without waiting");
        drop(second);
        let fourth = in_flight.acquire(a).await.expect("a released slot is free again");
        drop((third, fourth));
    }
    /// An account gets `share` slots, taken without waiting; another account
    /// is not affected, and a released slot is free again.
    #[test]
    fn shares_per_tenant() {
        let shares = Shares::new(2);
        let a = TenantId::parse("a").expect("valid");
        let b = TenantId::parse("b").expect("valid");
        let one = shares.try_take(&a).expect("1");
        let two = shares.try_take(&a).expect("2");
        assert!(shares.try_take(&a).is_none(), "a has its share in flight");
        assert!(shares.try_take(&b).is_some(), "b is not affected");
        drop(one);
        assert!(shares.try_take(&a).is_some());
        drop(two);
    }

    /// A webhook whose requests are slow is not waited for at its cap, even
    /// while it answers.
    #[tokio::test(start_paused = true)]
    async fn slow_webhooks_are_not_waited_for() {
        let in_flight = InFlight::new(1);
        let a = WebhookId::from_uuid(uuid::Uuid::from_u128(1));
        let slot = in_flight.acquire(a).await.expect("slot");
        in_flight.answered(a, QUICK * 5);
        drop(slot);
        assert!(!in_flight.is_quick(a));
        let _busy = in_flight.acquire(a).await.expect("slot");
        let started = Instant::now();
        assert!(in_flight.acquire(a).await.is_none(), "a slow webhook at its cap is deferred");
        assert!(started.elapsed() < WAIT_FOR_SLOT);
    }
}
