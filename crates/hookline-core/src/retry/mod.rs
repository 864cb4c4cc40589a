//! The retry schedule: after failed attempt n, how long until attempt n+1.
//!
//! A schedule is a list of delays (`5s,1m,5m,30m,2h,5h,10h,10h` by default:
//! nine attempts over about a day). Each delay gets ±20 % jitter from a
//! sample the caller draws (core has no RNG), so many deliveries that failed
//! together do not retry together. A receiver's `Retry-After` is honoured
//! within [scheduled delay, 2 × scheduled delay].

use std::{fmt, time::Duration};

#[cfg(test)]
mod tests;

/// The default schedule.
pub const DEFAULT_SCHEDULE: &str = "5s,1m,5m,30m,2h,5h,10h,10h";

/// Jitter as a fraction of the delay: ±20 %.
const JITTER: f64 = 0.2;

/// The longest single delay accepted (a week): guards against typos like `10000h`.
const MAX_DELAY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Why a schedule could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRetrySchedule {
    /// An entry is not a number followed by `ms`, `s`, `m`, `h` or `d`.
    #[error("`{0}` is not a delay: write a whole number followed by ms, s, m, h or d (e.g. 30s, 5m)")]
    BadDelay(String),
    /// An entry is zero or longer than a week.
    #[error("`{0}` is out of range: each delay must be more than 0 and at most 7d")]
    OutOfRange(String),
    /// More than 50 entries.
    #[error("a schedule has at most 50 delays")]
    TooLong,
}

/// The delays between attempts. Empty means "never retry".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::parse(DEFAULT_SCHEDULE).expect("the default schedule is valid")
    }
}

fn parse_delay(text: &str) -> Result<Duration, InvalidRetrySchedule> {
    let bad = || InvalidRetrySchedule::BadDelay(text.to_owned());
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let delay = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => return Err(bad()),
    };
    if delay.is_zero() || delay > MAX_DELAY {
        return Err(InvalidRetrySchedule::OutOfRange(text.to_owned()));
    }
    Ok(delay)
}

/// Formats a delay the way schedules are written (`90s` → `90s`, `120s` → `2m`).
pub fn format_delay(delay: Duration) -> String {
    let ms = delay.as_millis();
    if !ms.is_multiple_of(1000) || ms == 0 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    match s {
        s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl RetrySchedule {
    /// Parses `5s,1m,…`; an empty string is a schedule without retries.
    pub fn parse(text: &str) -> Result<Self, InvalidRetrySchedule> {
        let delays: Vec<Duration> =
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse_delay).collect::<Result<_, _>>()?;
        if delays.len() > 50 {
            return Err(InvalidRetrySchedule::TooLong);
        }
        Ok(Self(delays))
    }

    /// A schedule from explicit delays (tests use milliseconds).
    pub fn from_delays(delays: Vec<Duration>) -> Self {
        Self(delays)
    }

    /// How many attempts a delivery gets in all (the first plus one per delay).
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX).saturating_add(1)
    }

    /// The delay after failed attempt `attempt` (1-based) before jitter, or
    /// `None` when the schedule is exhausted.
    pub fn base_delay(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.0.get(index).copied()
    }

    /// The delay after failed attempt `attempt`, with jitter: `sample` is a
    /// uniform draw from [-1, 1] (values outside are clamped) scaling ±20 %.
    pub fn delay(&self, attempt: u32, sample: f64) -> Option<Duration> {
        let base = self.base_delay(attempt)?;
        let sample = if sample.is_finite() { sample.clamp(-1.0, 1.0) } else { 0.0 };
        Some(base.mul_f64(1.0 + JITTER * sample))
    }
}

impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| format_delay(*d)).collect();
        f.write_str(&parts.join(","))
    }
}

/// Honours a receiver's `Retry-After` within [scheduled, 2 × scheduled]:
/// a receiver may slow us down (up to double), never speed us up or park a
/// delivery indefinitely.
pub fn clamp_retry_after(scheduled: Duration, retry_after: Duration) -> Duration {
    retry_after.clamp(scheduled, scheduled.saturating_mul(2))
}

/// Parses a `Retry-After` header: delay-seconds, or an HTTP date relative to
/// `now_unix` (seconds). `None` when it is neither.
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::format_description::well_known::Rfc2822;
    let at = time::OffsetDateTime::parse(value, &format).ok()?;
    let seconds = at.unix_timestamp().saturating_sub(now_unix);
    Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}
