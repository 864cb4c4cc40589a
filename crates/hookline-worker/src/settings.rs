//! The worker's settings.

use std::{net::SocketAddr, time::Duration};

use hookline_broker::AmqpSettings;
use hookline_core::{
    AllowList, InvalidProbeBackoff, ProbeBackoff, RetrySchedule,
    config::{ConfigError, Vars},
};
use hookline_store::PgSettings;
use hookline_telemetry::TelemetrySettings;

use crate::retention::Retention;

/// Everything a worker is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where `/healthz` and `/readyz` are served (`HOOKLINE_WORKER_LISTEN_ADDR`).
    pub listen_addr: SocketAddr,
    /// The database.
    pub pg: PgSettings,
    /// The broker.
    pub amqp: AmqpSettings,
    /// Deliveries in flight at once (`HOOKLINE_WORKER_CONCURRENCY`); also the
    /// broker prefetch, so the worker never holds messages it cannot start.
    pub concurrency: usize,
    /// Events fanned out at once (`HOOKLINE_DISPATCH_CONCURRENCY`).
    pub dispatch_concurrency: usize,
    /// Requests in flight to one webhook from one worker
    /// (`HOOKLINE_MAX_IN_FLIGHT_PER_WEBHOOK`): a hanging endpoint cannot
    /// take every slot.
    pub max_in_flight_per_webhook: usize,
    /// Requests in flight for one account (tenant) from one worker
    /// (`HOOKLINE_MAX_IN_FLIGHT_PER_TENANT`, default half of
    /// `HOOKLINE_WORKER_CONCURRENCY`): an account whose endpoints are slow
    /// cannot take the capacity other accounts need. `None`: half of
    /// `concurrency`.
    pub max_in_flight_per_tenant: Option<usize>,
    /// Limit on one whole request, connect to last body byte read
    /// (`HOOKLINE_REQUEST_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// Limit on establishing the connection (`HOOKLINE_CONNECT_TIMEOUT_MS`).
    pub connect_timeout: Duration,
    /// Bytes of the response body kept in the log (`HOOKLINE_RESPONSE_EXCERPT_BYTES`).
    pub response_excerpt_bytes: usize,
    /// Largest event accepted (`HOOKLINE_MAX_BODY_BYTES`, as the producer's
    /// request limit): an event message published straight to the exchange
    /// that is larger (by more than [`crate::dispatch::ENVELOPE_SLACK`]) is
    /// parked with its reason.
    pub max_body_bytes: usize,
    /// How long in-flight deliveries may take to finish on shutdown before
    /// they are handed back to the broker (`HOOKLINE_DRAIN_TIMEOUT_MS`).
    pub drain_timeout: Duration,
    /// Delays between attempts (`HOOKLINE_RETRY_SCHEDULE`, e.g. `5s,1m,5m`).
    pub retry_schedule: RetrySchedule,
    /// Consecutive failures that suspend a webhook (`HOOKLINE_SUSPEND_AFTER_FAILURES`).
    pub suspend_after_failures: u32,
    /// Address ranges deliveries may connect to although they are private,
    /// loopback or link-local (`HOOKLINE_ALLOWED_NETWORKS`); empty by default.
    pub allowed_networks: AllowList,
    /// How often the worker looks for deliveries whose step is overdue
    /// (`HOOKLINE_RECONCILE_INTERVAL_MS`).
    pub reconcile_interval: Duration,
    /// How late a step must be before reconciliation publishes it again
    /// (`HOOKLINE_RECONCILE_GRACE_MS`): longer than a message normally
    /// waits in a queue.
    pub reconcile_grace: Duration,
    /// Recovery probes of suspended webhooks that opted in: the wait from
    /// the suspension to the first (`HOOKLINE_RECOVERY_PROBE_FIRST_MS`),
    /// doubled after each failed one up to `HOOKLINE_RECOVERY_PROBE_MAX_MS`.
    pub recovery_probe: ProbeBackoff,
    /// How often a worker looks for suspended webhooks due a probe
    /// (`HOOKLINE_RECOVERY_POLL_MS`): one indexed query when none is.
    pub recovery_poll: Duration,
    /// Replays per second when a probe resumes a webhook with replay on
    /// (`HOOKLINE_RECOVER_RATE_PER_SEC`, the rate of `recover`).
    pub recover_rate_per_sec: u32,
    /// How often a worker looks for webhook health changes to announce as
    /// operational events (`HOOKLINE_OPERATIONAL_POLL_MS`).
    pub operational_poll: Duration,
    /// How often a worker releases deliveries queued for their webhook's
    /// rate limit (`HOOKLINE_RATE_TICK_MS`); each release covers a tick and a
    /// second ahead.
    pub rate_tick: Duration,
    /// How long a change between `healthy` and `unhealthy` must hold before
    /// it is announced (`HOOKLINE_OPERATIONAL_SETTLE_MS`); one undone sooner
    /// is never announced, so a flapping webhook is not an event storm.
    pub operational_settle: Duration,
    /// Retention: how long events, deliveries and attempts are kept
    /// (`HOOKLINE_RETENTION`, default `30d`, `0` keeps everything) and how
    /// their removal is paced (`HOOKLINE_RETENTION_INTERVAL_MS`, `_BATCH`,
    /// `_PAUSE_MS`, `_BUSY_PERCENT`).
    pub retention: Retention,
    /// Logging.
    pub telemetry: TelemetrySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            pg: PgSettings::default(),
            amqp: AmqpSettings::default(),
            concurrency: 128,
            dispatch_concurrency: 256,
            max_in_flight_per_webhook: 32,
            max_in_flight_per_tenant: None,
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            response_excerpt_bytes: 1024,
            max_body_bytes: 256 * 1024,
            drain_timeout: Duration::from_secs(20),
            retry_schedule: RetrySchedule::default(),
            suspend_after_failures: hookline_core::health::DEFAULT_SUSPEND_AFTER,
            allowed_networks: AllowList::default(),
            reconcile_interval: Duration::from_secs(10),
            reconcile_grace: Duration::from_secs(30),
            recovery_probe: ProbeBackoff::default(),
            recovery_poll: Duration::from_secs(5),
            recover_rate_per_sec: 10,
            operational_poll: Duration::from_millis(500),
            rate_tick: Duration::from_millis(100),
            operational_settle: Duration::from_secs(1),
            retention: Retention::default(),
            telemetry: TelemetrySettings::default(),
        }
    }
}

