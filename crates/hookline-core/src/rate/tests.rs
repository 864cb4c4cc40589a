//! The rate limit's rule on a simulated clock.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap},
};

use super::*;

fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(1_700_000_000_000 + ms)
}

fn limit(n: i64) -> RateLimit {
    RateLimit::new(n).expect("valid")
}

/// A burst of fresh requests: the first `cap` of the second go, the rest
/// are queued evenly from the queue's end, never into a full second.
#[test]
fn a_burst_is_capped_and_queued() {
    let l = limit(50);
    assert_eq!(cap(l), 48);
    assert_eq!((cap(limit(20)), cap(limit(9)), cap(limit(1)), cap(limit(10_000))), (19, 9, 1, 9_500));
    let mut state = RateState::fresh();
    let mut sent = 0;
    let mut backs = Vec::new();
    for _ in 0..200 {
        let (next, decision) = admit(state, at(0), l, false);
        state = next;
        match decision {
            Admission::Send => sent += 1,
            Admission::ComeBack(t) => backs.push(t),
        }
    }
    // Fresh requests go only while nobody waits: the first, then all queue.
    assert_eq!(sent, 1);
    assert!(backs.windows(2).all(|w| w[1] - w[0] == spacing(l)), "evenly spaced");
    assert!(backs[0] >= at(0));
}

/// Requests coming back at their times, some late by up to 300 ms, never
/// put more than the cap in a second and all get through at about 95 % of
/// the limit.
#[test]
fn late_comebacks_never_overfill_a_second() {
    for (n, late_every) in [(50, 3), (20, 2), (1, 1), (1000, 5)] {
        let l = limit(n);
        let mut state = RateState::fresh();
        // (time, id, held)
        let mut pending: BinaryHeap<Reverse<(OffsetDateTime, usize, bool)>> =
            (0..n as usize * 5).map(|i| Reverse((at(0), i, false))).collect();
        let mut per_second: BTreeMap<i64, u32> = BTreeMap::new();
        let mut done = 0;
        let mut rounds = 0;
        while let Some(Reverse((t, id, held))) = pending.pop() {
            rounds += 1;
            assert!(rounds < 1_000_000, "converges");
            let (next, decision) = admit(state, t, l, held);
            state = next;
            match decision {
                Admission::Send => {
                    *per_second.entry(t.unix_timestamp()).or_default() += 1;
                    done += 1;
                }
                Admission::ComeBack(back) => {
                    let late =
                        if id % late_every == 0 { time::Duration::milliseconds(300) } else { time::Duration::ZERO };
                    pending.push(Reverse((back + late, id, true)));
                }
            }
        }
        assert_eq!(done, n as usize * 5);
        let busiest = per_second.values().copied().max().unwrap_or(0);
        assert!(busiest <= cap(l), "{n}/s: at most {} a second, got {busiest}", cap(l));
        let seconds = per_second.len() as f64;
        assert!(seconds <= 5.0 / 0.9 + 2.0, "{n}/s: took {seconds} seconds for five seconds' worth");
    }
}

/// A held request goes as soon as its second has room, wherever the queue's
/// end is; a fresh one waits behind the queue.
#[test]
fn held_requests_go_before_fresh_ones() {
    let l = limit(10);
    let queued = RateState { second: 0, used: 0, next_free: at(5_000) };
    assert_eq!(admit(queued, at(0), l, true).1, Admission::Send);
    assert_eq!(admit(queued, at(0), l, false).1, Admission::ComeBack(at(5_000)));
    let full = RateState { second: at(0).unix_timestamp(), used: cap(l), next_free: at(0) };
    let (_, decision) = admit(full, at(100), l, true);
    assert_eq!(
        decision,
        Admission::ComeBack(OffsetDateTime::from_unix_timestamp(at(0).unix_timestamp() + 1).expect("valid"))
    );
}
