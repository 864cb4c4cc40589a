//! Staying connected: connecting with backoff until it works (or shutdown),
//! and noticing that a connection was lost, so services reconnect by
//! themselves after a broker outage.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::Connection;
use tokio_util::sync::CancellationToken;

use crate::{AmqpSettings, connect};

/// How often a connection's state is checked.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Delays between connection attempts: exponential from 100 ms to 5 s, with
/// jitter so that many workers do not reconnect in lockstep; never gives up.
fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Connects, retrying with backoff until it succeeds; `None` once `stop` is
/// cancelled.
pub async fn connect_until(settings: &AmqpSettings, name: &str, stop: &CancellationToken) -> Option<Connection> {
    let mut delays = backoff();
    loop {
        let attempt = tokio::select! {
            () = stop.cancelled() => return None,
            attempt = connect(settings, name) => attempt,
        };
        match attempt {
            Ok(connection) => return Some(connection),
            Err(e) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error.message = %e, retry_in = ?delay, "broker unreachable");
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Resolves once `connection` is no longer usable (closed, errored, lost).
pub async fn lost(connection: &Connection) {
    while connection.status().connected() {
        tokio::time::sleep(CHECK_EVERY).await;
    }
}
