//! Tests of health transitions and attempt decisions.

use super::*;
use crate::{TransportErrorKind, classify_status};

fn check_health(before: (HealthStatus, u32), status: u16, threshold: u32, expected: (HealthStatus, u32)) {
    let before = Health { status: before.0, consecutive_failures: before.1 };
    let after = before.after(&classify_status(status), threshold);
    assert_eq!((after.status, after.consecutive_failures), expected, "{before:?} + HTTP {status}");
}

/// The health table: failures count up to suspension, 410 suspends at once,
/// any success resets.
#[test]
fn health_transitions() {
    use HealthStatus::*;
    check_health((Healthy, 0), 200, 50, (Healthy, 0));
    check_health((Healthy, 0), 500, 50, (Unhealthy, 1));
    check_health((Unhealthy, 48), 500, 50, (Unhealthy, 49));
    check_health((Unhealthy, 49), 500, 50, (Suspended, 50));
    check_health((Suspended, 50), 500, 50, (Suspended, 51));
    check_health((Suspended, 73), 204, 50, (Healthy, 0));
    check_health((Unhealthy, 3), 200, 50, (Healthy, 0));
    check_health((Healthy, 0), 410, 50, (Suspended, 1));
    check_health((Healthy, 0), 302, 1, (Suspended, 1));
    let timeout = Health::HEALTHY.after(&AttemptOutcome::TimedOut, 50);
    assert_eq!(timeout, Health { status: Unhealthy, consecutive_failures: 1 });
}

fn attempted(outcome: &AttemptOutcome, attempt_no: u32) -> Attempted<'_> {
    Attempted {
        outcome,
        attempt_no,
        trigger: Trigger::Scheduled,
        takes_step: true,
        previous_state: DeliveryState::Pending,
        health_after: Health::HEALTHY.after(outcome, 50),
        retry_after: None,
        jitter: 0.0,
        request_timeout: Duration::from_secs(15),
    }
}

fn schedule() -> RetrySchedule {
    RetrySchedule::parse("5s,1m").expect("valid")
}

/// A failure retries on schedule with the failure as reason; exhaustion fails.
#[test]
fn scheduled_failures() {
    let e503 = classify_status(503);
    assert_eq!(
        decide(&attempted(&e503, 1), &schedule()),
        Next::Retry { after: Duration::from_secs(5), reason: "HTTP 503".into() }
    );
    let timeout = AttemptOutcome::TimedOut;
    assert_eq!(
        decide(&attempted(&timeout, 2), &schedule()),
        Next::Retry { after: Duration::from_secs(60), reason: "timeout after 15s".into() }
    );
    let refused = AttemptOutcome::Transport { kind: TransportErrorKind::Connect };
    let next = decide(&attempted(&refused, 3), &schedule());
    assert_eq!(next.state(), DeliveryState::Failed);
    assert!(
        matches!(&next, Next::Stop { reason, .. } if reason == "connect error; retry schedule exhausted after 3 attempts")
    );
    assert_eq!(decide(&attempted(&classify_status(201), 1), &schedule()), Next::Delivered);
}

/// A blocked destination fails at once: retrying cannot change where it points.
#[test]
fn blocked_destinations_are_not_retried() {
    let blocked = AttemptOutcome::Transport { kind: TransportErrorKind::Blocked };
    let next = decide(&attempted(&blocked, 1), &schedule());
    assert_eq!(next.state(), DeliveryState::Failed);
    assert!(
        matches!(&next, Next::Stop { reason, .. } if reason.starts_with("destination blocked") && reason.ends_with("not retried"))
    );
    assert_eq!(blocked.error_kind(), Some("blocked"));
}

/// Retry-After is honoured on 429 and 503 only, clamped to [delay, 2 × delay].
#[test]
fn retry_after() {
    let e429 = classify_status(429);
    let mut a = attempted(&e429, 1);
    a.retry_after = Some(Duration::from_secs(7));
    assert_eq!(
        decide(&a, &schedule()),
        Next::Retry { after: Duration::from_secs(7), reason: "HTTP 429; Retry-After: 7s honoured".into() }
    );
    a.retry_after = Some(Duration::from_secs(3600));
    assert_eq!(decide(&a, &schedule()).state(), DeliveryState::Retrying);
    assert!(matches!(decide(&a, &schedule()), Next::Retry { after, .. } if after == Duration::from_secs(10)));
    let e500 = classify_status(500);
    let mut b = attempted(&e500, 1);
    b.retry_after = Some(Duration::from_secs(9));
    assert!(matches!(decide(&b, &schedule()), Next::Retry { after, .. } if after == Duration::from_secs(5)));
}

