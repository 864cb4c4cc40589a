//! Recovery probes: how a suspended webhook that opted in
//! (`recovery.probe`) is tried again, and when it counts as recovered.
//!
//! The first probe comes [`ProbeBackoff::first`] after the suspension; each
//! failed one doubles the wait, up to [`ProbeBackoff::max`]. A probe is a
//! signed `hookline.probe` event ([`probe_event`]) to that webhook only,
//! one per suspension ([`probe_event_id`]) with each probe an attempt of
//! its one delivery; the first `2xx` resumes the webhook ([`Probed::Resume`]), and with
//! `recovery.replay` the deliveries held while it was suspended are
//! replayed at the recover rate ([`replay_spacing`]), as `recover` does.

use std::time::Duration;

use time::OffsetDateTime;

use super::describe_failure;
use crate::{
    AttemptOutcome, Event, EventId, EventType, RetrySchedule, WebhookId, event::RESERVED_NAMESPACE, retry::format_delay,
};

#[cfg(test)]
mod tests;

/// The event type of a probe.
pub const PROBE_EVENT: &str = "hookline.probe";

/// Why a probe backoff is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProbeBackoff {
    /// The first wait is zero.
    #[error("the first probe interval must be greater than zero")]
    ZeroFirst,
    /// The longest wait is shorter than the first.
    #[error("the longest probe interval must be at least the first")]
    MaxBelowFirst,
}

/// The waits between a suspension and its probes: `first`, then doubled
/// after each failed probe, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeBackoff {
    first: Duration,
    max: Duration,
}

impl Default for ProbeBackoff {
    /// One minute, doubling up to an hour.
    fn default() -> Self {
        Self { first: Duration::from_secs(60), max: Duration::from_secs(3600) }
    }
}

impl ProbeBackoff {
    /// A backoff starting at `first` (more than zero) and capped at `max`
    /// (at least `first`).
    pub fn try_new(first: Duration, max: Duration) -> Result<Self, InvalidProbeBackoff> {
        if first.is_zero() {
            return Err(InvalidProbeBackoff::ZeroFirst);
        }
        if max < first {
            return Err(InvalidProbeBackoff::MaxBelowFirst);
        }
        Ok(Self { first, max })
    }

    /// From the suspension to the first probe.
    pub fn first(self) -> Duration {
        self.first
    }

    /// The longest wait between two probes.
    pub fn max(self) -> Duration {
        self.max
    }

    /// The wait after a failed probe that came `interval` after the one
    /// before it (or after the suspension): doubled, within [first, max].
    pub fn after_failure(self, interval: Duration) -> Duration {
        interval.saturating_mul(2).clamp(self.first, self.max)
    }
}

/// What follows a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probed {
    /// A `2xx`: the webhook is resumed (healthy, failures cleared).
    Resume,
    /// Still failing: probe again `interval` from now.
    Again {
        /// The next wait.
        interval: Duration,
        /// Why, for the attempt's log: `HTTP 503; next probe in 2m`.
        reason: String,
    },
}

/// What follows a probe with `outcome` that came `interval` after the one
/// before it.
pub fn after_probe(
    outcome: &AttemptOutcome,
    interval: Duration,
    backoff: ProbeBackoff,
    request_timeout: Duration,
) -> Probed {
    if outcome.is_success() {
        return Probed::Resume;
    }
    let next = backoff.after_failure(interval);
    Probed::Again {
        interval: next,
        reason: format!("{}; next probe in {}", describe_failure(outcome, request_timeout), format_delay(next)),
    }
}

/// The id of the probe event of `webhook`'s suspension at `suspended_at`:
/// `hookline-probe-<webhook id, 32 hex digits>-<unix ms>`, an id of
/// Hookline's own (tenants cannot take it). Every probe of one suspension
/// is an attempt of that event's one delivery.
pub fn probe_event_id(webhook: WebhookId, suspended_at: OffsetDateTime) -> EventId {
    let ms = suspended_at.unix_timestamp_nanos() / 1_000_000;
    EventId::parse(&format!("{RESERVED_NAMESPACE}-probe-{}-{ms}", webhook.as_uuid().simple()))
        .expect("hex digits, digits, `-` and a minus sign are valid in an event id, and it is under 128 characters")
}

/// The probe's event: `{"event":"hookline.probe","data":{"webhookId":…},"triggeredAt":…}`.
pub fn probe_event(webhook: WebhookId, now: OffsetDateTime) -> Event {
    let event_type = EventType::parse(PROBE_EVENT).expect("`hookline.probe` is a valid event type");
    Event::new(event_type, serde_json::json!({ "webhookId": webhook.to_string() }), now)
}

/// The time between two replays at `rate_per_sec` (below one a second
/// counts as one): replay `i` of a batch is due `i` spacings after the
/// first. The one pacing of `recover` and of a probe's replay.
pub fn replay_spacing(rate_per_sec: u32) -> time::Duration {
    time::Duration::milliseconds(1000 / i64::from(rate_per_sec.max(1)))
}

/// How long before a suspension a delivery it held may have been created.
/// A delivery held then was waiting for an automatic step, and each step of
/// `schedule` waits at most twice its delay (jitter is ±20 %, a
/// `Retry-After` at most doubles it); an hour more covers deferrals and
/// reconciliation. Bounds the scan for what a probe's replay recovers.
pub fn held_lookback(schedule: &RetrySchedule) -> Duration {
    let steps = (1..schedule.max_attempts()).filter_map(|n| schedule.base_delay(n));
    let waited = steps.fold(Duration::ZERO, Duration::saturating_add);
    waited.saturating_mul(2).saturating_add(Duration::from_secs(3600))
}
