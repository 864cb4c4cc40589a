//! The producer's settings.

use std::{net::SocketAddr, time::Duration};

use hookline_broker::AmqpSettings;
use hookline_core::{
    AllowList,
    config::{ConfigError, Vars},
};
use hookline_store::PgSettings;
use hookline_telemetry::TelemetrySettings;

/// A secret setting (API key, token secret): never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// Shortest accepted API key or token secret.
const MIN_SECRET_LEN: usize = 16;

/// How long a request may take by default: far above any answer the API
/// gives in normal operation, short enough that a stuck one lets go.
const DEFAULT_API_TIMEOUT_MS: u64 = 30_000;

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
    /// Longest a request may take before it is abandoned and answered `408`
    /// (`HOOKLINE_API_TIMEOUT_MS`).
    pub api_timeout: Duration,
    /// Admin API keys (`HOOKLINE_API_KEYS`, comma-separated). When empty, the
    /// producer only starts on a loopback address, with a generated key.
    pub api_keys: Vec<Secret>,
    /// Signs tenant tokens (`HOOKLINE_TENANT_TOKEN_SECRET`); derived from the
    /// API keys when unset, so producers sharing keys accept each other's tokens.
    pub tenant_token_secret: Option<Secret>,
    /// Most webhooks one tenant may have (`HOOKLINE_MAX_WEBHOOKS_PER_TENANT`).
    pub max_webhooks_per_tenant: i64,
    /// Deliveries per second a `recover` replays (`HOOKLINE_RECOVER_RATE_PER_SEC`).
    pub recover_rate_per_sec: u32,
    /// Address ranges webhook URLs may point into despite being private,
    /// loopback or link-local (`HOOKLINE_ALLOWED_NETWORKS`); empty by default.
    pub allowed_networks: AllowList,
    /// The portal links each attempt's trace id to this URL with the id
    /// appended (`HOOKLINE_GRAFANA_TRACE_URL`), when set.
    pub grafana_trace_url: Option<String>,
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
            api_timeout: Duration::from_millis(DEFAULT_API_TIMEOUT_MS),
            api_keys: Vec::new(),
            tenant_token_secret: None,
            max_webhooks_per_tenant: 100,
            recover_rate_per_sec: 10,
            allowed_networks: AllowList::default(),
            grafana_trace_url: None,
            telemetry: TelemetrySettings::default(),
        }
    }
}

/// Reads `HOOKLINE_LOG_FORMAT` and `RUST_LOG`.
fn api_keys(vars: &Vars) -> Result<Vec<Secret>, ConfigError> {
    let Some(raw) = vars.get("HOOKLINE_API_KEYS") else { return Ok(Vec::new()) };
    raw.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            if k.len() < MIN_SECRET_LEN {
                Err(ConfigError::new(
                    "HOOKLINE_API_KEYS",
                    format!("each key must be at least {MIN_SECRET_LEN} characters"),
                ))
            } else {
                Ok(Secret(k.to_owned()))
            }
        })
        .collect()
}

fn telemetry_from_vars(vars: &Vars) -> Result<TelemetrySettings, ConfigError> {
    TelemetrySettings::from_lookup(|name| vars.get(name), "hookline-producer")
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
            api_timeout: vars.positive("HOOKLINE_API_TIMEOUT_MS", DEFAULT_API_TIMEOUT_MS).map(Duration::from_millis)?,
            api_keys: api_keys(vars)?,
            tenant_token_secret: match vars.get("HOOKLINE_TENANT_TOKEN_SECRET") {
                Some(s) if s.len() < MIN_SECRET_LEN => {
                    return Err(ConfigError::new(
                        "HOOKLINE_TENANT_TOKEN_SECRET",
                        format!("must be at least {MIN_SECRET_LEN} characters"),
                    ));
                }
                other => other.map(|s| Secret(s.to_owned())),
            },
            max_webhooks_per_tenant: vars
                .positive("HOOKLINE_MAX_WEBHOOKS_PER_TENANT", default.max_webhooks_per_tenant)?,
            recover_rate_per_sec: vars.positive("HOOKLINE_RECOVER_RATE_PER_SEC", default.recover_rate_per_sec)?,
            allowed_networks: AllowList::from_vars(vars)?,
            grafana_trace_url: vars.get("HOOKLINE_GRAFANA_TRACE_URL").map(str::to_owned).filter(|u| !u.is_empty()),
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
        assert_eq!(s.api_timeout, Duration::from_secs(30));
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
        let vars: Vars = [("HOOKLINE_API_KEYS", "long-enough-key-123, short")].into_iter().collect();
        assert_eq!(Settings::from_vars(&vars).expect_err("invalid").var, "HOOKLINE_API_KEYS");
        let vars: Vars = [("HOOKLINE_ALLOWED_NETWORKS", "127.0.0.0/8,localhost")].into_iter().collect();
        assert_eq!(Settings::from_vars(&vars).expect_err("invalid").var, "HOOKLINE_ALLOWED_NETWORKS");
        let vars: Vars = [("HOOKLINE_API_TIMEOUT_MS", "0")].into_iter().collect();
        assert_eq!(Settings::from_vars(&vars).expect_err("invalid").var, "HOOKLINE_API_TIMEOUT_MS");
        let vars: Vars = [("HOOKLINE_ENCRYPTION_KEYS", "k1:short")].into_iter().collect();
        assert_eq!(Settings::from_vars(&vars).expect_err("invalid").var, "HOOKLINE_ENCRYPTION_KEYS");
    }

    /// API keys are a comma-separated list and never show in `Debug`.
    #[test]
    fn api_keys_are_listed_and_redacted() {
        let vars: Vars = [("HOOKLINE_API_KEYS", " key-one-0123456789 ,key-two-0123456789,")].into_iter().collect();
        let s = Settings::from_vars(&vars).expect("valid");
        assert_eq!(
            s.api_keys.iter().map(Secret::expose).collect::<Vec<_>>(),
            ["key-one-0123456789", "key-two-0123456789"]
        );
        assert!(!format!("{s:?}").contains("key-one"));
    }
}
