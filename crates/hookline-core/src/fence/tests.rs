//! Tests of the fence rule and of millisecond due times.

use time::macros::datetime;

use super::*;

fn row(state: DeliveryState, attempt_count: i32, next_attempt_ms: Option<i64>) -> Waiting {
    Waiting { state, attempt_count, next_attempt_ms }
}

fn check(fence: Fence, trigger: Trigger, waiting: Waiting, admitted: bool) {
    assert_eq!(fence.admits(trigger, &waiting), admitted, "{fence:?} {trigger:?} on {waiting:?}");
}

/// A due-time message acts only on a waiting delivery due at exactly that
/// time: a copy after the step was taken, or after the reconciler moved it,
/// does nothing.
#[test]
fn due_fence() {
    use DeliveryState::*;
    let t = Trigger::Scheduled;
    check(Fence::Due(1_000), t, row(Retrying, 1, Some(1_000)), true);
    check(Fence::Due(1_000), t, row(Pending, 0, Some(1_000)), true);
    check(Fence::Due(1_000), Trigger::Recover, row(Pending, 3, Some(1_000)), true);
    check(Fence::Due(1_000), t, row(Retrying, 2, Some(5_000)), false);
    check(Fence::Due(1_000), t, row(Pending, 0, None), false);
    for state in [Delivered, Failed, Suspended, Skipped] {
        check(Fence::Due(1_000), t, row(state, 1, Some(1_000)), false);
    }
}

/// A manual attempt happens once: not after another attempt was made since
/// it was asked for, whatever the state.
#[test]
fn manual_fence() {
    use DeliveryState::*;
    let t = Trigger::Manual;
    check(Fence::Manual(2), t, row(Failed, 2, None), true);
    check(Fence::Manual(2), t, row(Delivered, 2, None), true);
    check(Fence::Manual(2), t, row(Retrying, 2, Some(9)), true);
    check(Fence::Manual(2), t, row(Failed, 3, None), false);
}

/// Messages from before fences keep their old meaning.
#[test]
fn legacy_messages() {
    use DeliveryState::*;
    check(Fence::Legacy, Trigger::Scheduled, row(Pending, 0, None), true);
    check(Fence::Legacy, Trigger::Scheduled, row(Delivered, 1, None), false);
    check(Fence::Legacy, Trigger::Manual, row(Delivered, 1, None), true);
}

/// Milliseconds round down and back without loss; a truncated time is
/// what a message carries.
#[test]
fn milliseconds() {
    let at = datetime!(2026-11-30 12:00:00.123_456_789 UTC);
    assert_eq!(unix_ms(at), 1_796_040_000_123);
    assert_eq!(from_unix_ms(unix_ms(at)), datetime!(2026-11-30 12:00:00.123 UTC));
    assert_eq!(truncate_ms(at), datetime!(2026-11-30 12:00:00.123 UTC));
    assert_eq!(unix_ms(datetime!(1969-12-31 23:59:59.9995 UTC)), -1);
    assert_eq!(from_unix_ms(i64::MAX), datetime!(9999-12-31 23:59:59 UTC));
}
