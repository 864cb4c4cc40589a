//! Tests of the retry schedule.

use proptest::prelude::*;

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The default schedule is nine attempts over about a day.
#[test]
fn default_schedule() {
    let s = RetrySchedule::default();
    assert_eq!(s.max_attempts(), 9);
    let expected = [5, 60, 300, 1800, 7200, 18_000, 36_000, 36_000];
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(s.base_delay(u32::try_from(i).expect("small") + 1), Some(secs(*e)));
    }
    assert_eq!(s.base_delay(9), None, "exhausted after the ninth attempt");
    assert_eq!(s.base_delay(0), None);
    assert_eq!(s.to_string(), DEFAULT_SCHEDULE);
}

/// Units and errors of the schedule syntax.
#[test]
fn parsing() {
    let s = RetrySchedule::parse(" 50ms, 2s ,3m,1h,1d").expect("valid");
    assert_eq!(s.base_delay(1), Some(Duration::from_millis(50)));
    assert_eq!(s.base_delay(5), Some(secs(86_400)));
    assert_eq!(RetrySchedule::parse("").expect("valid").max_attempts(), 1);
    for bad in ["5", "s", "5x", "-5s", "1.5s", "5 s"] {
        assert!(matches!(RetrySchedule::parse(bad), Err(InvalidRetrySchedule::BadDelay(_))), "{bad}");
    }
    assert!(matches!(RetrySchedule::parse("0s"), Err(InvalidRetrySchedule::OutOfRange(_))));
    assert!(matches!(RetrySchedule::parse("8d"), Err(InvalidRetrySchedule::OutOfRange(_))));
    let long = vec!["1s"; 51].join(",");
    assert_eq!(RetrySchedule::parse(&long), Err(InvalidRetrySchedule::TooLong));
}

/// Jitter spans exactly ±20 % at the extremes of the sample.
#[test]
fn jitter_extremes() {
    let s = RetrySchedule::parse("10s").expect("valid");
    assert_eq!(s.delay(1, -1.0), Some(secs(8)));
    assert_eq!(s.delay(1, 0.0), Some(secs(10)));
    assert_eq!(s.delay(1, 1.0), Some(secs(12)));
    assert_eq!(s.delay(1, 7.0), Some(secs(12)), "samples are clamped");
    assert_eq!(s.delay(1, f64::NAN), Some(secs(10)));
    assert_eq!(s.delay(2, 0.0), None);
}

/// `Retry-After` in seconds or as an HTTP date.
#[test]
fn retry_after_header() {
    assert_eq!(parse_retry_after("120", 0), Some(secs(120)));
    let now = 1_445_412_480; // Wed, 21 Oct 2015 07:28:00 GMT
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now), Some(secs(120)));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(secs(0)));
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(format_delay(secs(120)), "2m");
    assert_eq!(format_delay(Duration::from_millis(1500)), "1500ms");
}

proptest! {
    /// Jittered delays stay within ±20 % of the base delay.
    #[test]
    fn jitter_is_bounded(base_ms in 1u64..10_000_000, sample in -1.0f64..=1.0) {
        let s = RetrySchedule::from_delays(vec![Duration::from_millis(base_ms)]);
        let d = s.delay(1, sample).expect("one delay").as_secs_f64();
        let base = Duration::from_millis(base_ms).as_secs_f64();
        prop_assert!(d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9);
    }

    /// A clamped Retry-After stays between the scheduled delay and twice it.
    #[test]
    fn retry_after_is_clamped(scheduled in 1u64..1_000_000, asked in 0u64..10_000_000) {
        let d = clamp_retry_after(Duration::from_millis(scheduled), Duration::from_millis(asked));
        prop_assert!(d >= Duration::from_millis(scheduled));
        prop_assert!(d <= Duration::from_millis(scheduled * 2));
    }

    /// The default schedule's delays never shrink from one attempt to the next.
    #[test]
    fn default_is_monotone(attempt in 1u32..8) {
        let s = RetrySchedule::default();
        prop_assert!(s.base_delay(attempt) <= s.base_delay(attempt + 1));
    }
}
