//! Tracing setup shared by every Hookline binary and test.
//!
//! `init` installs a `tracing` subscriber: `RUST_LOG` when set, otherwise a
//! crate-based default; readable text locally or JSON in deployment. Nothing
//! here knows about webhooks, Postgres or RabbitMQ.
//!
//! # Layout
//! - [`TelemetrySettings`]: what the binaries read from the environment.
//! - [`init`]: installs the global subscriber once, returns a [`TelemetryGuard`].
//! - [`init_for_tests`]: quiet unless `TEST_LOG=1`, safe to call from every test.

use std::sync::OnceLock;

use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

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

/// Telemetry settings of one service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// Output format of log lines.
    pub log_format: LogFormat,
    /// The `RUST_LOG` filter when set; `None` uses [`DEFAULT_FILTER`].
    pub filter: Option<String>,
}

impl TelemetrySettings {
    /// Builds the settings from the values of `HOOKLINE_LOG_FORMAT` and
    /// `RUST_LOG` (either may be unset).
    pub fn from_values(log_format: Option<&str>, rust_log: Option<&str>) -> Result<Self, UnknownLogFormat> {
        Ok(Self {
            log_format: log_format.map(LogFormat::parse).transpose()?.unwrap_or_default(),
            filter: rust_log.map(str::to_owned),
        })
    }
}

/// Keeps telemetry alive; dropping it flushes what is buffered.
#[derive(Debug)]
#[must_use = "telemetry is flushed when the guard is dropped"]
pub struct TelemetryGuard {
    _private: (),
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

/// Installs the global subscriber. Call once, from `main`.
pub fn init(settings: &TelemetrySettings) -> Result<TelemetryGuard, InitError> {
    let registry = tracing_subscriber::registry().with(filter(settings)?);
    let result = match settings.log_format {
        LogFormat::Text => registry.with(fmt::layer().with_target(true)).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true).with_current_span(true)).try_init(),
    };
    result.map_err(|e| InitError(e.to_string()))?;
    Ok(TelemetryGuard { _private: () })
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

    /// A malformed filter is reported instead of silently ignored.
    #[test]
    fn bad_filter_is_an_error() {
        let settings = TelemetrySettings { filter: Some("hookline=notalevel".into()), ..Default::default() };
        assert!(filter(&settings).is_err());
    }
}
