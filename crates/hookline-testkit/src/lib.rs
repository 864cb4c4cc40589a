//! Test helpers that talk to the real Postgres and RabbitMQ, never mocks.
//!
//! This crate deliberately depends on no other Hookline crate: the store and
//! broker crates use it as a dev-dependency, and a dependency cycle through a
//! dev-dependency would link two copies of the crate under test.
//!
//! # Layout
//! - [`TestDb`]: a fresh, uniquely named database per test, dropped afterwards.
//! - [`TestBroker`]: a unique broker namespace per test.
//! - [`PrivateBroker`]: a RabbitMQ node of one test's own, to stop and restart.
//! - [`Cluster`]: a RabbitMQ cluster of one test's own, to lose a node of.
//! - [`PrivatePostgres`]: a PostgreSQL cluster of one test's own, to restart.
//! - [`Receiver`]: an in-process HTTP endpoint that records every request.
//! - [`smoke`]: start a service binary, probe `/healthz`, stop it with SIGTERM.
//! - [`eventually`]: polls a check until it passes or a deadline expires.

mod broker;
mod cluster;
mod db;
mod private_broker;
mod private_postgres;
mod rabbit_node;
mod receiver;
pub mod smoke;

pub use broker::TestBroker;
pub use cluster::Cluster;
pub use db::TestDb;
pub use private_broker::PrivateBroker;
pub use private_postgres::PrivatePostgres;
pub use receiver::{Received, Receiver, Reply};

use std::{future::Future, time::Duration};

/// Polls `check` until it returns `Ok`, or panics with its *last* error once
/// `timeout` has passed.
pub async fn eventually<T, E, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                panic!("condition not met within {timeout:?}; last error: {e}")
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// A short random suffix for names that must be unique per test.
pub fn unique_suffix() -> String {
    let simple = uuid::Uuid::new_v4().simple().to_string();
    simple[..12].to_owned()
}
