//! Metrics for Prometheus, on the `prometheus-client` crate: counters,
//! gauges and histograms, each a family keyed by a typed label set (a struct
//! deriving `EncodeLabelSet`, so label names are field names and a series
//! cannot be named with the wrong number of labels), rendered in the
//! Prometheus text format or, when the scraper asks for it, OpenMetrics
//! (which carries exemplars: the trace id of a sample, so Grafana links a
//! latency point to its trace).
//!
//! A service builds its own [`Registry`], registers its families in it and
//! keeps the [`Exposition`] that renders them; nothing is global, so two
//! services in one process (tests, `hookline run`) keep separate figures.
//! Label values must come from small fixed sets (a status class, a state),
//! never from user input: every distinct set is a series kept forever.
//!
//! Names are written in full, as dashboards query them: a counter's name
//! ends in `_total` here (`prometheus-client` adds that suffix itself, so
//! [`Counter::register`] takes it off before registering).

use std::{fmt::Debug, hash::Hash, sync::Arc, time::SystemTime};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder, prometheus_text, text},
    metrics::{
        MetricType,
        counter::Counter as RawCounter,
        exemplar::HistogramWithExemplars,
        family::{Family, MetricConstructor},
        gauge::Gauge as RawGauge,
    },
};

pub use prometheus_client::registry::Registry;

/// Latency buckets in seconds, from 1 ms to a minute.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Delivery latency buckets in seconds: milliseconds for first attempts up
/// to a day for deliveries that waited through retries.
pub const DELIVERY_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0, 86400.0];

/// What a family's series are keyed by: a struct deriving `EncodeLabelSet`
/// (plus `Clone, Debug, Hash, PartialEq, Eq`), or [`NoLabels`].
pub trait LabelSet: EncodeLabelSet + Clone + Debug + Hash + Eq + Send + Sync + 'static {
    /// The series shown from registration on, at zero (a label-less
    /// family's one series), so a scrape shows 0 rather than nothing.
    fn initial() -> Option<Self> {
        None
    }
}

/// The label set of a family without labels. Callers name its one series
/// `&[]`, the same way they name a labelled series by its values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NoLabels;

impl EncodeLabelSet for NoLabels {
    fn encode(&self, _: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        Ok(())
    }
}

impl LabelSet for NoLabels {
    fn initial() -> Option<Self> {
        Some(Self)
    }
}

