//! Fencing: which delivery message may lead to an attempt.
//!
//! Postgres is the record; a message on the broker is only a reminder that
//! a delivery has a step due. A delivery that waits (`pending` or
//! `retrying`) for an automatic step has exactly one due time,
//! `next_attempt_at`, and every message for that step carries it
//! ([`Fence::Due`]). Whoever moves the step (an attempt recorded, a retry
//! scheduled, a replay queued, the reconciler re-publishing a lost message)
//! writes a new due time, so every older message, and any copy of it, no
//! longer matches: it is acked without an attempt. A manual "retry now" is
//! an extra attempt, not a step: it is fenced by the number of attempts made
//! when it was asked for ([`Fence::Manual`]), and never moves the schedule.
//!
//! The store applies the same rule in the statement that claims a delivery
//! (so two copies can never both claim it); [`Fence::admits`] tells a worker
//! whose claim was refused whether its message is stale or the delivery is
//! busy with another attempt.

use time::OffsetDateTime;

use crate::{DeliveryState, Trigger};

#[cfg(test)]
mod tests;

/// What a delivery message is for, checked against the delivery's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fence {
    /// The automatic step due at this instant (Unix milliseconds): a first
    /// attempt handed to the queue, a retry, a recover replay, or a message
    /// the reconciler published again.
    Due(i64),
    /// One manual attempt, asked for when the delivery had made this many
    /// attempts.
    Manual(i32),
    /// A message from a release without fences: admitted while the delivery
    /// waits (automatic), always (manual and recover).
    Legacy,
}

/// What the fence is checked against: the delivery as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// Its state.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempt_count: i32,
    /// Its due time in Unix milliseconds, when a step is scheduled.
    pub next_attempt_ms: Option<i64>,
}

impl Waiting {
    /// Whether the delivery waits for an automatic step.
    pub fn is_waiting(&self) -> bool {
        matches!(self.state, DeliveryState::Pending | DeliveryState::Retrying)
    }
}

impl Fence {
    /// Whether a message with this fence and `trigger` may attempt the
    /// delivery as it stands.
    pub fn admits(self, trigger: Trigger, row: &Waiting) -> bool {
        match self {
            Self::Due(due) => row.is_waiting() && row.next_attempt_ms == Some(due),
            Self::Manual(attempts) => row.attempt_count == attempts,
            Self::Legacy => trigger != Trigger::Scheduled || row.is_waiting(),
        }
    }
}

/// `at` in Unix milliseconds (rounded down).
pub fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

/// The instant of Unix millisecond `ms` (clamped to the representable range).
pub fn from_unix_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(if ms < 0 {
        OffsetDateTime::UNIX_EPOCH
    } else {
        // 9999-12-31T23:59:59Z: the largest instant without the large-dates feature.
        OffsetDateTime::from_unix_timestamp(253_402_300_799).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    })
}

/// `at` rounded down to the millisecond: due times are stored that way, so
/// the due time a message carries equals the stored one exactly.
pub fn truncate_ms(at: OffsetDateTime) -> OffsetDateTime {
    from_unix_ms(unix_ms(at))
}
