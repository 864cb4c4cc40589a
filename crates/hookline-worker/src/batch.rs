//! Group commit: handlers hand their writes to a batcher and wait; the
//! batcher takes whatever has queued up (at most `max`), writes it in one
//! round trip, and answers each handler. Under load the batches grow while a
//! round trip is under way; at light load a batch is one item and nothing
//! waits for a timer. A handler still acks only after its own write is
//! committed.

use std::{future::Future, sync::Arc};

use hookline_store::{Delivered, EventKey, Looked, NewAttempt, NewEvent, RecordedEvent, Result as StoreResult, Store};
use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc, oneshot};

type Reply<R> = oneshot::Sender<Result<R, Arc<hookline_store::Error>>>;

/// Submits items to be written together.
#[derive(Debug)]
pub struct Batcher<T, R> {
    tx: mpsc::UnboundedSender<(T, Reply<R>)>,
}

/// The batcher stopped (its worker is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the batch writer has stopped")]
pub struct Stopped;

/// Why a submitted write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The batch's round trip failed.
    #[error(transparent)]
    Store(Arc<hookline_store::Error>),
    /// The batcher is gone.
    #[error(transparent)]
    Stopped(#[from] Stopped),
}

impl<T: Clone + Send + Sync + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts `lanes` writers sharing one queue; each takes up to `max`
    /// queued items and passes them to `write`, which returns one result per
    /// item, in order. Several lanes let one batch collect while another is
    /// in flight. A batch that fails for a reason that will not pass (one
    /// bad row) is written again item by item, so only the bad item fails.
    pub fn spawn<F, Fut>(lanes: usize, max: usize, write: F) -> Self
    where
        F: Fn(Arc<[T]>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<R>, hookline_store::Error>> + Send,
    {
        let (tx, rx) = mpsc::unbounded_channel::<(T, Reply<R>)>();
        let rx = Arc::new(Mutex::new(rx));
        let write = Arc::new(write);
        for _ in 0..lanes.max(1) {
            let rx = rx.clone();
            let write = write.clone();
            tokio::spawn(async move {
                loop {
                    let mut batch = Vec::new();
                    {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        batch.push(first);
                        while batch.len() < max {
                            match rx.try_recv() {
                                Ok(item) => batch.push(item),
                                Err(_) => break,
                            }
                        }
                    }
                    let (items, replies): (Vec<T>, Vec<Reply<R>>) = batch.into_iter().unzip();
                    let items: Arc<[T]> = items.into();
                    match write(items.clone()).await {
                        Ok(results) => {
                            for (reply, result) in replies.into_iter().zip(results) {
                                let _ = reply.send(Ok(result));
                            }
                        }
                        Err(e) if items.len() > 1 && !e.is_transient() => {
                            tracing::warn!(error.message = %e, items = items.len(), "a batch failed; writing its items one by one");
                            for (item, reply) in items.iter().zip(replies) {
                                let one: Arc<[T]> = Arc::from(vec![item.clone()]);
                                let result = write(one).await.and_then(|mut r| {
                                    r.pop().ok_or_else(|| hookline_store::Error::corrupt_batch("no result for an item"))
                                });
                                let _ = reply.send(result.map_err(Arc::new));
                            }
                        }
                        Err(e) => {
                            let e = Arc::new(e);
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                }
            });
        }
        Self { tx }
    }

    /// Queues `item` and waits until its batch is written.
    pub async fn submit(&self, item: T) -> Result<R, BatchError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((item, reply)).map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)?.map_err(BatchError::Store)
    }
}

/// Most items one group commit writes.
const MAX_BATCH: usize = 256;

/// Batches of one kind in flight at once: while some wait for their commit
/// (a WAL flush), others collect and write.
const LANES: usize = 2;

/// Retries a batch write that lost a deadlock or serialization race (its
/// rows were locked by a concurrent batch in another order): nothing was
/// written, so writing it again is safe.
async fn retry_conflicts<R, Fut>(mut write: impl FnMut() -> Fut) -> Result<R, hookline_store::Error>
where
    Fut: Future<Output = Result<R, hookline_store::Error>>,
{
    let mut tries = 0;
    loop {
        match write().await {
            Err(e) if e.is_conflict() && tries < 5 => tries += 1,
            other => return other,
        }
    }
}

