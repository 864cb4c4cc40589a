//! Per-webhook in-flight cap: one slow or failing endpoint cannot take every
//! delivery slot of a worker.
//!
//! Each webhook gets at most `cap` requests in flight per worker. A delivery
//! that finds its webhook at the cap is handled by how the webhook is doing:
//! if it made progress in the last [`FLOWING`] (a request finished, or it
//! went from idle to busy), it is busy but answering, and the delivery waits
//! for a slot (re-checking every [`WAIT_FOR_SLOT`] that it still answers);
//! if not, its requests have hung for that long, and the delivery is
//! deferred at once through a delay tier ([`defer_delay`]: 2 s, doubling up
//! to 30 s as it keeps hanging), freeing the worker slot for other webhooks.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use hookline_core::WebhookId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A webhook with a request finished this recently counts as answering.
pub const FLOWING: Duration = Duration::from_millis(500);

/// How often a delivery waiting for a slot checks that its webhook still
/// answers.
pub const WAIT_FOR_SLOT: Duration = Duration::from_millis(200);

/// How long a deferred delivery waits before trying again, the first time.
pub const DEFER: Duration = Duration::from_secs(2);

/// The longest a deferred delivery waits before trying again.
pub const MAX_DEFER: Duration = Duration::from_secs(30);

/// How long a delivery deferred `deferrals` times already waits now: twice
/// as long each time, up to [`MAX_DEFER`], so the messages of a webhook that
/// hangs for a long time do not circle through the broker every few seconds.
pub fn defer_delay(deferrals: u32) -> Duration {
    DEFER.saturating_mul(1u32 << deferrals.min(8)).min(MAX_DEFER)
}

#[derive(Debug)]
struct Entry {
    semaphore: Arc<Semaphore>,
    /// When a request last finished, or the webhook last went from idle to
    /// busy (so a burst of first requests counts as progress, not a hang).
    last_progress: Mutex<Instant>,
}

impl Entry {
    fn progress(&self) {
        *self.last_progress.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn flowing(&self) -> bool {
        self.last_progress.lock().unwrap_or_else(PoisonError::into_inner).elapsed() < FLOWING
    }
}

/// One request's slot; releasing it notes when the webhook last answered.
#[derive(Debug)]
pub struct Slot {
    entry: Arc<Entry>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.entry.progress();
    }
}

/// The per-webhook slots of one worker.
#[derive(Debug)]
pub struct InFlight {
    cap: usize,
    entries: Mutex<HashMap<WebhookId, Arc<Entry>>>,
}

impl InFlight {
    /// At most `cap` requests per webhook at once.
    pub fn new(cap: usize) -> Self {
        Self { cap: cap.max(1), entries: Mutex::new(HashMap::new()) }
    }

    fn entry(&self, webhook: WebhookId) -> Arc<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .entry(webhook)
            .or_insert_with(|| {
                Arc::new(Entry {
                    semaphore: Arc::new(Semaphore::new(self.cap)),
                    last_progress: Mutex::new(Instant::now()),
                })
            })
            .clone()
    }

    /// A slot for `webhook`; `None` when the caller should defer the delivery.
    pub async fn acquire(&self, webhook: WebhookId) -> Option<Slot> {
        let entry = self.entry(webhook);
        let idle = entry.semaphore.available_permits() == self.cap;
        if let Ok(permit) = entry.semaphore.clone().try_acquire_owned() {
            if idle {
                entry.progress();
            }
            return Some(Slot { entry, _permit: permit });
        }
        // Wait for a slot as long as the webhook keeps answering; give up
        // as soon as it stops (its requests hang).
        loop {
            if !entry.flowing() {
                return None;
            }
            match tokio::time::timeout(WAIT_FOR_SLOT, entry.semaphore.clone().acquire_owned()).await {
                Ok(Ok(permit)) => return Some(Slot { entry, _permit: permit }),
                Ok(Err(_)) => return None,
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    /// webhook that made progress lately (here: a burst just started) makes
    /// the next caller wait for a slot; one whose requests have hung for
    /// [`FLOWING`] is deferred at once.
    #[tokio::test]
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
}
