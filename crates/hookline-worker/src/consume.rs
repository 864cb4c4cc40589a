//! The consume loop: a bounded number of messages in flight, each handled in
//! its own task, and the one place where a message is settled.

use std::{future::Future, sync::Arc};

use hookline_broker::{Ack, Consumed, Message, Subscription};
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// What to do with a message once it has been handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Its outcome is committed: forget it.
    Ack,
    /// It could not be handled now (infrastructure fault): hand it back.
    Requeue,
    /// It can never be handled (malformed, or its webhook is gone): reject
    /// it, which parks it in `<ns>.parked` for an operator.
    Reject,
}

/// Carries out a decision. Failing to settle is logged, not fatal: an
/// unsettled message is redelivered when the channel closes.
async fn settle(ack: &mut Ack, decision: Settle) {
    let result = match decision {
        Settle::Ack => ack.ack().await,
        Settle::Requeue => ack.requeue().await,
        Settle::Reject => ack.reject().await,
    };
    if let Err(e) = result {
        tracing::warn!(error.message = %e, ?decision, "could not settle message");
    }
}

/// Takes messages from `subscription` until `shutdown` is cancelled or the
/// consumer ends, running at most `limit` handlers at once on `tracker`;
/// gives the subscription back (to be cancelled).
pub(crate) async fn run<H, Fut>(
    mut subscription: Subscription,
    limit: usize,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    handler: H,
) -> Subscription
where
    H: Fn(Message) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Settle> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limit));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            next = subscription.next() => next,
        };
        let Consumed { message, mut ack } = match next {
            Some(Ok(consumed)) => consumed,
            Some(Err(e)) => {
                tracing::error!(error.message = %e, "consumer failed");
                break;
            }
            None => break,
        };
        let handler = handler.clone();
        tracker.spawn(async move {
            let decision = handler(message).await;
            settle(&mut ack, decision).await;
            drop(permit);
        });
    }
    subscription
}