/// Splits `items` (by index) into rounds in which each key appears once,
/// in order: one statement may write a row once, so a repeat (an
/// at-least-once duplicate) goes into a later round.
fn rounds<'a, T, K: Eq + std::hash::Hash>(items: &'a [T], key: impl Fn(&'a T) -> K) -> Vec<Vec<usize>> {
    let mut rounds = Vec::new();
    let mut left: Vec<usize> = (0..items.len()).collect();
    while !left.is_empty() {
        let mut seen = std::collections::HashSet::new();
        let (round, later): (Vec<usize>, Vec<usize>) = left.into_iter().partition(|&i| seen.insert(key(&items[i])));
        rounds.push(round);
        left = later;
    }
    rounds
}

/// A successful attempt to record, and the event its recording completes
/// (marked dispatched in the same statement), if any.
#[derive(Clone, Debug)]
pub struct Success {
    /// The attempt.
    pub attempt: NewAttempt,
    /// The event whose dispatch it completes.
    pub completes: Option<EventKey>,
}

/// The worker's group-committed writes, each a [`Batcher`] over one of the
/// functions below.
#[derive(Debug)]
pub struct Batches {
    /// Fresh events with their deliveries ([`record_events`]).
    pub events: Batcher<NewEvent, RecordedEvent>,
    /// Successful attempts ([`record_successes`]).
    pub successes: Batcher<Success, Option<i32>>,
    /// Events whose deliveries are all handled ([`mark_dispatched`]).
    pub dispatched: Batcher<EventKey, ()>,
    /// Fresh events' webhooks, read before anything is written
    /// ([`Store::look_up`]).
    pub lookups: Batcher<NewEvent, Looked>,
    /// Fresh events whose every first attempt succeeded, with those
    /// attempts: each attempt's number ([`record_delivered`]).
    pub delivered: Batcher<Delivered, Vec<Option<i32>>>,
    /// Deliveries queued for their webhook's rate limit, each with the due
    /// time its message was fenced by (`None`: fresh): whether each was
    /// queued ([`queue_for_rate`]).
    pub queued: Batcher<(hookline_core::DeliveryId, Option<i64>), bool>,
}

impl Batches {
    /// Starts the batchers over `store`; `lease` is the dispatch lease.
    pub fn spawn(store: &Store, lease: time::Duration) -> Self {
        let s = store.clone();
        let events = Batcher::spawn(LANES, MAX_BATCH, move |items| record_events(s.clone(), items, lease));
        let s = store.clone();
        let successes = Batcher::spawn(LANES, MAX_BATCH, move |items| record_successes(s.clone(), items));
        let s = store.clone();
        let dispatched = Batcher::spawn(1, MAX_BATCH, move |items| mark_dispatched(s.clone(), items));
        let s = store.clone();
        let lookups = Batcher::spawn(LANES, MAX_BATCH, move |items: Arc<[NewEvent]>| {
            let s = s.clone();
            async move { s.look_up(&items).await }
        });
        let s = store.clone();
        let delivered = Batcher::spawn(LANES, MAX_BATCH, move |items| record_delivered(s.clone(), items));
        let s = store.clone();
        let queued = Batcher::spawn(LANES, MAX_BATCH, move |items| queue_for_rate(s.clone(), items));
        Self { events, successes, dispatched, lookups, delivered, queued }
    }
}

/// [`Store::record_events`] for a batch, retried on serialization conflicts.
async fn record_events(
    store: Store,
    events: Arc<[NewEvent]>,
    lease: time::Duration,
) -> StoreResult<Vec<RecordedEvent>> {
    let now = OffsetDateTime::now_utc();
    retry_conflicts(|| store.record_events(&events, now, lease)).await
}

/// [`Store::record_successes`] for a batch: a delivery twice in it (a
/// duplicate message) is written in a later round.
async fn record_successes(store: Store, items: Arc<[Success]>) -> StoreResult<Vec<Option<i32>>> {
    let mut results = vec![None; items.len()];
    for round in rounds(&items, |s| s.attempt.delivery_id) {
        let attempts: Vec<NewAttempt> = round.iter().map(|&i| items[i].attempt.clone()).collect();
        let marks: Vec<EventKey> = round.iter().filter_map(|&i| items[i].completes.clone()).collect();
        let now = OffsetDateTime::now_utc();
        let written = retry_conflicts(|| store.record_successes(&attempts, &marks, now)).await?;
        for (i, number) in round.into_iter().zip(written) {
            results[i] = number;
        }
    }
    Ok(results)
}

