//! Staying connected: connecting at start-up while the broker is not up
//! yet, noticing that a connection was lost, reconnecting with backoff until
//! it works (or shutdown), and holding the current publisher, so services
//! reconnect by themselves after a broker outage.
//!
//! With several broker addresses (the nodes of a cluster), every attempt
//! tries each of them in turn. At start-up they are tried in the order given;
//! a reconnect starts at a random one, so the services of a node that died
//! spread over the others, and a dead first address does not cost every
//! reconnect its timeout.

use std::time::Duration;

use std::sync::{PoisonError, RwLock};

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use lapin::Connection;
use tokio_util::sync::CancellationToken;

use crate::{AmqpSettings, Publisher, Topology, connect, settings::connect_from};

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
/// cancelled. Each attempt tries every address, the first from a random one
/// and each further attempt from the next.
pub async fn connect_until(settings: &AmqpSettings, name: &str, stop: &CancellationToken) -> Option<Connection> {
    let mut delays = backoff();
    // Any randomness will do: it only spreads reconnecting services.
    let mut start = usize::try_from(uuid::Uuid::new_v4().as_u128() % 1024).unwrap_or_default();
    loop {
        let attempt = tokio::select! {
            () = stop.cancelled() => return None,
            attempt = connect_from(settings, name, start) => attempt,
        };
        start += 1;
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

/// Closes `connection` as a normal shutdown, saying why; a connection
/// already gone is not an error worth reporting.
pub async fn close(connection: &Connection, reason: &str) {
    let _ = connection.close(200, reason.into()).await;
}

/// Resolves once `connection` is no longer usable (closed, errored, lost).
pub async fn lost(connection: &Connection) {
    while connection.status().connected() {
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// Connects at start-up: a transient failure (the broker is starting
/// alongside the service) is retried with backoff, up to ten times over
/// about half a minute; a permanent one (bad credentials) fails at once.
pub async fn connect_at_start(settings: &AmqpSettings, name: &str) -> crate::Result<Connection> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(10)
        .with_jitter();
    (|| connect(settings, name))
        .retry(backoff)
        .when(crate::Error::is_transient)
        .notify(|e, d| tracing::warn!(error.message = %e, retry_in = ?d, "broker not ready"))
        .await
}

/// A publisher on `connection` with the topology declared (idempotent), as
/// every service needs one after connecting.
pub async fn open_publisher(connection: &Connection, topology: &Topology) -> crate::Result<Publisher> {
    let publisher = Publisher::open(connection, topology.clone()).await?;
    publisher.declare_topology().await?;
    Ok(publisher)
}

/// Connects again after a lost connection and opens a publisher on it,
/// retrying both until they work; `None` once `stop` is cancelled.
pub async fn reconnect(
    settings: &AmqpSettings,
    name: &str,
    topology: &Topology,
    stop: &CancellationToken,
) -> Option<(Connection, Publisher)> {
    loop {
        let connection = connect_until(settings, name, stop).await?;
        match open_publisher(&connection, topology).await {
            Ok(publisher) => {
                tracing::info!("broker connection re-established");
                return Some((connection, publisher));
            }
            Err(e) => {
                tracing::warn!(error.message = %e, "reconnected but could not open a publisher; retrying");
                let _ = connection.close(200, "retrying".into()).await;
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// The publisher a service currently has: replaced after each reconnect,
/// read by every request that publishes.
#[derive(Debug, Default)]
pub struct Current(RwLock<Option<Publisher>>);

impl Current {
    /// Holds `publisher` from now on (`None`: the connection is lost).
    pub fn set(&self, publisher: Option<Publisher>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = publisher;
    }

    /// The publisher, if there is one and its connection is up.
    pub fn get(&self) -> Option<Publisher> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone().filter(Publisher::is_connected)
    }

    /// The publisher last held, connected or not (a publish on a lost one
    /// fails, and the caller's fallback applies); `None` before the first.
    pub fn last(&self) -> Option<Publisher> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