/// A suspending failure (the threshold, or 410) stops retries with a reason.
#[test]
fn suspension_stops_retries() {
    let gone = classify_status(410);
    let next = decide(&attempted(&gone, 1), &schedule());
    assert_eq!(next.state(), DeliveryState::Suspended);
    let e500 = classify_status(500);
    let mut a = attempted(&e500, 1);
    a.health_after = Health { status: HealthStatus::Suspended, consecutive_failures: 50 };
    assert!(matches!(decide(&a, &schedule()), Next::Stop { state: DeliveryState::Suspended, reason }
        if reason == "HTTP 500; webhook suspended after 50 consecutive failures"));
}

/// Manual and recover attempts schedule nothing themselves.
#[test]
fn manual_attempts() {
    let e500 = classify_status(500);
    let mut a = attempted(&e500, 4);
    a.trigger = Trigger::Manual;
    a.takes_step = false;
    a.previous_state = DeliveryState::Failed;
    assert_eq!(decide(&a, &schedule()).state(), DeliveryState::Failed);
    a.previous_state = DeliveryState::Retrying;
    assert_eq!(decide(&a, &schedule()).state(), DeliveryState::Retrying);
    a.previous_state = DeliveryState::Pending;
    assert_eq!(decide(&a, &schedule()).state(), DeliveryState::Pending, "a queued first attempt is kept");
    a.takes_step = true;
    assert_eq!(decide(&a, &schedule()).state(), DeliveryState::Failed, "a test send is its delivery's only step");
    a.takes_step = false;
    a.trigger = Trigger::Recover;
    assert_eq!(decide(&a, &schedule()).state(), DeliveryState::Failed, "a failed replay is the end");
    a.previous_state = DeliveryState::Suspended;
    assert_eq!(decide(&a, &schedule()).state(), DeliveryState::Failed);
    assert!(Trigger::Manual.overrides_suspension() && !Trigger::Scheduled.overrides_suspension());
    for t in [Trigger::Scheduled, Trigger::Manual, Trigger::Recover] {
        assert_eq!(Trigger::parse(t.as_str()), Some(t));
    }
}

/// A failure recorded after a success (a manual resend, a late duplicate)
/// leaves the delivery delivered, whatever the trigger.
#[test]
fn delivered_stays_delivered() {
    let e500 = classify_status(500);
    for trigger in [Trigger::Scheduled, Trigger::Manual, Trigger::Recover] {
        let mut a = attempted(&e500, 2);
        a.trigger = trigger;
        a.previous_state = DeliveryState::Delivered;
        a.health_after = Health { status: HealthStatus::Suspended, consecutive_failures: 50 };
        assert_eq!(decide(&a, &schedule()).state(), DeliveryState::Delivered, "{trigger:?}");
    }
}

/// Only an unhealthy webhook's automatic attempts are probes.
#[test]
fn probes() {
    use super::needs_probe;
    assert!(needs_probe(HealthStatus::Unhealthy, Trigger::Scheduled));
    assert!(!needs_probe(HealthStatus::Unhealthy, Trigger::Recover));
    assert!(!needs_probe(HealthStatus::Unhealthy, Trigger::Manual));
    assert!(!needs_probe(HealthStatus::Healthy, Trigger::Scheduled));
    assert!(!needs_probe(HealthStatus::Suspended, Trigger::Scheduled));
}

/// Every trigger's recorded name parses back to it; unknown names do not.
#[test]
fn trigger_names_round_trip() {
    for trigger in [Trigger::Scheduled, Trigger::Manual, Trigger::Recover, Trigger::Probe] {
        assert_eq!(Trigger::parse(trigger.as_str()), Some(trigger));
    }
    assert_eq!(Trigger::Probe.as_str(), "probe");
    assert!(Trigger::Probe.overrides_suspension());
    assert_eq!(Trigger::parse("Probe"), None);
}
