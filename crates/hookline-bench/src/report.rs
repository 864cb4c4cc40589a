//! Results over repeated runs: every figure as min / median / max across
//! the runs of a scenario (`results.md`), and every run's raw figures with
//! those summaries (`results.json`).

use serde::Serialize;

use crate::{outcome::Outcome, receiver::Placement};

/// Min, median and max of one figure over the runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Spread {
    pub(crate) min: f64,
    pub(crate) median: f64,
    pub(crate) max: f64,
}

impl Spread {
    /// The spread of `values` (the median of an even count is the mean of
    /// the middle two); all zero when there are none.
    pub(crate) fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Self { min: values[0], median, max: values[n - 1] }
    }

    /// `min / median / max` with `decimals` decimals.
    pub(crate) fn show(&self, decimals: usize) -> String {
        format!("{:.d$} / {:.d$} / {:.d$}", self.min, self.median, self.max, d = decimals)
    }

    /// One figure when every run gave the same, else `min–max` (for counts).
    fn show_count(&self) -> String {
        if self.min == self.max { format!("{:.0}", self.min) } else { format!("{:.0}–{:.0}", self.min, self.max) }
    }
}

/// The raw RabbitMQ rates measured before one round of runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct RawRates {
    pub(crate) run: u32,
    pub(crate) classic: f64,
    pub(crate) quorum: f64,
}

/// One scenario (phase) over its runs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub(crate) scenario: String,
    pub(crate) runs: usize,
    pub(crate) events: Spread,
    pub(crate) deliveries: Spread,
    pub(crate) ingest_per_sec: Spread,
    pub(crate) ingest_p99_ms: Spread,
    pub(crate) deliveries_per_sec: Spread,
    pub(crate) fraction_of_raw: Spread,
    pub(crate) latency_p50_ms: Spread,
    pub(crate) latency_p95_ms: Spread,
    pub(crate) latency_p99_ms: Spread,
    pub(crate) latency_max_ms: Spread,
    pub(crate) cpu_per_1k_deliveries: Spread,
    pub(crate) cpu_producer: Spread,
    pub(crate) cpu_workers: Spread,
    pub(crate) cpu_postgres: Spread,
    pub(crate) cpu_rabbitmq: Spread,
    pub(crate) cpu_hookline: Spread,
    pub(crate) cpu_receiver: Option<Spread>,
    pub(crate) cpu_benchmark: Spread,
    pub(crate) producer_peak_rss_mib: Spread,
    /// The largest worker's, per run.
    pub(crate) worker_peak_rss_mib: Spread,
    pub(crate) receiver_peak_rss_mib: Option<Spread>,
    pub(crate) rows_events: Spread,
    pub(crate) rows_deliveries: Spread,
    pub(crate) rows_attempts: Spread,
    /// Bytes in Postgres (events, deliveries, attempts) per delivery.
    pub(crate) pg_bytes_per_delivery: Spread,
    pub(crate) lost: Spread,
    pub(crate) duplicates: Spread,
    pub(crate) stopped_at_time_box: bool,
    pub(crate) slow_expected: Option<Spread>,
    pub(crate) slow_requested: Option<Spread>,
    pub(crate) slow_answered: Option<Spread>,
    pub(crate) slow_duplicates: Option<Spread>,
    #[serde(skip)]
    slow_webhooks: u32,
    #[serde(skip)]
    hang_ms: u64,
}

