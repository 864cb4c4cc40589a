//! Recovery probes: a suspended webhook with `recovery.probe` is sent a
//! signed `hookline.probe` on a backoff until it answers `2xx`, which
//! resumes it (and, with `recovery.replay`, replays what its suspension
//! held, at the recover rate).
//!
//! Every `HOOKLINE_RECOVERY_POLL_MS` each worker claims the webhooks whose
//! probe is due (`Store::claim_probes`: one statement over a partial index,
//! which also takes a lease, so no two workers probe a webhook for the same
//! due time), POSTs each probe through the same outbound client and signing
//! as any delivery, and records it (`Store::record_probe`). Postgres is the
//! record and no broker message is involved: a worker that dies mid-probe
//! leaves the lease to run out, and the probe comes again then. The rules
//! (the backoff, what a probe's answer means, the replay pacing shared with
//! `recover`) are `hookline_core::health::recovery`'s.

use std::{sync::Arc, time::Duration};

use hookline_core::{
    AttemptId, HealthStatus, ProbeBackoff, Probed, Trigger,
    fence::unix_ms,
    health::recovery::{after_probe, held_lookback, replay_spacing},
};
use hookline_store::{NewAttempt, ProbeMade, ProbeRecorded, ProbeTarget, ReplayPace};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, field::Empty};

use crate::{outbound, startup::Context};

/// Most webhooks one round probes (at once).
pub const BATCH: i64 = 32;

/// Most rounds one tick runs before it waits for the next poll.
const ROUNDS: usize = 4;

/// How probes are paced.
#[derive(Clone, Copy, Debug)]
pub struct Probing {
    /// The waits from a suspension to its probes.
    pub backoff: ProbeBackoff,
    /// Between two looks for due probes.
    pub poll: Duration,
    /// Replays per second after a resume (`recover`'s rate).
    pub recover_rate_per_sec: u32,
}

impl Probing {
    /// As the worker's settings say.
    pub fn of(settings: &crate::Settings) -> Self {
        Self {
            backoff: settings.recovery_probe,
            poll: settings.recovery_poll,
            recover_rate_per_sec: settings.recover_rate_per_sec,
        }
    }
}

/// Probes due webhooks until `shutdown` is cancelled. A stopping worker
/// abandons the probes it is making: their leases run out and they are
/// made again.
pub(crate) async fn run(ctx: Arc<Context>, probing: Probing, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(probing.poll) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tick(&ctx, probing) => {}
        }
    }
}

async fn tick(ctx: &Context, probing: Probing) {
    for _ in 0..ROUNDS {
        match round(ctx, probing).await {
            Ok(n) if n == usize::try_from(BATCH).unwrap_or(usize::MAX) => continue,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error.message = %e, "looking for due recovery probes failed; trying again at the next poll");
                break;
            }
        }
    }
}

/// One round: claim up to [`BATCH`] due webhooks and probe them all at once.
/// Returns how many were claimed.
pub async fn round(ctx: &Context, probing: Probing) -> Result<usize, hookline_store::Error> {
    let targets = ctx.store.claim_probes(OffsetDateTime::now_utc(), probing.backoff.first(), ctx.lease, BATCH).await?;
    futures_util::future::join_all(targets.iter().map(|target| probe(ctx, probing, target))).await;
    Ok(targets.len())
}

