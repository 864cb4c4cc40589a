//! The producer's settings.

use std::net::SocketAddr;

use hookline_broker::AmqpSettings;
use hookline_core::config::{ConfigError, Vars};
use hookline_store::PgSettings;
use hookline_telemetry::TelemetrySettings;

/// Everything the producer is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the HTTP API listens (`HOOKLINE_LISTEN_ADDR`); port 0 picks one.
    pub listen_addr: SocketAddr,
    /// The database.
    pub pg: PgSettings,
    /// The broker.
    pub amqp: AmqpSettings,
    /// Largest accepted request body, in bytes (`HOOKLINE_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Logging.
    pub telemetry: TelemetrySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            pg: PgSettings::default(),
            amqp: AmqpSettings::default(),
            max_body_bytes: 256 * 1024,
            telemetry: TelemetrySettings::default(),
        }
    }
}

/// Reads `HOOKLINE_LOG_FORMAT` and `RUST_LOG`.
fn telemetry_from_vars(vars: &Vars) -> Result<TelemetrySettings, ConfigError> {
    TelemetrySettings::from_values(vars.get("HOOKLINE_LOG_FORMAT"), vars.get("RUST_LOG"))
        .map_err(|e| ConfigError::new("HOOKLINE_LOG_FORMAT", e))
}

impl Settings {
    /// Loads the settings from variables; every unset one takes its default.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let default = Self::default();
        Ok(Self {
            listen_addr: vars.parse("HOOKLINE_LISTEN_ADDR", default.listen_addr)?,
            pg: PgSettings::from_vars(vars)?,
            amqp: AmqpSettings::from_vars(vars)?,
            max_body_bytes: vars.positive("HOOKLINE_MAX_BODY_BYTES", default.max_body_bytes)?,
            telemetry: telemetry_from_vars(vars)?,
        })
    }

    /// Loads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With no variables set, the producer targets the local services.
    #[test]
    fn defaults_point_at_local_services() {
        let s = Settings::from_vars(&Vars::default()).expect("defaults are valid");
        assert_eq!(s.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.pg.url, "postgres://postgres@127.0.0.1:5432/hookline");
        assert_eq!(s.amqp.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(s.amqp.namespace, "hookline");
    }

    /// A bad value stops start-up with the variable's name.
    #[test]
    fn bad_values_name_the_variable() {
        let vars: Vars = [("HOOKLINE_LISTEN_ADDR", "nowhere")].into_iter().collect();
        assert_eq!(Settings::from_vars(&vars).expect_err("invalid").var, "HOOKLINE_LISTEN_ADDR");
        let vars: Vars = [("HOOKLINE_NAMESPACE", "a.b")].into_iter().collect();
        assert_eq!(Settings::from_vars(&vars).expect_err("invalid").var, "HOOKLINE_NAMESPACE");
        let vars: Vars = [("HOOKLINE_LOG_FORMAT", "xml")].into_iter().collect();
        assert_eq!(Settings::from_vars(&vars).expect_err("invalid").var, "HOOKLINE_LOG_FORMAT");
    }
}
