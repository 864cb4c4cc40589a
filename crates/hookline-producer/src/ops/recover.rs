//! Recover: replay a webhook's failed and suspended deliveries created in a
//! window, oldest first, at a bounded rate (`HOOKLINE_RECOVER_RATE_PER_SEC`),
//! or only count them (a dry run).
//!
//! Retention removes deliveries with their events once the events are older
//! than `HOOKLINE_RETENTION` (the workers'); the cutoff the last removal
//! applied is read from Postgres, so the answer says which part of the
//! window is gone whatever this producer's own settings are.

use hookline_broker::DeliveryMessage;
use hookline_core::{WebhookId, fence::unix_ms};
use hookline_store::RecoverWindow;
use time::OffsetDateTime;

use super::{Error, Result};
use crate::{auth::Caller, state::AppState};

/// Most deliveries one `recover` call replays; call again for the rest.
pub(crate) const MAX_RECOVER: usize = 10_000;

/// Which deliveries to replay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replay {
    /// Created at or after.
    pub(crate) since: OffsetDateTime,
    /// Created before; now when absent.
    pub(crate) until: Option<OffsetDateTime>,
    /// Only count them.
    pub(crate) dry_run: bool,
}

/// What a recover found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovering {
    /// Deliveries found in the window (at most [`MAX_RECOVER`] are queued per call).
    pub(crate) count: usize,
    /// Deliveries queued by this call (0 on a dry run).
    pub(crate) queued: usize,
    pub(crate) dry_run: bool,
    /// When the last queued delivery will be attempted, at the recover rate.
    pub(crate) finishes_at: Option<OffsetDateTime>,
    /// When the window reaches back past retention: deliveries created
    /// before this instant have been removed and cannot be replayed (the
    /// count covers the rest of the window).
    pub(crate) expired_before: Option<OffsetDateTime>,
}

/// Counts (`dry_run`) or queues the replay of a webhook's failed and
/// suspended deliveries created in [since, until).
pub(crate) async fn recover(state: &AppState, caller: &Caller, id: WebhookId, replay: Replay) -> Result<Recovering> {
    let Replay { since, until, dry_run } = replay;
    let now = OffsetDateTime::now_utc();
    let until = until.unwrap_or(now);
    let webhook = super::webhooks::get(state, caller, id).await?;
    // What retention removed (or is removing) is out of reach: the window
    // starts at the cutoff at the earliest.
    let expired_before = state.store.expired_before().await?.filter(|cutoff| since < *cutoff);
    let since = expired_before.map_or(since, |cutoff| since.max(cutoff));
    if until <= since {
        // An empty window: nothing to replay.
        return Ok(Recovering { count: 0, queued: 0, dry_run, finishes_at: None, expired_before });
    }
    let ids = state.store.recoverable(&RecoverWindow { webhook: webhook.id, since, until }).await?;
    let count = ids.len();
    if dry_run {
        return Ok(Recovering { count, queued: 0, dry_run: true, finishes_at: None, expired_before });
    }
    let batch = &ids[..count.min(MAX_RECOVER)];
    let spacing = hookline_core::health::recovery::replay_spacing(state.recover_rate_per_sec);
    // Marked first (each only if still failed or suspended), then
    // published: a replay whose message is lost is reconciled like any
    // other step, and what could not be published is unmarked.
    let replays = state.store.mark_replays(batch, now, spacing, now).await?;
    let Some(publisher) = state.publisher() else {
        state.store.unmark_replays(&replays, now).await?;
        return Err(Error::BrokerUnavailable);
    };
    let now_ms = unix_ms(now);
    for (i, replay) in replays.iter().enumerate() {
        let due = &replay.due;
        let message = DeliveryMessage::due(due.id.as_uuid(), due.webhook_id.as_uuid(), unix_ms(due.at), due.trigger);
        if let Err(e) = publisher.schedule(&message, now_ms).await {
            tracing::error!(error.message = %e, "publishing a recover message failed");
            let undone = state.store.unmark_replays(&replays[i..], now).await?;
            tracing::info!(webhook_id = %webhook.id, queued = i, undone, "recover stopped; the rest is unmarked");
            return Err(Error::BrokerUnavailable);
        }
    }
    tracing::info!(webhook_id = %webhook.id, count, queued = replays.len(), "recover queued");
    Ok(Recovering {
        count,
        queued: replays.len(),
        dry_run: false,
        finishes_at: replays.last().map(|r| r.due.at),
        expired_before,
    })
}
