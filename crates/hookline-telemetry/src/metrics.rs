//! Metrics for Prometheus: counters, gauges and histograms, each a family
//! with a fixed list of label names, rendered in the Prometheus text format
//! or, when the scraper asks for it, OpenMetrics (which carries exemplars:
//! the trace id of a sample, so Grafana links a latency point to its trace).
//!
//! A service builds its families once and hands them (and the [`Registry`]
//! that renders them) to whoever records; nothing is global, so two services
//! in one process (tests, `hookline run`) keep separate figures. Label
//! values must come from small fixed sets (a status class, a state), never
//! from user input: every distinct set is a series kept forever.

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex, PoisonError},
    time::{SystemTime, UNIX_EPOCH},
};

/// Latency buckets in seconds, from 1 ms to a minute.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Delivery latency buckets in seconds: milliseconds for first attempts up
/// to a day for deliveries that waited through retries.
pub const DELIVERY_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0, 86400.0];

type Labels = Box<[String]>;

fn key(values: &[&str]) -> Labels {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn same(stored: &[String], values: &[&str]) -> bool {
    stored.len() == values.len() && stored.iter().zip(values).all(|(a, b)| a == b)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Applies `change` to the series with these label values, created from
/// `fresh` when it does not exist yet.
fn update<V: Copy>(series: &Mutex<Vec<(Labels, V)>>, values: &[&str], fresh: V, change: impl FnOnce(&mut V)) {
    let mut series = lock(series);
    match series.iter_mut().find(|(k, _)| same(k, values)) {
        Some((_, v)) => change(v),
        None => {
            let mut v = fresh;
            change(&mut v);
            series.push((key(values), v));
        }
    }
}

#[derive(Debug)]
struct Meta {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

impl Meta {
    fn check(&self, values: &[&str]) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}: label values do not match label names", self.name);
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn label_text(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut pairs: Vec<String> = names.iter().zip(values).map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect();
    if let Some((n, v)) = extra {
        pairs.push(format!("{n}=\"{v}\""));
    }
    if pairs.is_empty() { String::new() } else { format!("{{{}}}", pairs.join(",")) }
}

fn number(v: f64) -> String {
    if v.is_infinite() { if v > 0.0 { "+Inf".to_owned() } else { "-Inf".to_owned() } } else { format!("{v}") }
}

/// A monotonically increasing count, per label set.
#[derive(Debug)]
pub struct Counter {
    meta: Meta,
    series: Mutex<Vec<(Labels, u64)>>,
}

impl Counter {
    /// Adds `n` to the series with these label values.
    pub fn add(&self, values: &[&str], n: u64) {
        self.meta.check(values);
        update(&self.series, values, 0, |v| *v += n);
    }

    /// Adds one.
    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }

    /// The current count of one series (0 when it was never touched).
    pub fn get(&self, values: &[&str]) -> u64 {
        lock(&self.series).iter().find(|(k, _)| same(k, values)).map_or(0, |(_, v)| *v)
    }
}

/// A value that goes up and down, per label set.
#[derive(Debug)]
pub struct Gauge {
    meta: Meta,
    series: Mutex<Vec<(Labels, f64)>>,
}

impl Gauge {
    /// Sets the series with these label values.
    pub fn set(&self, values: &[&str], value: f64) {
        self.meta.check(values);
        update(&self.series, values, 0.0, |v| *v = value);
    }

    /// Adds `delta` (negative to lower it).
    pub fn add(&self, values: &[&str], delta: f64) {
        self.meta.check(values);
        update(&self.series, values, 0.0, |v| *v += delta);
    }

    /// The current value of one series.
    pub fn get(&self, values: &[&str]) -> f64 {
        lock(&self.series).iter().find(|(k, _)| same(k, values)).map_or(0.0, |(_, v)| *v)
    }
}

/// One bucket's most recent exemplar: the trace that produced a sample.
#[derive(Debug, Clone)]
struct Exemplar {
    trace_id: String,
    value: f64,
    at: f64,
}

#[derive(Debug, Clone)]
struct HistogramSeries {
    labels: Labels,
    /// Per bucket (not cumulative), then the +Inf overflow.
    counts: Vec<u64>,
    exemplars: Vec<Option<Exemplar>>,
    sum: f64,
    count: u64,
}

/// A distribution of observed values, per label set.
#[derive(Debug)]
pub struct Histogram {
    meta: Meta,
    buckets: &'static [f64],
    series: Mutex<Vec<HistogramSeries>>,
}

impl Histogram {
    /// Records `value` in the series with these label values; `trace_id`
    /// (32 hex digits) becomes the exemplar of the bucket it falls in.
    pub fn observe(&self, values: &[&str], value: f64, trace_id: Option<&str>) {
        self.meta.check(values);
        let slot = self.buckets.iter().position(|b| value <= *b).unwrap_or(self.buckets.len());
        let mut series = lock(&self.series);
        let index = match series.iter().position(|s| same(&s.labels, values)) {
            Some(i) => i,
            None => {
                series.push(HistogramSeries {
                    labels: key(values),
                    counts: vec![0; self.buckets.len() + 1],
                    exemplars: vec![None; self.buckets.len() + 1],
                    sum: 0.0,
                    count: 0,
                });
                series.len() - 1
            }
        };
        let s = &mut series[index];
        s.counts[slot] += 1;
        s.sum += value;
        s.count += 1;
        if let Some(trace_id) = trace_id {
            let at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            s.exemplars[slot] = Some(Exemplar { trace_id: trace_id.to_owned(), value, at });
        }
    }

    /// How many values one series has recorded.
    pub fn count(&self, values: &[&str]) -> u64 {
        lock(&self.series).iter().find(|s| same(&s.labels, values)).map_or(0, |s| s.count)
    }
}

/// The families of one service, in the order they are rendered.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    counters: Vec<Arc<Counter>>,
    gauges: Vec<Arc<Gauge>>,
    histograms: Vec<Arc<Histogram>>,
}

/// The text format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4 (no exemplars).
    Prometheus,
    /// OpenMetrics 1.0 (with exemplars).
    OpenMetrics,
}