impl Settings {
    /// Loads the settings from variables; every unset one takes its default.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let d = Self::default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let settings = Self {
            listen_addr: vars.parse("HOOKLINE_WORKER_LISTEN_ADDR", d.listen_addr)?,
            pg: PgSettings::from_vars(vars)?,
            amqp: AmqpSettings::from_vars(vars)?,
            concurrency: vars.positive("HOOKLINE_WORKER_CONCURRENCY", d.concurrency)?,
            dispatch_concurrency: vars.positive("HOOKLINE_DISPATCH_CONCURRENCY", d.dispatch_concurrency)?,
            max_in_flight_per_webhook: vars
                .positive("HOOKLINE_MAX_IN_FLIGHT_PER_WEBHOOK", d.max_in_flight_per_webhook)?,
            max_in_flight_per_tenant: match vars.get("HOOKLINE_MAX_IN_FLIGHT_PER_TENANT") {
                Some(_) => Some(vars.positive("HOOKLINE_MAX_IN_FLIGHT_PER_TENANT", 1)?),
                None => None,
            },
            request_timeout: vars.millis("HOOKLINE_REQUEST_TIMEOUT_MS", ms(d.request_timeout))?,
            connect_timeout: vars.millis("HOOKLINE_CONNECT_TIMEOUT_MS", ms(d.connect_timeout))?,
            response_excerpt_bytes: vars.parse("HOOKLINE_RESPONSE_EXCERPT_BYTES", d.response_excerpt_bytes)?,
            max_body_bytes: vars.positive("HOOKLINE_MAX_BODY_BYTES", d.max_body_bytes)?,
            drain_timeout: vars.millis("HOOKLINE_DRAIN_TIMEOUT_MS", ms(d.drain_timeout))?,
            retry_schedule: match vars.get("HOOKLINE_RETRY_SCHEDULE") {
                None => d.retry_schedule,
                Some(raw) => RetrySchedule::parse(raw).map_err(|e| ConfigError::new("HOOKLINE_RETRY_SCHEDULE", e))?,
            },
            suspend_after_failures: vars.positive("HOOKLINE_SUSPEND_AFTER_FAILURES", d.suspend_after_failures)?,
            allowed_networks: AllowList::from_vars(vars)?,
            reconcile_interval: vars.millis("HOOKLINE_RECONCILE_INTERVAL_MS", ms(d.reconcile_interval))?,
            reconcile_grace: vars.millis("HOOKLINE_RECONCILE_GRACE_MS", ms(d.reconcile_grace))?,
            recovery_probe: probe_backoff(vars, d.recovery_probe)?,
            recovery_poll: vars.millis("HOOKLINE_RECOVERY_POLL_MS", ms(d.recovery_poll))?,
            recover_rate_per_sec: vars.positive("HOOKLINE_RECOVER_RATE_PER_SEC", d.recover_rate_per_sec)?,
            operational_poll: vars.millis("HOOKLINE_OPERATIONAL_POLL_MS", ms(d.operational_poll))?,
            rate_tick: vars.millis("HOOKLINE_RATE_TICK_MS", ms(d.rate_tick))?,
            operational_settle: vars.millis("HOOKLINE_OPERATIONAL_SETTLE_MS", ms(d.operational_settle))?,
            retention: retention(vars, d.retention)?,
            telemetry: telemetry_from_vars(vars)?,
        };
        if settings.concurrency > usize::from(u16::MAX) {
            return Err(ConfigError::new("HOOKLINE_WORKER_CONCURRENCY", "must be at most 65535"));
        }
        if settings.request_timeout.is_zero() {
            return Err(ConfigError::new("HOOKLINE_REQUEST_TIMEOUT_MS", "must be greater than zero"));
        }
        if settings.reconcile_interval.is_zero() {
            return Err(ConfigError::new("HOOKLINE_RECONCILE_INTERVAL_MS", "must be greater than zero"));
        }
        if settings.recovery_poll.is_zero() {
            return Err(ConfigError::new("HOOKLINE_RECOVERY_POLL_MS", "must be greater than zero"));
        }
        if settings.operational_poll.is_zero() {
            return Err(ConfigError::new("HOOKLINE_OPERATIONAL_POLL_MS", "must be greater than zero"));
        }
        if settings.rate_tick.is_zero() || settings.rate_tick > Duration::from_secs(1) {
            return Err(ConfigError::new("HOOKLINE_RATE_TICK_MS", "must be between 1 and 1000"));
        }
        if settings.connect_timeout.is_zero() {
            return Err(ConfigError::new("HOOKLINE_CONNECT_TIMEOUT_MS", "must be greater than zero"));
        }
        Ok(settings)
    }

    /// Requests in flight for one account per worker.
    pub fn tenant_share(&self) -> usize {
        self.max_in_flight_per_tenant.unwrap_or(self.concurrency / 2).max(1)
    }

    /// Loads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }
}

