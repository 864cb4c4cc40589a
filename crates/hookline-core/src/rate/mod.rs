//! The per-webhook rate limit's rule, shared by every worker through one
//! row per webhook ([`RateState`], kept by the store on the database's
//! clock).
//!
//! Two things are kept. A hard count of the requests sent in the current
//! second, never above [`cap`]: whatever a worker's lateness, no second
//! carries more. And the queue's end (`next_free`, a generic cell rate
//! algorithm's theoretical arrival time). A request that cannot go now
//! waits in Postgres, not in the broker and not in memory: the store marks
//! its delivery queued, and [`release`] hands the queued ones out in turn,
//! a tick's worth at a time, spaced `(1 s + MARGIN) / limit` from the
//! queue's end. A released request (`held`) goes as soon as its second has
//! room: coming back late wastes nothing, and one that finds its second
//! full is queued again at the front (the queue is in delivery order).

use time::OffsetDateTime;

use crate::RateLimit;

#[cfg(test)]
mod tests;

/// The part of a second the queue leaves spare, so requests coming back on
/// time nearly always find room under the hard count.
pub const MARGIN: time::Duration = time::Duration::milliseconds(80);

/// One webhook's limiter state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateState {
    /// The second (Unix) `used` counts.
    pub second: i64,
    /// Requests sent in that second.
    pub used: u32,
    /// When the next request may be told to come back (the queue's end).
    pub next_free: OffsetDateTime,
}

impl RateState {
    /// A webhook that has sent nothing.
    pub const fn fresh() -> Self {
        Self { second: 0, used: 0, next_free: OffsetDateTime::UNIX_EPOCH }
    }
}

/// What a request may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Send it now (counted).
    Send,
    /// Wait in the queue: [`release`] hands it a time.
    Wait,
}

/// Requests a second may carry: from 10/s up, the limit less 5 % (at least
/// one), room for requests counted at a second's end that arrive in the
/// next (a loaded 2-core machine showed one of 50 do so); below, the limit.
pub fn cap(limit: RateLimit) -> u32 {
    let limit = limit.per_second();
    if limit >= 10 { limit - (limit / 20).max(1) } else { limit }
}

/// The time between two queued requests, in whole microseconds (the
/// database's precision, so the SQL and this rule agree to the tick).
pub fn spacing(limit: RateLimit) -> time::Duration {
    let micros = (time::Duration::SECOND + MARGIN).whole_microseconds() / i128::from(limit.per_second());
    time::Duration::microseconds(i64::try_from(micros).unwrap_or(i64::MAX))
}

/// The decision for one request at `now`, and the state after it. `held`:
/// the request was released from the queue (it has its place; it goes as
/// soon as its second has room); a fresh one goes only when nobody waits
/// before it. A request that waits leaves the state as it was: its place is
/// given by [`release`].
pub fn admit(state: RateState, now: OffsetDateTime, limit: RateLimit, held: bool) -> (RateState, Admission) {
    let second = now.unix_timestamp();
    let used = if state.second == second { state.used } else { 0 };
    if used < cap(limit) && (held || state.next_free <= now) {
        let next_free = if held { state.next_free } else { state.next_free.max(now) + spacing(limit) };
        return (RateState { second, used: used + 1, next_free }, Admission::Send);
    }
    (state, Admission::Wait)
}

/// The times handed to up to `waiting` queued requests at `now`: every
/// place from the queue's end (or `now`) on, `spacing` apart, that falls
/// before `now + horizon`, in queue order; and the state after them (the
/// queue's end moves past the last). Nothing when the queue's end is
/// beyond the horizon.
pub fn release(
    state: RateState,
    now: OffsetDateTime,
    limit: RateLimit,
    horizon: time::Duration,
    waiting: u32,
) -> (RateState, Vec<OffsetDateTime>) {
    let end = now + horizon;
    let mut at = state.next_free.max(now);
    let mut times = Vec::new();
    while at < end && times.len() < waiting as usize {
        times.push(at);
        at += spacing(limit);
    }
    if times.is_empty() {
        return (state, times);
    }
    (RateState { next_free: at, ..state }, times)
}