impl Format {
    /// The format to answer a request with this `Accept` header in.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Prometheus,
        }
    }

    /// The `Content-Type` of the rendered text.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

impl Registry {
    /// A new counter family. `name` is the full sample name, ending in
    /// `_total`.
    pub fn counter(&mut self, name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Arc<Counter> {
        debug_assert!(name.ends_with("_total"), "counter {name} must end in _total");
        let counter = Arc::new(Counter { meta: Meta { name, help, labels }, series: Mutex::new(Vec::new()) });
        if labels.is_empty() {
            counter.add(&[], 0);
        }
        self.counters.push(counter.clone());
        counter
    }

    /// A new gauge family.
    pub fn gauge(&mut self, name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Arc<Gauge> {
        let gauge = Arc::new(Gauge { meta: Meta { name, help, labels }, series: Mutex::new(Vec::new()) });
        if labels.is_empty() {
            gauge.set(&[], 0.0);
        }
        self.gauges.push(gauge.clone());
        gauge
    }

    /// A new histogram family with these bucket upper bounds (ascending).
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Arc<Histogram> {
        let histogram =
            Arc::new(Histogram { meta: Meta { name, help, labels }, buckets, series: Mutex::new(Vec::new()) });
        self.histograms.push(histogram.clone());
        histogram
    }

    /// The names of every family's samples (`_total` counters, histogram
    /// base names), for checking dashboards against what is exported.
    pub fn names(&self) -> Vec<&'static str> {
        let counters = self.counters.iter().map(|c| c.meta.name);
        let gauges = self.gauges.iter().map(|g| g.meta.name);
        let histograms = self.histograms.iter().map(|h| h.meta.name);
        counters.chain(gauges).chain(histograms).collect()
    }

    /// Renders every family.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        let open = format == Format::OpenMetrics;
        for c in &self.counters {
            let base = if open { c.meta.name.trim_end_matches("_total") } else { c.meta.name };
            let _ = writeln!(out, "# HELP {base} {}\n# TYPE {base} counter", c.meta.help);
            for (labels, v) in lock(&c.series).iter() {
                let _ = writeln!(out, "{}{} {v}", c.meta.name, label_text(c.meta.labels, labels, None));
            }
        }
        for g in &self.gauges {
            let _ = writeln!(out, "# HELP {0} {1}\n# TYPE {0} gauge", g.meta.name, g.meta.help);
            for (labels, v) in lock(&g.series).iter() {
                let _ = writeln!(out, "{}{} {}", g.meta.name, label_text(g.meta.labels, labels, None), number(*v));
            }
        }
        for h in &self.histograms {
            let name = h.meta.name;
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", h.meta.help);
            for s in lock(&h.series).iter() {
                let mut cumulative = 0;
                let bounds = h.buckets.iter().copied().chain(std::iter::once(f64::INFINITY));
                for (i, bound) in bounds.enumerate() {
                    cumulative += s.counts[i];
                    let labels = label_text(h.meta.labels, &s.labels, Some(("le", &number(bound))));
                    let _ = write!(out, "{name}_bucket{labels} {cumulative}");
                    if let (true, Some(e)) = (open, &s.exemplars[i]) {
                        let _ = write!(out, " # {{trace_id=\"{}\"}} {} {:.3}", escape(&e.trace_id), e.value, e.at);
                    }
                    out.push('\n');
                }
                let labels = label_text(h.meta.labels, &s.labels, None);
                let _ = writeln!(out, "{name}_sum{labels} {}\n{name}_count{labels} {}", s.sum, s.count);
            }
        }
        if open {
            out.push_str("# EOF\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters, gauges and histograms render in the Prometheus text format
    /// with cumulative buckets; OpenMetrics adds exemplars and `# EOF`.
    #[test]
    fn renders_both_formats() {
        let mut registry = Registry::default();
        let attempts = registry.counter("t_attempts_total", "Attempts.", &["status_class"]);
        let plain = registry.counter("t_events_total", "Events.", &[]);
        let in_flight = registry.gauge("t_in_flight", "In flight.", &[]);
        let latency = registry.histogram("t_latency_seconds", "Latency.", &[], &[0.1, 1.0]);
        attempts.inc(&["2xx"]);
        attempts.add(&["2xx"], 2);
        attempts.inc(&["5xx"]);
        in_flight.add(&[], 3.0);
        in_flight.add(&[], -1.0);
        latency.observe(&[], 0.05, Some("0af7651916cd43dd8448eb211c80319c"));
        latency.observe(&[], 0.5, None);
        latency.observe(&[], 5.0, None);
        assert_eq!(attempts.get(&["2xx"]), 3);
        assert_eq!(plain.get(&[]), 0);
        assert_eq!(latency.count(&[]), 3);

        let text = registry.render(Format::Prometheus);
        assert!(text.contains("# TYPE t_attempts_total counter\n"), "{text}");
        assert!(text.contains("t_attempts_total{status_class=\"2xx\"} 3\n"), "{text}");
        assert!(text.contains("t_attempts_total{status_class=\"5xx\"} 1\n"), "{text}");
        assert!(text.contains("t_events_total 0\n"), "a label-less counter shows from the start: {text}");
        assert!(text.contains("t_in_flight 2\n"), "{text}");
        assert!(text.contains("t_latency_seconds_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("t_latency_seconds_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("t_latency_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("t_latency_seconds_sum 5.55\nt_latency_seconds_count 3\n"), "{text}");
        assert!(!text.contains("trace_id") && !text.contains("# EOF"), "{text}");

        let open = registry.render(Format::OpenMetrics);
        assert!(open.contains("# TYPE t_attempts counter\n"), "{open}");
        assert!(open.contains("t_attempts_total{status_class=\"2xx\"} 3\n"), "{open}");
        assert!(
            open.contains(
                "t_latency_seconds_bucket{le=\"0.1\"} 1 # {trace_id=\"0af7651916cd43dd8448eb211c80319c\"} 0.05 "
            ),
            "{open}"
        );
        assert!(open.ends_with("# EOF\n"));
        assert_eq!(registry.names(), ["t_attempts_total", "t_events_total", "t_in_flight", "t_latency_seconds"]);
    }

    /// The format follows the scraper's `Accept` header.
    #[test]
    fn negotiates_the_format() {
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain;version=0.0.4")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")),
            Format::OpenMetrics
        );
    }

    /// Label values are escaped.
    #[test]
    fn escapes_label_values() {
        let mut registry = Registry::default();
        let c = registry.counter("t_total", "T.", &["k"]);
        c.inc(&["a\"b\\c"]);
        assert!(registry.render(Format::Prometheus).contains(r#"t_total{k="a\"b\\c"} 1"#));
    }
}
