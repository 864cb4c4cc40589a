//! Webhook health and what happens after an attempt: the webhook's next
//! health, and the delivery's next step (delivered, retry, failed, suspended).
//!
//! Health: every failed attempt counts one consecutive failure and makes the
//! webhook `unhealthy`; reaching the threshold (default 50) or a `410 Gone`
//! makes it `suspended`; any success resets the count and makes it `healthy`.
//! A suspended webhook that opted in is probed on a backoff ([`recovery`]).

use std::time::Duration;

use crate::{
    AttemptOutcome, DeliveryState, HealthStatus, TransportErrorKind,
    retry::{RetrySchedule, clamp_retry_after, format_delay},
};

pub mod recovery;

#[cfg(test)]
mod tests;

/// Default consecutive failures before a webhook is suspended.
pub const DEFAULT_SUSPEND_AFTER: u32 = 50;

/// A webhook's health as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Its status.
    pub status: HealthStatus,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
}

impl Health {
    /// A healthy webhook with no failures.
    pub const HEALTHY: Self = Self { status: HealthStatus::Healthy, consecutive_failures: 0 };

    /// The health after an attempt with `outcome`, given the suspension
    /// threshold.
    pub fn after(self, outcome: &AttemptOutcome, suspend_after: u32) -> Self {
        if outcome.is_success() {
            return Self::HEALTHY;
        }
        let consecutive_failures = self.consecutive_failures.saturating_add(1);
        let status = if outcome.status() == Some(410)
            || consecutive_failures >= suspend_after
            || self.status == HealthStatus::Suspended
        {
            HealthStatus::Suspended
        } else {
            HealthStatus::Unhealthy
        };
        Self { status, consecutive_failures }
    }
}

/// Whether an attempt must be its webhook's only request in flight across
/// all workers (a probe): an unhealthy webhook gets one request at a time,
/// so that it is suspended after exactly the threshold of failures and the
/// rest of its deliveries wait their turn. Only automatic attempts are
/// probes: a manual one is asked for by a person and goes at once, and
/// `recover` replays keep the pace the recover rate sets.
pub fn needs_probe(status: HealthStatus, trigger: Trigger) -> bool {
    status == HealthStatus::Unhealthy && trigger == Trigger::Scheduled
}

/// What caused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The first attempt or a scheduled retry.
    Scheduled,
    /// `POST /v1/deliveries/{id}/retry`.
    Manual,
    /// `POST /v1/webhooks/{id}/recover`.
    Recover,
    /// A recovery probe of a suspended webhook ([`recovery`]): a
    /// `hookline.probe` event of its own, never a queued delivery.
    Probe,
}

impl Trigger {
    /// The lowercase name recorded with the attempt.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Manual => "manual",
            Self::Recover => "recover",
            Self::Probe => "probe",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "scheduled" => Some(Self::Scheduled),
            "manual" => Some(Self::Manual),
            "recover" => Some(Self::Recover),
            "probe" => Some(Self::Probe),
            _ => None,
        }
    }

    /// Manual, recover and probe attempts go ahead even while the webhook is
    /// suspended.
    pub fn overrides_suspension(self) -> bool {
        !matches!(self, Self::Scheduled)
    }
}

/// The delivery's next step after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// A 2xx: done.
    Delivered,
    /// Try again after `after`; `reason` explains why (and what was honoured).
    Retry {
        /// The delay.
        after: Duration,
        /// Why, e.g. `HTTP 503` or `HTTP 429; Retry-After: 120s honoured`.
        reason: String,
    },
    /// No further automatic attempt of this attempt's making; the delivery
    /// takes `state`.
    Stop {
        /// `failed`, `suspended`, `delivered` (a late failure of a delivered
        /// delivery), or `pending`/`retrying` (a manual attempt on a delivery
        /// whose own step is still due: it keeps its due time).
        state: DeliveryState,
        /// Why it stopped.
        reason: String,
    },
}

impl Next {
    /// The state the delivery moves to.
    pub fn state(&self) -> DeliveryState {
        match self {
            Self::Delivered => DeliveryState::Delivered,
            Self::Retry { .. } => DeliveryState::Retrying,
            Self::Stop { state, .. } => *state,
        }
    }
}

