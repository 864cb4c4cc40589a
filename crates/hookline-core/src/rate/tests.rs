//! The rate limit's rule on a simulated clock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::*;

fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(1_700_000_000_000 + ms)
}

fn limit(n: u32) -> RateLimit {
    RateLimit::new(i64::from(n)).expect("valid")
}

const HORIZON: time::Duration = time::Duration::milliseconds(200);

/// A burst of fresh requests: the first goes, the rest wait (the state
/// untouched); releasing them hands out evenly spaced places from the
/// queue's end, only within the horizon.
#[test]
fn a_burst_waits_and_is_released_evenly() {
    let l = limit(50);
    assert_eq!(cap(l), 48);
    assert_eq!((cap(limit(20)), cap(limit(9)), cap(limit(1)), cap(limit(10_000))), (19, 9, 1, 9_500));
    assert_eq!(spacing(l), time::Duration::microseconds(21_600));
    assert_eq!(spacing(limit(7)), time::Duration::microseconds(154_285), "whole microseconds, as the SQL");
    let mut state = RateState::fresh();
    let mut sent = 0;
    for _ in 0..200 {
        let (next, decision) = admit(state, at(0), l, false);
        if decision == Admission::Wait {
            assert_eq!(next, state, "a waiting request changes nothing");
        }
        state = next;
        sent += usize::from(decision == Admission::Send);
    }
    assert_eq!(sent, 1, "fresh requests go only while nobody waits");
    let (after, times) = release(state, at(0), l, HORIZON, 199);
    assert_eq!(times.first(), Some(&state.next_free), "from the queue's end");
    assert!(times.windows(2).all(|w| w[1] - w[0] == spacing(l)), "evenly spaced");
    assert!(times.iter().all(|t| *t < at(0) + HORIZON), "within the horizon");
    assert_eq!(times.len(), 9, "(200 ms - 21.6 ms) / 21.6 ms, rounded up");
    assert_eq!(after.next_free, times[8] + spacing(l));
    assert_eq!((after.second, after.used), (state.second, state.used));
    // The queue's end is past the horizon: nothing until time moves on.
    assert_eq!(release(after, at(0), l, HORIZON, 190).1, Vec::<OffsetDateTime>::new());
    assert_eq!(release(after, at(100), l, HORIZON, 190).1.len(), 4, "216 ms to 300 ms");
    // No more than are waiting.
    assert_eq!(
        release(RateState::fresh(), at(0), l, HORIZON, 3).1,
        vec![at(0), at(0) + spacing(l), at(0) + spacing(l) * 2]
    );
}

/// Requests released every 100 ms and arriving at their times, some late by
/// up to 300 ms, never put more than the cap in a second, and all get
/// through at about 95 % of the limit. One that finds its second full is
/// queued again at the front.
#[test]
fn late_releases_never_overfill_a_second() {
    for (n, late_every) in [(50, 3), (20, 2), (1, 1), (1000, 5)] {
        let l = limit(n);
        let total = n as usize * 5;
        let mut state = RateState::fresh();
        // Waiting in the queue, in delivery order.
        let mut queue: BTreeSet<usize> = BTreeSet::new();
        // Released, by arrival: (time, id).
        let mut arriving: BinaryHeap<Reverse<(OffsetDateTime, usize)>> = BinaryHeap::new();
        for id in 0..total {
            let (next, decision) = admit(state, at(0), l, false);
            state = next;
            match decision {
                Admission::Send => arriving.push(Reverse((at(0), usize::MAX - id))),
                Admission::Wait => {
                    queue.insert(id);
                }
            }
        }
        let mut per_second: BTreeMap<i64, u32> = BTreeMap::new();
        let mut done = 0;
        let mut tick = at(0);
        while done < total {
            assert!(tick < at(1_000_000), "{n}/s converges");
            // The pump's tick: release, then everything arriving before the
            // next tick.
            let (next, times) = release(state, tick, l, HORIZON, u32::try_from(queue.len()).unwrap_or(u32::MAX));
            state = next;
            for t in times {
                let id = queue.pop_first().expect("as many times as waiting");
                let late = if id.is_multiple_of(late_every) {
                    time::Duration::milliseconds(300)
                } else {
                    time::Duration::ZERO
                };
                arriving.push(Reverse((t + late, id)));
            }
            let next_tick = tick + time::Duration::milliseconds(100);
            while let Some(Reverse((t, id))) = arriving.peek().copied()
                && t < next_tick
            {
                arriving.pop();
                if id > total {
                    // Sent when fresh.
                    *per_second.entry(t.unix_timestamp()).or_default() += 1;
                    done += 1;
                    continue;
                }
                let (next, decision) = admit(state, t, l, true);
                state = next;
                match decision {
                    Admission::Send => {
                        *per_second.entry(t.unix_timestamp()).or_default() += 1;
                        done += 1;
                    }
                    Admission::Wait => {
                        queue.insert(id);
                    }
                }
            }
            tick = next_tick;
        }
        let busiest = per_second.values().copied().max().unwrap_or(0);
        assert!(busiest <= cap(l), "{n}/s: at most {} a second, got {busiest}", cap(l));
        let seconds = per_second.len() as f64;
        assert!(seconds <= 5.0 / 0.9 + 2.0, "{n}/s: took {seconds} seconds for five seconds' worth");
    }
}

/// A held request goes as soon as its second has room, wherever the queue's
/// end is; a fresh one waits behind the queue; a full second sends nothing.
#[test]
fn held_requests_go_before_fresh_ones() {
    let l = limit(10);
    let queued = RateState { second: 0, used: 0, next_free: at(5_000) };
    assert_eq!(admit(queued, at(0), l, true).1, Admission::Send);
    assert_eq!(admit(queued, at(0), l, true).0.next_free, at(5_000), "a held request keeps the queue's end");
    assert_eq!(admit(queued, at(0), l, false), (queued, Admission::Wait));
    let full = RateState { second: at(0).unix_timestamp(), used: cap(l), next_free: at(0) };
    assert_eq!(admit(full, at(100), l, true), (full, Admission::Wait));
    // The next second has room again.
    assert_eq!(admit(full, at(1_000), l, true).1, Admission::Send);
}