impl From<&[&'static str; 0]> for NoLabels {
    fn from(_: &[&'static str; 0]) -> Self {
        Self
    }
}

/// The exemplar of a histogram bucket: the trace that produced a sample.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
struct TraceId {
    trace_id: String,
}

/// `prometheus-client` appends a full stop to every help text; ours are
/// written as sentences already.
fn help_text(help: &str) -> &str {
    help.strip_suffix('.').unwrap_or(help)
}

/// A family registered so that its `# HELP` and `# TYPE` lines are rendered
/// even before its first series exists (`prometheus-client` leaves an empty
/// family out): dashboards and tests see every family from the start.
#[derive(Debug)]
struct Described<M>(M);

impl<M: EncodeMetric> EncodeMetric for Described<M> {
    fn encode(&self, encoder: MetricEncoder<'_>) -> std::fmt::Result {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// A monotonically increasing count, per label set.
#[derive(Debug, Clone)]
pub struct Counter<L: LabelSet = NoLabels> {
    family: Family<L, RawCounter>,
}

impl<L: LabelSet> Counter<L> {
    /// Registers a counter family named `name`, which ends in `_total` (the
    /// name exposed; `prometheus-client` is given it without the suffix and
    /// adds it back).
    pub fn register(registry: &mut Registry, name: &'static str, help: &str) -> Self {
        debug_assert!(name.ends_with("_total"), "counter {name} must end in _total");
        let counter = Self { family: Family::default() };
        if let Some(labels) = L::initial() {
            counter.add(labels, 0);
        }
        registry.register(
            name.strip_suffix("_total").unwrap_or(name),
            help_text(help),
            Described(counter.family.clone()),
        );
        counter
    }

    /// Adds `n` to the series with these labels.
    pub fn add(&self, labels: impl Into<L>, n: u64) {
        self.family.get_or_create(&labels.into()).inc_by(n);
    }

    /// Adds one.
    pub fn inc(&self, labels: impl Into<L>) {
        self.add(labels, 1);
    }

    /// The current count of one series (0 when it was never touched).
    pub fn get(&self, labels: impl Into<L>) -> u64 {
        self.family.get(&labels.into()).map_or(0, |c| c.get())
    }
}

/// A value that goes up and down, per label set.
#[derive(Debug, Clone)]
pub struct Gauge<L: LabelSet = NoLabels> {
    family: Family<L, RawGauge>,
}

impl<L: LabelSet> Gauge<L> {
    /// Registers a gauge family.
    pub fn register(registry: &mut Registry, name: &'static str, help: &str) -> Self {
        let gauge = Self { family: Family::default() };
        if let Some(labels) = L::initial() {
            gauge.set(labels, 0);
        }
        registry.register(name, help_text(help), Described(gauge.family.clone()));
        gauge
    }

    /// Sets the series with these labels.
    pub fn set(&self, labels: impl Into<L>, value: i64) {
        self.family.get_or_create(&labels.into()).set(value);
    }

    /// Adds `delta` (negative to lower it).
    pub fn add(&self, labels: impl Into<L>, delta: i64) {
        self.family.get_or_create(&labels.into()).inc_by(delta);
    }

    /// The current value of one series.
    pub fn get(&self, labels: impl Into<L>) -> i64 {
        self.family.get(&labels.into()).map_or(0, |g| g.get())
    }
}

type Buckets = HistogramWithExemplars<TraceId>;

/// Builds each series' histogram with its family's bucket bounds.
#[derive(Debug, Clone, Copy)]
struct Bounds(&'static [f64]);

impl MetricConstructor<Buckets> for Bounds {
    fn new_metric(&self) -> Buckets {
        HistogramWithExemplars::new(self.0.iter().copied())
    }
}

/// A distribution of observed values, per label set; each bucket keeps the
/// trace id of its latest sample that had one, as its exemplar.
#[derive(Debug, Clone)]
pub struct Histogram<L: LabelSet = NoLabels> {
    family: Family<L, Buckets, Bounds>,
}

impl<L: LabelSet> Histogram<L> {
    /// Registers a histogram family with these bucket upper bounds
    /// (ascending; `+Inf` is implied).
    pub fn register(registry: &mut Registry, name: &'static str, help: &str, buckets: &'static [f64]) -> Self {
        let histogram = Self { family: Family::new_with_constructor(Bounds(buckets)) };
        registry.register(name, help_text(help), Described(histogram.family.clone()));
        histogram
    }

    /// Records `value` in the series with these labels; `trace_id` (32 hex
    /// digits) becomes the exemplar of the bucket it falls in.
    pub fn observe(&self, labels: impl Into<L>, value: f64, trace_id: Option<&str>) {
        let exemplar = trace_id.map(|t| TraceId { trace_id: t.to_owned() });
        let at = exemplar.as_ref().map(|_| SystemTime::now());
        self.family.get_or_create(&labels.into()).observe(value, exemplar, at);
    }
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
            Self::Prometheus => prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A service's registry once its families are registered: what `/metrics`
/// renders. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Exposition {
    registry: Arc<Registry>,
}

impl Exposition {
    /// Freezes `registry`: no family can be added after this.
    pub fn new(registry: Registry) -> Self {
        Self { registry: Arc::new(registry) }
    }

    /// Renders every family.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        let written = match format {
            Format::Prometheus => prometheus_text::encode(&mut out, &self.registry),
            Format::OpenMetrics => text::encode(&mut out, &self.registry),
        };
        // The encoders fail only when the writer does (a `String` never
        // does) or a label value's encoder does (ours are strings and
        // integers, which cannot).
        written.expect("encoding metrics into a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::EncodeLabelSet;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct Class {
        status_class: &'static str,
    }

    impl LabelSet for Class {}

    impl From<&[&'static str; 1]> for Class {
        fn from(&[status_class]: &[&'static str; 1]) -> Self {
            Self { status_class }
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct Key {
        k: String,
    }

    impl LabelSet for Key {}

    /// Counters, gauges and histograms render in the Prometheus text format
    /// under the names they were registered with, buckets cumulative;
    /// OpenMetrics names counter families without `_total`, adds exemplars
    /// and `# EOF`.
    #[test]
    fn renders_both_formats() {
        let mut registry = Registry::default();
        let attempts = Counter::<Class>::register(&mut registry, "t_attempts_total", "Attempts.");
        let plain = Counter::<NoLabels>::register(&mut registry, "t_events_total", "Events.");
        let in_flight = Gauge::<NoLabels>::register(&mut registry, "t_in_flight", "In flight.");
        let latency = Histogram::<NoLabels>::register(&mut registry, "t_latency_seconds", "Latency.", &[0.1, 1.0]);
        let _unused = Counter::<Class>::register(&mut registry, "t_unused_total", "Never counted.");
        let exposition = Exposition::new(registry);
        attempts.inc(&["2xx"]);
        attempts.add(&["2xx"], 2);
        attempts.inc(Class { status_class: "5xx" });
        in_flight.add(&[], 3);
        in_flight.add(&[], -1);
        latency.observe(&[], 0.05, Some("0af7651916cd43dd8448eb211c80319c"));
        latency.observe(&[], 0.5, None);
        latency.observe(&[], 5.0, None);
        assert_eq!(attempts.get(&["2xx"]), 3);
        assert_eq!(attempts.get(&["4xx"]), 0);
        assert_eq!(plain.get(&[]), 0);
        assert_eq!(in_flight.get(&[]), 2);

        let text = exposition.render(Format::Prometheus);
        assert!(text.contains("# HELP t_attempts_total Attempts.\n# TYPE t_attempts_total counter\n"), "{text}");
        assert!(text.contains("t_attempts_total{status_class=\"2xx\"} 3\n"), "{text}");
        assert!(text.contains("t_attempts_total{status_class=\"5xx\"} 1\n"), "{text}");
        assert!(text.contains("t_events_total 0\n"), "a label-less counter shows from the start: {text}");
        assert!(text.contains("# TYPE t_in_flight gauge\nt_in_flight 2\n"), "{text}");
        assert!(text.contains("# TYPE t_latency_seconds histogram\n"), "{text}");
        assert!(text.contains("t_latency_seconds_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("t_latency_seconds_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("t_latency_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("t_latency_seconds_sum 5.55\n"), "{text}");
        assert!(text.contains("t_latency_seconds_count 3\n"), "{text}");
        assert!(text.contains("# TYPE t_unused_total counter\n"), "an empty family is described: {text}");
        assert!(!text.contains("trace_id") && !text.contains("# EOF"), "{text}");

        let open = exposition.render(Format::OpenMetrics);
        assert!(open.contains("# HELP t_attempts Attempts.\n# TYPE t_attempts counter\n"), "{open}");
        assert!(open.contains("t_attempts_total{status_class=\"2xx\"} 3\n"), "{open}");
        assert!(
            open.contains(
                "t_latency_seconds_bucket{le=\"0.1\"} 1 # {trace_id=\"0af7651916cd43dd8448eb211c80319c\"} 0.05 "
            ),
            "{open}"
        );
        assert!(open.contains("# TYPE t_unused counter\n"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
    }

    /// Every family keeps its own bucket layout.
    #[test]
    fn histograms_keep_their_buckets() {
        let mut registry = Registry::default();
        let a = Histogram::<NoLabels>::register(&mut registry, "t_a_seconds", "A.", LATENCY_BUCKETS);
        let b = Histogram::<NoLabels>::register(&mut registry, "t_b_seconds", "B.", DELIVERY_BUCKETS);
        a.observe(&[], 0.0001, None);
        b.observe(&[], 0.0001, None);
        let text = Exposition::new(registry).render(Format::Prometheus);
        let bounds = |name: &str| -> Vec<String> {
            let prefix = format!("{name}_bucket{{le=\"");
            text.lines()
                .filter_map(|l| l.strip_prefix(prefix.as_str()))
                .filter_map(|rest| rest.split('"').next())
                .map(str::to_owned)
                .collect()
        };
        let expected = |buckets: &[f64]| -> Vec<String> {
            buckets.iter().map(|b| format!("{b}")).chain(std::iter::once("+Inf".to_owned())).collect()
        };
        assert_eq!(bounds("t_a_seconds"), expected(LATENCY_BUCKETS), "{text}");
        assert_eq!(bounds("t_b_seconds"), expected(DELIVERY_BUCKETS), "{text}");
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
        let c = Counter::<Key>::register(&mut registry, "t_total", "T.");
        c.inc(Key { k: "a\"b\\c".to_owned() });
        let text = Exposition::new(registry).render(Format::Prometheus);
        assert!(text.contains(r#"t_total{k="a\"b\\c"} 1"#), "{text}");
    }
}