impl Summary {
    fn of(runs: &[&Outcome]) -> Self {
        let spread = |f: &dyn Fn(&Outcome) -> f64| Spread::of(runs.iter().map(|o| f(o)));
        let maybe = |f: &dyn Fn(&Outcome) -> Option<f64>| {
            let values: Vec<f64> = runs.iter().filter_map(|o| f(o)).collect();
            (!values.is_empty()).then(|| Spread::of(values))
        };
        let first = runs.first();
        Self {
            scenario: first.map(|o| o.scenario.title()).unwrap_or_default(),
            runs: runs.len(),
            events: spread(&|o| o.events_sent as f64),
            deliveries: spread(&|o| o.deliveries as f64),
            ingest_per_sec: spread(&|o| o.ingest_per_sec),
            ingest_p99_ms: spread(&|o| o.ingest_latency.p99_ms),
            deliveries_per_sec: spread(&|o| o.deliveries_per_sec),
            fraction_of_raw: spread(&|o| o.fraction_of_raw),
            latency_p50_ms: spread(&|o| o.delivery_latency.p50_ms),
            latency_p95_ms: spread(&|o| o.delivery_latency.p95_ms),
            latency_p99_ms: spread(&|o| o.delivery_latency.p99_ms),
            latency_max_ms: spread(&|o| o.delivery_latency.max_ms),
            cpu_per_1k_deliveries: spread(&|o| o.cpu_per_1k_deliveries.unwrap_or(f64::NAN)),
            cpu_producer: spread(&|o| o.cpu.producer),
            cpu_workers: spread(&|o| o.cpu.workers),
            cpu_postgres: spread(&|o| o.cpu.postgres),
            cpu_rabbitmq: spread(&|o| o.cpu.rabbitmq),
            cpu_hookline: spread(&|o| o.cpu.hookline),
            cpu_receiver: maybe(&|o| o.cpu.receiver),
            cpu_benchmark: spread(&|o| o.cpu.benchmark),
            producer_peak_rss_mib: spread(&|o| o.producer.peak_rss_mib),
            worker_peak_rss_mib: spread(&Outcome::worker_peak_rss_mib),
            receiver_peak_rss_mib: maybe(&|o| o.receiver.map(|r| r.peak_rss_mib)),
            rows_events: spread(&|o| o.rows.events as f64),
            rows_deliveries: spread(&|o| o.rows.deliveries as f64),
            rows_attempts: spread(&|o| o.rows.attempts as f64),
            pg_bytes_per_delivery: spread(&|o| o.rows.bytes as f64 / (o.rows.deliveries.max(1)) as f64),
            lost: spread(&|o| o.lost as f64),
            duplicates: spread(&|o| o.duplicates as f64),
            stopped_at_time_box: runs.iter().any(|o| o.stopped_at_time_box),
            slow_expected: maybe(&|o| o.slow.map(|c| c.expected as f64)),
            slow_requested: maybe(&|o| o.slow.map(|c| c.requested as f64)),
            slow_answered: maybe(&|o| o.slow.map(|c| c.answered as f64)),
            slow_duplicates: maybe(&|o| o.slow.map(|c| c.duplicates as f64)),
            slow_webhooks: first.and_then(|o| o.slow).map_or(0, |c| c.webhooks),
            hang_ms: first.map_or(0, |o| o.scenario.hang_ms),
        }
    }
}

/// One summary per scenario phase, in the order they first ran.
pub(crate) fn summaries(outcomes: &[Outcome]) -> Vec<Summary> {
    let mut titles: Vec<String> = Vec::new();
    for o in outcomes {
        let title = o.scenario.title();
        if !titles.contains(&title) {
            titles.push(title);
        }
    }
    titles
        .iter()
        .map(|title| {
            let runs: Vec<&Outcome> = outcomes.iter().filter(|o| &o.scenario.title() == title).collect();
            Summary::of(&runs)
        })
        .collect()
}

/// A scenario run both alone and beside the slow load: B's p99 each way
/// and their ratio, paired run by run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Comparison {
    pub(crate) scenario: &'static str,
    pub(crate) p99_alone_ms: Spread,
    pub(crate) p99_beside_ms: Spread,
    pub(crate) ratio: Spread,
    /// Each pair of runs.
    pub(crate) per_run: Vec<ComparisonRun>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ComparisonRun {
    pub(crate) run: u32,
    pub(crate) p99_alone_ms: f64,
    pub(crate) p99_beside_ms: f64,
    pub(crate) ratio: f64,
}

pub(crate) fn comparisons(outcomes: &[Outcome]) -> Vec<Comparison> {
    let mut names: Vec<&'static str> = Vec::new();
    for o in outcomes.iter().filter(|o| o.scenario.phase == "alone") {
        if !names.contains(&o.scenario.name) {
            names.push(o.scenario.name);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let per_run: Vec<ComparisonRun> = outcomes
                .iter()
                .filter(|o| o.scenario.name == name && o.scenario.phase == "alone")
                .filter_map(|alone| {
                    let beside = outcomes
                        .iter()
                        .find(|o| o.scenario.name == name && o.scenario.phase != "alone" && o.run == alone.run)?;
                    let (a, b) = (alone.delivery_latency.p99_ms, beside.delivery_latency.p99_ms);
                    Some(ComparisonRun { run: alone.run, p99_alone_ms: a, p99_beside_ms: b, ratio: b / a.max(1e-9) })
                })
                .collect();
            Comparison {
                scenario: name,
                p99_alone_ms: Spread::of(per_run.iter().map(|r| r.p99_alone_ms)),
                p99_beside_ms: Spread::of(per_run.iter().map(|r| r.p99_beside_ms)),
                ratio: Spread::of(per_run.iter().map(|r| r.ratio)),
                per_run,
            }
        })
        .collect()
}