/// Everything [`decide`] weighs.
#[derive(Clone, Copy, Debug)]
pub struct Attempted<'a> {
    /// What happened.
    pub outcome: &'a AttemptOutcome,
    /// This attempt's number (1 for the first).
    pub attempt_no: u32,
    /// What caused it.
    pub trigger: Trigger,
    /// Whether it was the delivery's own due step (a first attempt, a
    /// retry, a replay, a test send), rather than an extra manual attempt
    /// made while that step still waits.
    pub takes_step: bool,
    /// The delivery's state before it.
    pub previous_state: DeliveryState,
    /// The webhook's health after it (see [`Health::after`]).
    pub health_after: Health,
    /// The receiver's `Retry-After`, if any (honoured on 429 and 503).
    pub retry_after: Option<Duration>,
    /// A uniform sample in [-1, 1] for jitter.
    pub jitter: f64,
    /// The request timeout, for the reason text of a timeout.
    pub request_timeout: Duration,
}

/// Why an attempt failed, for the log: `HTTP 503`, `timeout after 15s`, …
pub fn describe_failure(outcome: &AttemptOutcome, request_timeout: Duration) -> String {
    match outcome {
        AttemptOutcome::Delivered { status } | AttemptOutcome::Rejected { status } => format!("HTTP {status}"),
        AttemptOutcome::TimedOut => format!("timeout after {}", format_delay(request_timeout)),
        AttemptOutcome::Transport { kind: TransportErrorKind::Blocked } => {
            "destination blocked: it is or resolves to a refused (private, loopback, link-local) address".to_owned()
        }
        AttemptOutcome::Transport { kind } => format!("{} error", kind.as_str()),
    }
}

/// The delivery's next step after an attempt.
pub fn decide(a: &Attempted<'_>, schedule: &RetrySchedule) -> Next {
    if a.outcome.is_success() {
        return Next::Delivered;
    }
    let failure = describe_failure(a.outcome, a.request_timeout);
    if a.previous_state == DeliveryState::Delivered {
        // A late failure (a manual resend, a duplicate) never moves a
        // delivered delivery backwards; it still counts for health.
        return Next::Stop {
            state: DeliveryState::Delivered,
            reason: format!("{failure} ({} attempt); already delivered", a.trigger.as_str()),
        };
    }
    if a.health_after.status == HealthStatus::Suspended {
        let why = if a.outcome.status() == Some(410) {
            format!("{failure}: the receiver says the endpoint is gone; webhook suspended")
        } else {
            format!("{failure}; webhook suspended after {} consecutive failures", a.health_after.consecutive_failures)
        };
        return Next::Stop { state: DeliveryState::Suspended, reason: why };
    }
    if a.outcome == &(AttemptOutcome::Transport { kind: TransportErrorKind::Blocked }) {
        // Retrying would not change where the URL points; the webhook's
        // owner must change it (or an operator allow the range).
        return Next::Stop { state: DeliveryState::Failed, reason: format!("{failure}; not retried") };
    }
    match a.trigger {
        Trigger::Scheduled => {}
        Trigger::Manual => {
            // An extra attempt: it schedules nothing of its own, and a step
            // the delivery already waits for (a first attempt, a retry, a
            // replay) keeps its time.
            let state = match a.previous_state {
                DeliveryState::Pending | DeliveryState::Retrying if !a.takes_step => a.previous_state,
                _ => DeliveryState::Failed,
            };
            return Next::Stop { state, reason: format!("{failure} (manual attempt)") };
        }
        Trigger::Recover => {
            // The replay was the step: it failed, and nothing more is tried.
            return Next::Stop { state: DeliveryState::Failed, reason: format!("{failure} (recover attempt)") };
        }
        Trigger::Probe => {
            // A probe's delivery is tried once; the next probe is a new one
            // (`recovery::after_probe`).
            return Next::Stop { state: DeliveryState::Failed, reason: format!("{failure} (probe)") };
        }
    }
    let Some(scheduled) = schedule.delay(a.attempt_no, a.jitter) else {
        return Next::Stop {
            state: DeliveryState::Failed,
            reason: format!("{failure}; retry schedule exhausted after {} attempts", a.attempt_no),
        };
    };
    match (a.outcome.status(), a.retry_after, schedule.base_delay(a.attempt_no)) {
        (Some(429 | 503), Some(asked), Some(base)) => {
            // Clamped against the schedule's own delay, not the jittered one.
            let after = clamp_retry_after(base, asked);
            Next::Retry { after, reason: format!("{failure}; Retry-After: {} honoured", format_delay(after)) }
        }
        _ => Next::Retry { after: scheduled, reason: failure },
    }
}
