//! `hookline`: the command line.
//!
//! - `hookline run`: producer and worker in one process, for local use.
//! - `hookline verify --token T --signature S < body`: checks a
//!   `Webhook-Signature` the way a receiver would (exit status 0 or 1).
//! - `hookline receive --port P [--token T]`: a throwaway receiver that
//!   prints every delivery (and checks its signature), for trying Hookline out.
//! - `hookline webhooks|events|deliveries|logs …`: the API from a terminal
//!   (`admin`), as a table or `--json`.

mod admin;

use std::{io::Read, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "hookline", version, about = "Hookline: self-hosted webhook delivery")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the producer (HTTP API) and a worker in one process. Settings are
    /// the same `HOOKLINE_*` variables the two binaries read.
    Run,
    /// Verifies a webhook signature over the body read from standard input.
    /// Exits 0 when it matches, 1 when it does not.
    Verify {
        /// The webhook's signing token.
        #[arg(long, env = "HOOKLINE_VERIFY_TOKEN", hide_env_values = true)]
        token: String,
        /// The `Webhook-Signature` header value as received.
        #[arg(long)]
        signature: String,
    },
    /// Listens on 127.0.0.1:PORT, answers every POST with 200 and prints it;
    /// with --token, also says whether its signature is valid.
    Receive {
        /// The port to listen on.
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// The webhook's signing token, to check signatures.
        #[arg(long, env = "HOOKLINE_VERIFY_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Lists, creates, changes and deletes webhooks; resume, recover, rotate.
    Webhooks {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(subcommand)]
        command: admin::Webhooks,
    },
    /// Sends events.
    Events {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(subcommand)]
        command: admin::Events,
    },
    /// Reads the event log and retries deliveries.
    Deliveries {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(subcommand)]
        command: admin::Deliveries,
    },
    /// Follows a webhook's attempts live.
    Logs {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(subcommand)]
        command: admin::Logs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify { token, signature } => verify(&token, &signature),
        Command::Run => report(run()),
        Command::Receive { port, token } => report(receive(port, token)),
        Command::Webhooks { connection, command } => report(admin::webhooks(connection, command)),
        Command::Events { connection, command } => report(admin::events(connection, command)),
        Command::Deliveries { connection, command } => report(admin::deliveries(connection, command)),
        Command::Logs { connection, command } => report(admin::logs(connection, command)),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn verify(token: &str, signature: &str) -> ExitCode {
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("hookline: cannot read the body from standard input: {e}");
        return ExitCode::from(2);
    }
    if hookline_core::verify(token, &body, signature) {
        println!("valid");
        ExitCode::SUCCESS
    } else {
        println!("invalid");
        ExitCode::FAILURE
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let vars: hookline_core::config::Vars = std::env::vars().collect();
    let producer_settings = hookline_producer::Settings::from_vars(&vars).context("invalid configuration")?;
    let worker_settings = hookline_worker::Settings::from_vars(&vars).context("invalid configuration")?;
    // One process, one service name: `hookline` unless OTEL_SERVICE_NAME says.
    let telemetry = hookline_telemetry::TelemetrySettings::from_lookup(|name| vars.get(name), "hookline")
        .context("invalid configuration")?;
    let _telemetry = hookline_telemetry::init(&telemetry).context("starting telemetry")?;
    let shutdown = CancellationToken::new();
    tokio::spawn(hookline_telemetry::cancel_on_signal(shutdown.clone()));
    let producer = hookline_producer::run(&producer_settings, shutdown.clone());
    let worker = hookline_worker::run(&worker_settings, shutdown.clone());
    // Whichever stops first (a failure, or the signal) stops the other.
    let (p, w) = tokio::join!(
        async {
            let r = producer.await;
            shutdown.cancel();
            r
        },
        async {
            let r = worker.await;
            shutdown.cancel();
            r
        }
    );
    p.context("producer failed")?;
    w.context("worker failed")
}

#[tokio::main]
async fn receive(port: u16, token: Option<String>) -> anyhow::Result<()> {
    use axum::{body::Bytes, http::HeaderMap};
    let handler = move |headers: HeaderMap, body: Bytes| {
        let token = token.clone();
        async move {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
            let signature = header("webhook-signature");
            let verdict = match &token {
                Some(token) if hookline_core::verify(token, &body, &signature) => "signature valid",
                Some(_) => "SIGNATURE INVALID",
                None => "signature not checked (no --token)",
            };
            println!(
                "Webhook-Id: {}  Webhook-Timestamp: {}  {verdict}\n{}\n",
                header("webhook-id"),
                header("webhook-timestamp"),
                String::from_utf8_lossy(&body)
            );
            "ok"
        }
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.context("binding the port")?;
    println!("receiving on http://127.0.0.1:{port}/ (Ctrl-C stops)");
    let shutdown = CancellationToken::new();
    tokio::spawn(hookline_telemetry::cancel_on_signal(shutdown.clone()));
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(())
}
