//! Tests of the `hookline-worker` binary: start and stop, crashes, and a
//! soak under random faults.
//!
//! # Layout
//! - `process`: starting worker processes and keeping their logs.
//! - `crash`: a worker killed or stopped during a load.
//! - `soak`: every accepted event delivered under random faults.

mod crash;
mod process;
mod soak;

/// The binary starts on a fresh database and namespace, serves `/healthz`,
/// and exits 0 on SIGTERM.
#[tokio::test]
async fn binary_starts_serves_health_and_exits_on_sigterm() {
    hookline_testkit::smoke::start_health_stop(
        env!("CARGO_BIN_EXE_hookline-worker"),
        &[],
        &["HOOKLINE_WORKER_LISTEN_ADDR"],
        std::time::Duration::from_secs(30),
    )
    .await;
}
