//! Telemetry shared by every Hookline binary and test: logs, traces and
//! metrics.
//!
//! `init` installs a `tracing` subscriber: `RUST_LOG` when set, otherwise a
//! crate-based default; readable text locally or JSON in deployment. When
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set, spans also
//! become OpenTelemetry spans, exported over OTLP/HTTP (protobuf), whose
//! trace ids travel in message headers and are recorded with attempts; when
//! it is not, no OpenTelemetry span is made at all (they would only cost CPU
//! on every delivery). The W3C trace-context propagator is installed
//! globally. Nothing here knows about
//! webhooks, Postgres or RabbitMQ.
//!
//! # Layout
//! - [`TelemetrySettings`]: what the binaries read from the environment.
//! - [`init`]: installs the global subscriber once, returns a [`TelemetryGuard`].
//! - [`init_for_tests`]: quiet unless `TEST_LOG=1`, safe to call from every test.
//! - [`metrics`]: counters, gauges and histograms rendered for Prometheus.

pub mod metrics;

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// Which spans become OpenTelemetry spans (whatever `RUST_LOG` says about
/// log lines): Hookline's own, at info and above.
pub const TRACE_FILTER: &str = "hookline=info,hookline_producer=info,hookline_worker=info,hookline_broker=info,off";

/// The default filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "hookline=info,hookline_core=info,hookline_store=info,hookline_broker=info,hookline_producer=info,hookline_worker=info,tower_http=info,lapin=warn,warn";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json` (the value of `HOOKLINE_LOG_FORMAT`).
    pub fn parse(value: &str) -> Result<Self, UnknownLogFormat> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" | "pretty" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(UnknownLogFormat(value.to_owned())),
        }
    }
}

/// `HOOKLINE_LOG_FORMAT` held something other than `text` or `json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLogFormat(pub String);

impl std::fmt::Display for UnknownLogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown log format `{}` (expected `text` or `json`)", self.0)
    }
}

impl std::error::Error for UnknownLogFormat {}

fn nonempty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// Telemetry settings of one service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// Output format of log lines.
    pub log_format: LogFormat,
    /// The `RUST_LOG` filter when set; `None` uses [`DEFAULT_FILTER`].
    pub filter: Option<String>,
    /// Where spans are exported (the full OTLP/HTTP traces URL, ending in
    /// `/v1/traces`); `None` exports nothing.
    pub otlp_traces_endpoint: Option<String>,
    /// `service.name` of the exported spans (`OTEL_SERVICE_NAME`, else the
    /// binary's own name).
    pub service_name: String,
}

impl TelemetrySettings {
    /// Builds the settings from the values of `HOOKLINE_LOG_FORMAT` and
    /// `RUST_LOG` (either may be unset).
    pub fn from_values(log_format: Option<&str>, rust_log: Option<&str>) -> Result<Self, UnknownLogFormat> {
        Ok(Self {
            log_format: log_format.map(LogFormat::parse).transpose()?.unwrap_or_default(),
            filter: rust_log.map(str::to_owned),
            ..Self::default()
        })
    }

    /// Reads `HOOKLINE_LOG_FORMAT`, `RUST_LOG` and the OpenTelemetry
    /// variables through `get` (a lookup in the service's variable map).
    pub fn from_lookup<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
        default_service: &str,
    ) -> Result<Self, UnknownLogFormat> {
        Ok(Self::from_values(get("HOOKLINE_LOG_FORMAT"), get("RUST_LOG"))?.with_otel(
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            get("OTEL_SERVICE_NAME"),
            default_service,
        ))
    }

    /// Adds the OpenTelemetry variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended),
    /// and `OTEL_SERVICE_NAME` (else `default_service`). Headers, timeout and
    /// compression (`OTEL_EXPORTER_OTLP_HEADERS`, …) are read by the exporter.
    pub fn with_otel(
        mut self,
        traces_endpoint: Option<&str>,
        endpoint: Option<&str>,
        service_name: Option<&str>,
        default_service: &str,
    ) -> Self {
        self.otlp_traces_endpoint = nonempty(traces_endpoint)
            .map(str::to_owned)
            .or_else(|| nonempty(endpoint).map(|e| format!("{}/v1/traces", e.trim_end_matches('/'))));
        self.service_name = nonempty(service_name).unwrap_or(default_service).to_owned();
        self
    }
}