/// [`Store::queue_all_for_rate`] for a batch: a delivery twice in it (a
/// duplicate message) is written in a later round.
async fn queue_for_rate(
    store: Store,
    items: Arc<[(hookline_core::DeliveryId, Option<i64>)]>,
) -> StoreResult<Vec<bool>> {
    let mut results = vec![false; items.len()];
    for round in rounds(&items, |(id, _)| *id) {
        let batch: Vec<_> = round.iter().map(|&i| items[i]).collect();
        let queued = retry_conflicts(|| store.queue_all_for_rate(&batch)).await?;
        for (i, q) in round.into_iter().zip(queued) {
            results[i] = q;
        }
    }
    Ok(results)
}

/// [`Store::mark_dispatched`] for a batch.
async fn mark_dispatched(store: Store, events: Arc<[EventKey]>) -> StoreResult<Vec<()>> {
    let now = OffsetDateTime::now_utc();
    retry_conflicts(|| store.mark_dispatched(&events, now)).await?;
    Ok(vec![(); events.len()])
}

/// [`Store::record_delivered`] for a batch: an event twice in it is
/// written in a later round.
async fn record_delivered(store: Store, items: Arc<[Delivered]>) -> StoreResult<Vec<Vec<Option<i32>>>> {
    let rounds = rounds(&items, |d| (&d.event.tenant, &d.event.id));
    if rounds.len() == 1 {
        let now = OffsetDateTime::now_utc();
        return retry_conflicts(|| store.record_delivered(&items, now)).await;
    }
    let mut results = vec![Vec::new(); items.len()];
    for round in rounds {
        let batch: Vec<Delivered> = round.iter().map(|&i| items[i].clone()).collect();
        let now = OffsetDateTime::now_utc();
        let written = retry_conflicts(|| store.record_delivered(&batch, now)).await?;
        for (i, n) in round.into_iter().zip(written) {
            results[i] = n;
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Concurrent submissions are written in fewer batches than items, each
    /// answered with its own result.
    #[tokio::test]
    async fn batches_concurrent_submissions() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let batcher = Arc::new(Batcher::spawn(1, 100, move |items: Arc<[u32]>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(items.iter().map(|i| i * 2).collect())
            }
        }));
        let tasks: Vec<_> = (0..50u32)
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.submit(i).await.expect("written") })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.expect("task"), u32::try_from(i).expect("small") * 2);
        }
        assert!(calls.load(Ordering::SeqCst) < 50, "{} batches for 50 items", calls.load(Ordering::SeqCst));
    }

    /// Repeats of a key go into later rounds, each round in order.
    #[test]
    fn repeats_go_into_later_rounds() {
        assert_eq!(rounds(&['a', 'b', 'a', 'c', 'a', 'b'], |c| *c), vec![vec![0, 1, 3], vec![2, 5], vec![4]]);
        assert_eq!(rounds(&[1, 2, 3], |n| *n), vec![vec![0, 1, 2]]);
        assert!(rounds::<u8, u8>(&[], |n| *n).is_empty());
    }

    /// A failed batch fails every submission in it.
    #[tokio::test]
    async fn a_failed_batch_fails_its_items() {
        let batcher: Batcher<u32, u32> =
            Batcher::spawn(1, 10, |_items: Arc<[u32]>| async { Err(hookline_store::Error::InvalidUrl("boom".into())) });
        assert!(matches!(batcher.submit(1).await, Err(BatchError::Store(_))));
    }

    /// One bad item in a batch fails alone: the batch is written again item
    /// by item, and every other item gets its result.
    #[tokio::test]
    async fn one_bad_item_fails_alone() {
        let batcher = Arc::new(Batcher::spawn(1, 100, |items: Arc<[u32]>| async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if items.contains(&13) {
                Err(hookline_store::Error::InvalidUrl("13 cannot be stored".into()))
            } else {
                Ok(items.iter().map(|i| i + 1).collect())
            }
        }));
        let tasks: Vec<_> = (10..20u32)
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move { (i, batcher.submit(i).await) })
            })
            .collect();
        for task in tasks {
            match task.await.expect("task") {
                (13, result) => assert!(matches!(result, Err(BatchError::Store(_)))),
                (i, result) => assert_eq!(result.expect("written"), i + 1),
            }
        }
    }
}
