//! The per-webhook rate limit's rule, shared by every worker through one
//! row per webhook ([`RateState`], kept by the store on the database's
//! clock).
//!
//! Two things are kept. A hard count of the requests sent in the current
//! second, never above [`cap`]: whatever a worker's lateness, no second
//! carries more. And a queue position (`next_free`, a generic cell rate
//! algorithm's theoretical arrival time): a request that cannot go now is
//! told when to come back, spaced `(1 s + MARGIN) / limit` after the
//! previous one, so the ones waiting come back evenly and in turn. A
//! request that comes back (`held`) goes as soon as its second has room:
//! coming back late wastes nothing.

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
    /// Come back at this time (its place in the queue).
    ComeBack(OffsetDateTime),
}

/// Requests a second may carry: from 10/s up, the limit less 5 % (at least
/// one), room for requests counted at a second's end that arrive in the
/// next (a loaded 2-core machine showed one of 50 do so); below, the limit.
pub fn cap(limit: RateLimit) -> u32 {
    let limit = limit.per_second();
    if limit >= 10 { limit - (limit / 20).max(1) } else { limit }
}

/// The time between two queued requests.
pub fn spacing(limit: RateLimit) -> time::Duration {
    (time::Duration::SECOND + MARGIN) / limit.per_second()
}

/// The decision for one request at `now`, and the state after it. `held`:
/// the request was told to come back (it has its place; it goes as soon as
/// its second has room); a fresh one goes only when nobody waits before it.
pub fn admit(state: RateState, now: OffsetDateTime, limit: RateLimit, held: bool) -> (RateState, Admission) {
    let second = now.unix_timestamp();
    let used = if state.second == second { state.used } else { 0 };
    let room = used < cap(limit);
    if room && (held || state.next_free <= now) {
        let next_free = if held { state.next_free } else { state.next_free.max(now) + spacing(limit) };
        return (RateState { second, used: used + 1, next_free }, Admission::Send);
    }
    // Its place in the queue; never in a second already full.
    let mut back = state.next_free.max(now);
    if !room && back.unix_timestamp() == second {
        back = OffsetDateTime::from_unix_timestamp(second + 1).unwrap_or(back);
    }
    let state = RateState { second: state.second, used: state.used, next_free: back + spacing(limit) };
    (state, Admission::ComeBack(back))
}
