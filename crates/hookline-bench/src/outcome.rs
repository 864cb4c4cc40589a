//! What one run of one scenario measured (a row of `results.json`).

use std::{collections::HashMap, ops::Range, time::Duration};

use serde::Serialize;

use crate::{cpu::Servers, receiver::Arrival, scenario::Scenario};

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

/// Nearest-rank percentiles of `values`.
pub(crate) fn percentiles(mut values: Vec<Duration>) -> Percentiles {
    values.sort();
    let at = |p: f64| {
        if values.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
        values[rank.clamp(1, values.len()) - 1].as_secs_f64() * 1e3
    };
    Percentiles { p50_ms: at(50.0), p95_ms: at(95.0), p99_ms: at(99.0), max_ms: at(100.0) }
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Rows {
    pub(crate) events: i64,
    pub(crate) deliveries: i64,
    pub(crate) attempts: i64,
    /// Bytes the three tables take at the end of the run, indexes and
    /// TOAST included (`pg_total_relation_size`).
    pub(crate) bytes: i64,
}

/// CPU seconds and peak resident memory of one process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Usage {
    /// User plus system CPU time spent in the measured window, in seconds.
    pub(crate) cpu_seconds: f64,
    /// Peak resident set size (`VmHWM`) over the process's life, in MiB.
    pub(crate) peak_rss_mib: f64,
}

/// CPU seconds each part spent in the measured window: from just before
/// the first event is sent to when every measured delivery has arrived and
/// its attempts are recorded (or the time box ended).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct CpuSeconds {
    pub(crate) producer: f64,
    /// All workers together.
    pub(crate) workers: f64,
    /// The whole cluster: postmaster, backends, background processes.
    pub(crate) postgres: f64,
    /// `beam.smp` and its children.
    pub(crate) rabbitmq: f64,
    /// Producer + workers + Postgres + RabbitMQ: what `cpu_per_1k_deliveries`
    /// divides.
    pub(crate) hookline: f64,
    /// The receiver, when in its own process (not part of `hookline`).
    pub(crate) receiver: Option<f64>,
    /// The benchmark's own process: the load generator (and the receiver
    /// when it runs in-process). Not part of `hookline`.
    pub(crate) benchmark: f64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outcome {
    pub(crate) scenario: Scenario,
    /// Which of the repeated runs (1-based).
    pub(crate) run: u32,
    pub(crate) events_sent: usize,
    pub(crate) deliveries: u64,
    pub(crate) ingest_per_sec: f64,
    pub(crate) ingest_latency: Percentiles,
    pub(crate) deliveries_per_sec: f64,
    pub(crate) delivery_latency: Percentiles,
    pub(crate) producer: Usage,
    pub(crate) workers: Vec<Usage>,
    /// The receiver's process; `None` when it ran inside the benchmark.
    pub(crate) receiver: Option<Usage>,
    /// Length of the measured window, in seconds.
    pub(crate) window_seconds: f64,
    /// The Postgres and RabbitMQ root processes counted in `cpu`.
    pub(crate) servers: Servers,
    pub(crate) cpu: CpuSeconds,
    /// `cpu.hookline` per 1,000 measured deliveries; `None` when none was
    /// delivered.
    pub(crate) cpu_per_1k_deliveries: Option<f64>,
    pub(crate) rows: Rows,
    /// Measured (event, webhook) pairs not delivered (when the scenario
    /// has a time box: not finished by then).
    pub(crate) lost: u64,
    pub(crate) duplicates: u64,
    /// The scenario's time box ended the wait before every measured
    /// delivery was done.
    pub(crate) stopped_at_time_box: bool,
    /// Deliveries to slow endpoints (those beside, else the measured ones
    /// when they are slow), counted when the run stopped waiting.
    pub(crate) slow: Option<SlowCounts>,
    /// The rate-limited webhook's burst, once drained.
    pub(crate) limited: Option<LimitedCounts>,
    /// The raw quorum-queue rate measured before this run's round.
    pub(crate) rabbitmq_raw_per_sec: f64,
    pub(crate) fraction_of_raw: f64,
    /// The backlog beside the load (`hookline-bench retention`).
    pub(crate) retention: Option<crate::retention::Report>,
}