/// Sends one probe and records it with what follows.
async fn probe(ctx: &Context, probing: Probing, target: &ProbeTarget) {
    let span = tracing::info_span!(
        "probe",
        webhook_id = %target.webhook_id,
        delivery_id = %target.delivery_id,
        http.response.status_code = Empty,
        error.kind = Empty,
        outcome = Empty,
    );
    async {
        let now = OffsetDateTime::now_utc();
        let mut tokens = vec![&target.token];
        if let Some((previous, until)) = &target.previous_token
            && *until > now
        {
            tokens.push(previous);
        }
        let request = outbound::Request {
            url: target.url.as_url(),
            delivery_id: target.delivery_id,
            tokens: &tokens,
            scheme: target.scheme,
            body: &target.body,
            headers: &target.headers,
            allow: &ctx.allowed_networks,
        };
        let exchange = outbound::attempt(&ctx.client, request, ctx.excerpt_limit).await;
        // A probe is an attempt like any other in the attempt metrics.
        ctx.metrics.attempt(&exchange.outcome, exchange.duration_ms);
        let span = tracing::Span::current();
        if let Some(status) = exchange.outcome.status() {
            span.record("http.response.status_code", status);
        }
        if let Some(kind) = exchange.outcome.error_kind() {
            span.record("error.kind", kind);
        }
        let probed = after_probe(&exchange.outcome, target.interval, probing.backoff, ctx.request_timeout);
        let attempt = NewAttempt {
            id: AttemptId::from_uuid(uuid::Uuid::now_v7()),
            delivery_id: target.delivery_id,
            trigger: Trigger::Probe,
            sent_at: exchange.sent_at,
            received_at: exchange.received_at,
            duration_ms: exchange.duration_ms,
            status_code: exchange.outcome.status().map(i32::from),
            error_kind: exchange.outcome.error_kind().map(str::to_owned),
            error_message: exchange.error_message.clone(),
            response_excerpt: exchange.response_excerpt.clone(),
            trace_id: hookline_broker::trace::trace_id(&span),
        };
        let pace = ReplayPace {
            spacing: replay_spacing(probing.recover_rate_per_sec),
            lookback: held_lookback(&ctx.retry_schedule),
        };
        let Some(recorded) = record(ctx, target, &attempt, &probed, pace).await else { return };
        followed(ctx, target, &probed, recorded).await;
    }
    .instrument(span)
    .await;
}

/// Records the probe; an attempt that cannot be stored as received is
/// stored without the receiver's text. `None` when it could not be
/// recorded at all: the lease runs out and the probe is made again.
async fn record(
    ctx: &Context,
    target: &ProbeTarget,
    attempt: &NewAttempt,
    probed: &Probed,
    pace: ReplayPace,
) -> Option<ProbeRecorded> {
    let made = |attempt| ProbeMade { target, attempt, probed, pace, now: OffsetDateTime::now_utc() };
    let e = match ctx.store.record_probe(&made(attempt)).await {
        Ok(recorded) => return Some(recorded),
        Err(e) => e,
    };
    if !e.is_transient() {
        let stripped = attempt.stripped();
        match ctx.store.record_probe(&made(&stripped)).await {
            Ok(recorded) => return Some(recorded),
            Err(again) => {
                tracing::warn!(error.message = %again, "recording a probe without the receiver's text failed too")
            }
        }
    }
    tracing::warn!(error.message = %e, "recording a probe failed; it is made again when its lease runs out");
    None
}

/// What follows a recorded probe: the log line, the count, and a resumed
/// webhook's replays published.
async fn followed(ctx: &Context, target: &ProbeTarget, probed: &Probed, recorded: ProbeRecorded) {
    let span = tracing::Span::current();
    match recorded {
        ProbeRecorded::Resumed(replays) => {
            span.record("outcome", "resumed");
            ctx.metrics.recovery_probes.inc(&["resumed"]);
            ctx.known.set_status(target.webhook_id, HealthStatus::Healthy);
            tracing::info!(replays = replays.len(), "suspended webhook answered its probe; resumed");
            let now_ms = unix_ms(OffsetDateTime::now_utc());
            let publisher = ctx.publisher();
            for replay in &replays {
                if let Err(e) = publisher.schedule(&crate::startup::step_message(&replay.due), now_ms).await {
                    // Marked with their due times: reconciliation publishes
                    // the rest once they are overdue.
                    ctx.publish_failed("publishing a probe's replays", &e);
                    break;
                }
            }
        }
        ProbeRecorded::Again(at) => {
            span.record("outcome", "failed");
            ctx.metrics.recovery_probes.inc(&["failed"]);
            let reason = match probed {
                Probed::Again { reason, .. } => reason.as_str(),
                Probed::Resume => "",
            };
            tracing::info!(next_probe_at = %hookline_core::format_timestamp(at), reason, "probe failed");
        }
        ProbeRecorded::Superseded => {
            span.record("outcome", "superseded");
            ctx.metrics.recovery_probes.inc(&["superseded"]);
            tracing::info!("probe recorded; the webhook was resumed or probed meanwhile");
        }
        ProbeRecorded::Gone => tracing::info!("the probed webhook was deleted"),
    }
}