/// `results.md`: the main table, the CPU table, slow endpoints, ratios.
pub(crate) fn markdown(outcomes: &[Outcome], raw: &[RawRates], placement: Placement, runs: u32) -> String {
    let summaries = summaries(outcomes);
    let mut md = String::new();
    let receiver = match placement {
        Placement::Process => "in its own process",
        Placement::InProcess => "inside the benchmark's process",
    };
    md.push_str(&format!(
        "{runs} run(s) per scenario, each on a fresh stack; services at their defaults; receiver {receiver}. \
         Figures are min / median / max over the runs (a single figure: every run gave it).\n\n"
    ));
    md.push_str(&format!(
        "Raw RabbitMQ persistent publish+consume on this machine: {} msg/s (classic), {} msg/s (quorum).\n\n",
        Spread::of(raw.iter().map(|r| r.classic)).show(0),
        Spread::of(raw.iter().map(|r| r.quorum)).show(0),
    ));
    md.push_str(
        "| scenario | runs | events | deliveries | ingest/s | ingest p99 ms | deliveries/s | of raw % | latency p50 ms | latency p99 ms | CPU s / 1k deliveries | producer peak MiB | worker peak MiB | rows e/d/a | lost | dup |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for s in &summaries {
        let percent = Spread {
            min: s.fraction_of_raw.min * 100.0,
            median: s.fraction_of_raw.median * 100.0,
            max: s.fraction_of_raw.max * 100.0,
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{}/{} | {}{} | {} |\n",
            s.scenario,
            s.runs,
            s.events.show_count(),
            s.deliveries.show_count(),
            s.ingest_per_sec.show(0),
            s.ingest_p99_ms.show(1),
            s.deliveries_per_sec.show(0),
            percent.show(0),
            s.latency_p50_ms.show(1),
            s.latency_p99_ms.show(1),
            s.cpu_per_1k_deliveries.show(2),
            s.producer_peak_rss_mib.show(0),
            s.worker_peak_rss_mib.show(0),
            s.rows_events.show_count(),
            s.rows_deliveries.show_count(),
            s.rows_attempts.show_count(),
            s.lost.show_count(),
            if s.stopped_at_time_box { " (unfinished at the time box)" } else { "" },
            s.duplicates.show_count(),
        ));
    }
    md.push_str(
        "\nCPU seconds in the measured window (first event sent → every measured delivery arrived and recorded). \
         Hookline = producer + worker(s) + Postgres (whole cluster) + RabbitMQ; the receiver and the benchmark's \
         own process (load generator) are not part of it:\n\n",
    );
    md.push_str("| scenario | producer | worker(s) | Postgres | RabbitMQ | Hookline | CPU s / 1k deliveries | Postgres bytes / delivery | receiver | receiver peak MiB | benchmark |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    let or_none = |s: Option<Spread>, decimals| s.map_or_else(|| "in-process".to_owned(), |s| s.show(decimals));
    for s in &summaries {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.scenario,
            s.cpu_producer.show(2),
            s.cpu_workers.show(2),
            s.cpu_postgres.show(2),
            s.cpu_rabbitmq.show(2),
            s.cpu_hookline.show(2),
            s.cpu_per_1k_deliveries.show(2),
            s.pg_bytes_per_delivery.show(0),
            or_none(s.cpu_receiver, 2),
            or_none(s.receiver_peak_rss_mib, 0),
            s.cpu_benchmark.show(2),
        ));
    }
    let slow: Vec<&Summary> = summaries.iter().filter(|s| s.slow_expected.is_some()).collect();
    if !slow.is_empty() {
        md.push_str(
            "\nSlow endpoints' deliveries when the run stopped waiting ((event, webhook) pairs; dup: requests beyond the first per `Webhook-Id`):\n\n",
        );
        md.push_str("| scenario | slow webhooks | answer after ms | expected | requested | answered | dup |\n");
        md.push_str("|---|---|---|---|---|---|---|\n");
        let count = |s: Option<Spread>| s.unwrap_or_default().show_count();
        for s in slow {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                s.scenario,
                s.slow_webhooks,
                s.hang_ms,
                count(s.slow_expected),
                count(s.slow_requested),
                count(s.slow_answered),
                count(s.slow_duplicates),
            ));
        }
    }
    for c in comparisons(outcomes) {
        md.push_str(&format!(
            "\n{}: measured p99 alone {} ms, beside the slow load {} ms, ratio (per run) {} (goal: under 1,000 ms, ideally a ratio of at most 2)\n",
            c.scenario,
            c.p99_alone_ms.show(1),
            c.p99_beside_ms.show(1),
            c.ratio.show(2),
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Min, median (odd and even counts) and max; non-finite values are
    /// left out.
    #[test]
    fn spread_of_runs() {
        assert_eq!(Spread::of([3.0, 1.0, 2.0]), Spread { min: 1.0, median: 2.0, max: 3.0 });
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]), Spread { min: 1.0, median: 2.5, max: 4.0 });
        assert_eq!(Spread::of([5.0, f64::NAN]), Spread { min: 5.0, median: 5.0, max: 5.0 });
        assert_eq!(Spread::of([]), Spread::default());
    }

    /// Counts show once when every run agrees, else as a range.
    #[test]
    fn counts_show_once_or_as_range() {
        assert_eq!(Spread::of([0.0, 0.0]).show_count(), "0");
        assert_eq!(Spread::of([1.0, 3.0, 2.0]).show_count(), "1–3");
    }
}
