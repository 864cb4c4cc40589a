//! Per-webhook in-flight cap: one slow or failing endpoint cannot take every
//! delivery slot of a worker.
//!
//! Each webhook gets at most `cap` requests in flight per worker. A delivery
//! that finds its webhook at the cap waits briefly (a fast endpoint frees a
//! slot within milliseconds); if none frees up, the message is deferred
//! through a delay tier and its worker slot goes to other webhooks.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use hookline_core::WebhookId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a delivery waits for its webhook's slot before being deferred.
pub const WAIT_FOR_SLOT: Duration = Duration::from_millis(50);

/// How long a deferred delivery waits before trying again.
pub const DEFER: Duration = Duration::from_secs(1);

/// The per-webhook slots of one worker.
#[derive(Debug)]
pub struct InFlight {
    cap: usize,
    slots: Mutex<HashMap<WebhookId, Arc<Semaphore>>>,
}

impl InFlight {
    /// At most `cap` requests per webhook at once.
    pub fn new(cap: usize) -> Self {
        Self { cap: cap.max(1), slots: Mutex::new(HashMap::new()) }
    }

    fn semaphore(&self, webhook: WebhookId) -> Arc<Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.entry(webhook).or_insert_with(|| Arc::new(Semaphore::new(self.cap))).clone()
    }

    /// A slot for `webhook`, waiting at most `wait`; `None` when the webhook
    /// stays at its cap (the caller defers the delivery).
    pub async fn acquire(&self, webhook: WebhookId, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let semaphore = self.semaphore(webhook);
        match tokio::time::timeout(wait, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A webhook gets `cap` slots; others are unaffected; a released slot
    /// can be taken again.
    #[tokio::test]
    async fn caps_per_webhook() {
        let in_flight = InFlight::new(2);
        let a = WebhookId::from_uuid(uuid::Uuid::from_u128(1));
        let b = WebhookId::from_uuid(uuid::Uuid::from_u128(2));
        let first = in_flight.acquire(a, Duration::ZERO).await.expect("slot 1");
        let _second = in_flight.acquire(a, Duration::ZERO).await.expect("slot 2");
        assert!(in_flight.acquire(a, Duration::from_millis(10)).await.is_none(), "a is at its cap");
        assert!(in_flight.acquire(b, Duration::ZERO).await.is_some(), "b is not affected");
        drop(first);
        assert!(in_flight.acquire(a, Duration::ZERO).await.is_some(), "a released slot is free again");
    }
}