/// The probe backoff; an invalid one names the variable at fault.
fn probe_backoff(vars: &Vars, d: ProbeBackoff) -> Result<ProbeBackoff, ConfigError> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let first = vars.millis("HOOKLINE_RECOVERY_PROBE_FIRST_MS", ms(d.first()))?;
    let max = vars.millis("HOOKLINE_RECOVERY_PROBE_MAX_MS", ms(d.max()))?;
    ProbeBackoff::try_new(first, max).map_err(|e| match e {
        InvalidProbeBackoff::ZeroFirst => ConfigError::new("HOOKLINE_RECOVERY_PROBE_FIRST_MS", e),
        InvalidProbeBackoff::MaxBelowFirst => ConfigError::new("HOOKLINE_RECOVERY_PROBE_MAX_MS", e),
    })
}

/// Retention and its pacing; a bad value names its variable.
fn retention(vars: &Vars, d: Retention) -> Result<Retention, ConfigError> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let retention = Retention {
        window: vars.duration("HOOKLINE_RETENTION", d.window)?,
        interval: vars.millis("HOOKLINE_RETENTION_INTERVAL_MS", ms(d.interval))?,
        batch: vars.positive("HOOKLINE_RETENTION_BATCH", d.batch)?,
        pause: vars.millis("HOOKLINE_RETENTION_PAUSE_MS", ms(d.pause))?,
        busy_percent: vars.positive("HOOKLINE_RETENTION_BUSY_PERCENT", d.busy_percent)?,
    };
    if retention.interval.is_zero() {
        return Err(ConfigError::new("HOOKLINE_RETENTION_INTERVAL_MS", "must be greater than zero"));
    }
    if retention.batch > 100_000 {
        return Err(ConfigError::new("HOOKLINE_RETENTION_BATCH", "must be at most 100000 (one short transaction)"));
    }
    if retention.busy_percent > 100 {
        return Err(ConfigError::new("HOOKLINE_RETENTION_BUSY_PERCENT", "must be between 1 and 100"));
    }
    Ok(retention)
}