impl Outcome {
    /// The largest worker's peak RSS, in MiB.
    pub(crate) fn worker_peak_rss_mib(&self) -> f64 {
        self.workers.iter().map(|w| w.peak_rss_mib).fold(0.0, f64::max)
    }
}

/// Deliveries to slow endpoints when the run stopped waiting: (event,
/// webhook) pairs expected, requested at least once, answered, and requests
/// beyond the first per pair (one pair is one `Webhook-Id`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct SlowCounts {
    pub(crate) webhooks: u32,
    pub(crate) expected: u64,
    pub(crate) requested: u64,
    pub(crate) answered: u64,
    pub(crate) duplicates: u64,
}

impl SlowCounts {
    pub(crate) fn count(arrivals: &HashMap<(u64, u32), Arrival>, webhooks: Range<u32>, expected: u64) -> Self {
        let mut counts = Self { webhooks: webhooks.end - webhooks.start, expected, ..Self::default() };
        for arrival in arrivals.iter().filter(|((_, w), _)| webhooks.contains(w)).map(|(_, a)| a) {
            counts.requested += u64::from(arrival.requests > 0);
            counts.answered += u64::from(arrival.delivered_at.is_some());
            counts.duplicates += u64::from(arrival.requests.saturating_sub(1));
        }
        counts
    }
}

/// The rate-limited webhook's burst ([`crate::scenario::Limited`]), counted
/// once it had drained (or stopped making progress).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct LimitedCounts {
    pub(crate) per_sec: u32,
    pub(crate) expected: u64,
    /// (event, webhook) pairs answered.
    pub(crate) delivered: u64,
    /// Requests beyond the first per pair.
    pub(crate) duplicates: u64,
    /// Delivered before the measured load started (the burst was queued
    /// by then).
    pub(crate) delivered_before_load: u64,
    /// The most requests that arrived within one wall-clock second (the
    /// receiver's clock, Unix seconds).
    pub(crate) max_in_a_second: u64,
    /// The median over the full seconds between the first request and
    /// the last.
    pub(crate) median_in_a_second: u64,
    /// Seconds with more than `per_sec` requests.
    pub(crate) seconds_over_limit: u64,
    /// From the first request to the last, in seconds.
    pub(crate) drain_seconds: f64,
}

impl LimitedCounts {
    /// Counts the requests to `webhook` among `arrivals`.
    pub(crate) fn count(
        arrivals: &HashMap<(u64, u32), Arrival>,
        webhook: u32,
        per_sec: u32,
        expected: u64,
        delivered_before_load: u64,
    ) -> Self {
        let mut counts = Self { per_sec, expected, delivered_before_load, ..Self::default() };
        let mut per_second: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
        let (mut first, mut last) = (u64::MAX, 0);
        for arrival in arrivals.iter().filter(|((_, w), _)| *w == webhook).map(|(_, a)| a) {
            counts.duplicates += u64::from(arrival.requests.saturating_sub(1));
            if let Some(at) = arrival.delivered_at {
                counts.delivered += 1;
                *per_second.entry(at / 1_000_000_000).or_default() += 1;
                (first, last) = (first.min(at), last.max(at));
            }
        }
        counts.max_in_a_second = per_second.values().copied().max().unwrap_or(0);
        counts.seconds_over_limit = per_second.values().filter(|&&n| n > u64::from(per_sec)).count() as u64;
        // Full seconds only (the first and the last are partial), those
        // with no request counted as 0.
        let mut full: Vec<u64> = match (per_second.keys().next(), per_second.keys().next_back()) {
            (Some(&from), Some(&to)) if to > from + 1 => {
                (from + 1..to).map(|s| per_second.get(&s).copied().unwrap_or(0)).collect()
            }
            _ => Vec::new(),
        };
        full.sort_unstable();
        counts.median_in_a_second = full.get(full.len() / 2).copied().unwrap_or(0);
        counts.drain_seconds = if counts.delivered > 0 { (last - first) as f64 / 1e9 } else { 0.0 };
        counts
    }
}
