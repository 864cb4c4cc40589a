//! Tests of the probe backoff, the decision after a probe and the pacing.

use proptest::prelude::*;

use super::*;
use crate::{TransportErrorKind, classify_status};

const MINUTE: Duration = Duration::from_secs(60);

/// One minute, doubling up to an hour: 1, 2, 4, …, 32 minutes, then an hour.
#[test]
fn backoff_doubles_up_to_the_cap() {
    let backoff = ProbeBackoff::default();
    assert_eq!((backoff.first(), backoff.max()), (MINUTE, MINUTE * 60));
    let mut waits = vec![backoff.first()];
    for _ in 0..8 {
        waits.push(backoff.after_failure(*waits.last().expect("one")));
    }
    let minutes: Vec<u64> = waits.iter().map(|w| w.as_secs() / 60).collect();
    assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
}

/// A wait below the first (a schedule written under other settings) starts
/// again at the first; one above the cap comes down to it.
#[test]
fn backoff_stays_within_its_bounds() {
    let backoff = ProbeBackoff::try_new(Duration::from_millis(200), Duration::from_millis(700)).expect("valid");
    assert_eq!(backoff.after_failure(Duration::from_millis(1)), Duration::from_millis(200));
    assert_eq!(backoff.after_failure(Duration::from_millis(200)), Duration::from_millis(400));
    assert_eq!(backoff.after_failure(Duration::from_millis(400)), Duration::from_millis(700));
    assert_eq!(backoff.after_failure(Duration::from_secs(3600)), Duration::from_millis(700));
    assert_eq!(backoff.after_failure(Duration::MAX), Duration::from_millis(700));
}

/// A zero first wait, or a cap below it, is refused.
#[test]
fn invalid_backoffs() {
    assert_eq!(ProbeBackoff::try_new(Duration::ZERO, MINUTE), Err(InvalidProbeBackoff::ZeroFirst));
    assert_eq!(ProbeBackoff::try_new(MINUTE, MINUTE / 2), Err(InvalidProbeBackoff::MaxBelowFirst));
    assert!(ProbeBackoff::try_new(MINUTE, MINUTE).is_ok());
}

proptest! {
    /// Each wait is at least the one before (until the cap) and within
    /// [first, max].
    #[test]
    fn backoff_is_monotone_and_bounded(first_ms in 1u64..100_000, extra_ms in 0u64..10_000_000, start_ms in 0u64..u64::MAX / 4) {
        let first = Duration::from_millis(first_ms);
        let max = Duration::from_millis(first_ms + extra_ms);
        let backoff = ProbeBackoff::try_new(first, max).expect("valid");
        let start = Duration::from_millis(start_ms);
        let next = backoff.after_failure(start);
        prop_assert!(next >= first && next <= max);
        prop_assert!(next >= start.min(max));
        prop_assert!(backoff.after_failure(next) >= next);
    }
}

/// A 2xx resumes; anything else probes again later, the reason naming the
/// failure and the next wait.
#[test]
fn after_a_probe() {
    let backoff = ProbeBackoff::default();
    let timeout = Duration::from_secs(15);
    assert_eq!(after_probe(&classify_status(204), MINUTE, backoff, timeout), Probed::Resume);
    assert_eq!(
        after_probe(&classify_status(503), MINUTE, backoff, timeout),
        Probed::Again { interval: MINUTE * 2, reason: "HTTP 503; next probe in 2m".into() }
    );
    assert_eq!(
        after_probe(&AttemptOutcome::TimedOut, MINUTE * 32, backoff, timeout),
        Probed::Again { interval: MINUTE * 60, reason: "timeout after 15s; next probe in 1h".into() }
    );
    let refused = AttemptOutcome::Transport { kind: TransportErrorKind::Connect };
    assert!(matches!(after_probe(&refused, MINUTE, backoff, timeout), Probed::Again { .. }));
    assert!(matches!(after_probe(&classify_status(410), MINUTE, backoff, timeout), Probed::Again { .. }));
}

/// The probe's body is the signed envelope of a `hookline.probe` event
/// naming the webhook.
#[test]
fn probe_body() {
    let id = WebhookId::from_uuid(uuid::Uuid::nil());
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
    let body = probe_event(id, at).to_body();
    assert_eq!(
        String::from_utf8(body).expect("UTF-8"),
        r#"{"event":"hookline.probe","data":{"webhookId":"00000000-0000-0000-0000-000000000000"},"triggeredAt":"2027-01-15T08:00:00Z"}"#
    );
}

/// One probe event per suspension, in Hookline's own id space.
#[test]
fn probe_event_ids() {
    let id = WebhookId::from_uuid(uuid::Uuid::from_u128(0xab));
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
    let event = probe_event_id(id, at);
    assert_eq!(event.as_str(), "hookline-probe-000000000000000000000000000000ab-1800000000000");
    assert_ne!(probe_event_id(id, at + time::Duration::MILLISECOND), event);
    let early = probe_event_id(id, OffsetDateTime::UNIX_EPOCH - time::Duration::SECOND);
    assert!(early.as_str().ends_with("--1000"), "{early:?}");
}

/// Replays are spaced by the recover rate; zero counts as one a second.
#[test]
fn replay_pacing() {
    assert_eq!(replay_spacing(10), time::Duration::milliseconds(100));
    assert_eq!(replay_spacing(1), time::Duration::SECOND);
    assert_eq!(replay_spacing(0), time::Duration::SECOND);
    assert_eq!(replay_spacing(3), time::Duration::milliseconds(333));
}

/// The lookback for held deliveries: twice the schedule, plus an hour.
#[test]
fn lookback_covers_the_schedule() {
    let hour = Duration::from_secs(3600);
    assert_eq!(held_lookback(&RetrySchedule::from_delays(Vec::new())), hour);
    let schedule = RetrySchedule::parse("5s,1m").expect("valid");
    assert_eq!(held_lookback(&schedule), hour + Duration::from_secs(130));
    assert!(held_lookback(&RetrySchedule::default()) > hour * 50);
}