fn telemetry_from_vars(vars: &Vars) -> Result<TelemetrySettings, ConfigError> {
    TelemetrySettings::from_lookup(|name| vars.get(name), "hookline-worker")
        .map_err(|e| ConfigError::new("HOOKLINE_LOG_FORMAT", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With no variables set, the worker targets the local services.
    #[test]
    fn defaults_point_at_local_services() {
        let s = Settings::from_vars(&Vars::default()).expect("defaults are valid");
        assert_eq!(s.listen_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(s.amqp.namespace, "hookline");
        assert_eq!(s.concurrency, 128);
        assert_eq!(s.retry_schedule.to_string(), "5s,1m,5m,30m,2h,5h,10h,10h");
        assert_eq!(s.suspend_after_failures, 50);
        assert_eq!(s.recovery_probe, ProbeBackoff::default());
        assert_eq!((s.recovery_poll, s.recover_rate_per_sec), (Duration::from_secs(5), 10));
        assert_eq!(s.retention.window, Duration::from_secs(30 * 86_400), "on by default, 30 days");
    }

    /// The retention window takes a unit or plain seconds; 0 keeps everything.
    #[test]
    fn retention_window() {
        let window = |value: &str| {
            let vars: Vars = [("HOOKLINE_RETENTION", value)].into_iter().collect();
            Settings::from_vars(&vars).map(|s| s.retention.window)
        };
        assert_eq!(window("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(window("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(window("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(window("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(window("0"), Ok(Duration::ZERO));
        let e = window("30 days").expect_err("not a duration");
        assert_eq!(e.var, "HOOKLINE_RETENTION");
        assert!(e.to_string().contains("e.g. `30d`"), "{e}");
    }

    /// Zero or nonsense values stop start-up, naming the variable.
    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("HOOKLINE_WORKER_CONCURRENCY", "0"),
            ("HOOKLINE_WORKER_CONCURRENCY", "70000"),
            ("HOOKLINE_REQUEST_TIMEOUT_MS", "0"),
            ("HOOKLINE_REQUEST_TIMEOUT_MS", "soon"),
            ("HOOKLINE_DATABASE_POOL_SIZE", "0"),
            ("HOOKLINE_RETRY_SCHEDULE", "5s,soon"),
            ("HOOKLINE_SUSPEND_AFTER_FAILURES", "0"),
            ("HOOKLINE_RECONCILE_INTERVAL_MS", "0"),
            ("HOOKLINE_RECOVERY_PROBE_FIRST_MS", "0"),
            ("HOOKLINE_RECOVERY_PROBE_MAX_MS", "1000"),
            ("HOOKLINE_RECOVERY_POLL_MS", "0"),
            ("HOOKLINE_RECOVER_RATE_PER_SEC", "0"),
            ("HOOKLINE_OPERATIONAL_POLL_MS", "0"),
            ("HOOKLINE_RATE_TICK_MS", "0"),
            ("HOOKLINE_RATE_TICK_MS", "1001"),
            ("HOOKLINE_OPERATIONAL_SETTLE_MS", "soon"),
            ("HOOKLINE_RETENTION", "a month"),
            ("HOOKLINE_RETENTION", "-1d"),
            ("HOOKLINE_RETENTION_INTERVAL_MS", "0"),
            ("HOOKLINE_RETENTION_BATCH", "0"),
            ("HOOKLINE_RETENTION_BATCH", "1000000"),
            ("HOOKLINE_RETENTION_PAUSE_MS", "soon"),
            ("HOOKLINE_RETENTION_BUSY_PERCENT", "0"),
            ("HOOKLINE_RETENTION_BUSY_PERCENT", "101"),
        ] {
            let vars: Vars = [(var, value)].into_iter().collect();
            assert_eq!(Settings::from_vars(&vars).expect_err(value).var, var, "{var}={value}");
        }
    }
}
