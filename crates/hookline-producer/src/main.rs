//! `hookline-producer`: the HTTP API. Configuration is environment variables
//! (see the README); everything defaults to the local Postgres and RabbitMQ.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = hookline_producer::Settings::from_env().context("invalid configuration")?;
    let _telemetry = hookline_telemetry::init(&settings.telemetry).context("starting telemetry")?;
    let shutdown = CancellationToken::new();
    tokio::spawn(hookline_telemetry::cancel_on_signal(shutdown.clone()));
    hookline_producer::run(&settings, shutdown).await.context("producer failed")
}
