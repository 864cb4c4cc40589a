//! `hookline-worker`: consumes, fans out, delivers. Configuration is
//! environment variables (see the README); everything defaults to the local
//! Postgres and RabbitMQ. Run as many as you like side by side.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = hookline_worker::Settings::from_env().context("invalid configuration")?;
    let _telemetry = hookline_telemetry::init(&settings.telemetry).context("starting telemetry")?;
    let shutdown = CancellationToken::new();
    tokio::spawn(hookline_telemetry::cancel_on_signal(shutdown.clone()));
    hookline_worker::run(&settings, shutdown).await.context("worker failed")
}