/// Keeps telemetry alive; dropping it flushes and shuts down the exporter,
/// so the spans of the last moments before a shutdown are not lost.
#[derive(Debug)]
#[must_use = "telemetry is flushed when the guard is dropped"]
pub struct TelemetryGuard {
    /// The exporting tracer provider; none when no endpoint is configured.
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports every finished span now (tests call it before looking).
    pub fn flush(&self) {
        if let Some(Err(e)) = self.provider.as_ref().map(SdkTracerProvider::force_flush) {
            tracing::warn!(error.message = %e, "flushing spans failed");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // The batch processor runs on its own thread; shutting down blocks
        // until it has exported what it holds (bounded by its timeout).
        if let Some(provider) = &self.provider {
            let _ = provider.shutdown();
        }
    }
}

/// The subscriber could not be installed.
#[derive(Debug)]
pub struct InitError(String);

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "telemetry initialisation failed: {}", self.0)
    }
}

impl std::error::Error for InitError {}

fn filter(settings: &TelemetrySettings) -> Result<EnvFilter, InitError> {
    let spec = settings.filter.as_deref().unwrap_or(DEFAULT_FILTER);
    EnvFilter::try_new(spec).map_err(|e| InitError(format!("invalid RUST_LOG `{spec}`: {e}")))
}

/// A provider exporting to `endpoint` over OTLP/HTTP (protobuf).
fn tracer_provider(settings: &TelemetrySettings, endpoint: &str) -> Result<SdkTracerProvider, InitError> {
    let service = if settings.service_name.is_empty() { "hookline" } else { settings.service_name.as_str() };
    let resource = Resource::builder().with_service_name(service.to_owned()).build();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint.to_owned())
        .build()
        .map_err(|e| InitError(format!("OTLP exporter for {endpoint}: {e}")))?;
    Ok(SdkTracerProvider::builder().with_resource(resource).with_batch_exporter(exporter).build())
}

/// Installs the global subscriber (log lines, and, when an OTLP endpoint is
/// configured, spans as OpenTelemetry spans) and the W3C propagator. Call
/// once, from `main`.
pub fn init(settings: &TelemetrySettings) -> Result<TelemetryGuard, InitError> {
    // No exporter, no spans: with nowhere to send them, OpenTelemetry spans
    // would only cost CPU on every delivery.
    let provider = settings.otlp_traces_endpoint.as_deref().map(|e| tracer_provider(settings, e)).transpose()?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("hookline"))
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });
    let logs = match settings.log_format {
        LogFormat::Text => fmt::layer().with_target(true).boxed(),
        LogFormat::Json => fmt::layer().json().flatten_event(true).with_current_span(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter(settings)?))
        .with(otel)
        .try_init()
        .map_err(|e| InitError(e.to_string()))?;
    if let Some(endpoint) = &settings.otlp_traces_endpoint {
        tracing::info!(endpoint, service = settings.service_name, "exporting traces over OTLP");
    }
    Ok(TelemetryGuard { provider })
}

/// Installs a test subscriber once per process. Silent unless `TEST_LOG` is
/// set; output then goes through the test writer so it shows only for
/// failing tests.
pub fn init_for_tests() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_none() {
            return;
        }
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("hookline=debug,hookline_worker=debug,hookline_producer=debug,info"));
        let _ = tracing_subscriber::registry().with(filter).with(fmt::layer().with_test_writer()).try_init();
    });
}

/// Waits for Ctrl-C or SIGTERM, then cancels `token`. Binaries spawn this;
/// libraries only ever see the token.
pub async fn cancel_on_signal(token: tokio_util::sync::CancellationToken) {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error.message = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error.message = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `HOOKLINE_LOG_FORMAT` accepts text and json, case-insensitively, and nothing else.
    #[test]
    fn log_format_parses() {
        assert_eq!(LogFormat::parse("JSON"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Ok(LogFormat::Text));
        assert!(LogFormat::parse("xml").is_err());
    }

    /// The OTLP endpoint gets `/v1/traces` appended; the per-signal one is
    /// used as it is; the service name falls back to the binary's.
    #[test]
    fn otel_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
        };
        let s = TelemetrySettings::from_lookup(vars(&[]), "hookline-worker").expect("valid");
        assert_eq!((s.otlp_traces_endpoint, s.service_name.as_str()), (None, "hookline-worker"));
        let s = TelemetrySettings::from_lookup(
            vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"), ("OTEL_SERVICE_NAME", "w2")]),
            "hookline-worker",
        )
        .expect("valid");
        assert_eq!(s.otlp_traces_endpoint.as_deref(), Some("http://collector:4318/v1/traces"));
        assert_eq!(s.service_name, "w2");
        let s = TelemetrySettings::from_lookup(
            vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://wrong:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4318/custom"),
            ]),
            "x",
        )
        .expect("valid");
        assert_eq!(s.otlp_traces_endpoint.as_deref(), Some("http://tempo:4318/custom"));
    }

    /// A malformed filter is reported instead of silently ignored.
    #[test]
    fn bad_filter_is_an_error() {
        let settings = TelemetrySettings { filter: Some("hookline=notalevel".into()), ..Default::default() };
        assert!(filter(&settings).is_err());
    }
}
