//! `hookline`: the command line.
//!
//! - `hookline run`: producer and worker in one process, for local use.
//! - `hookline verify --token T --signature S < body`: checks a
//!   `Webhook-Signature` the way a receiver would (exit status 0 or 1).

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify { token, signature } => verify(&token, &signature),
        Command::Run => match run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hookline: {e:#}");
                ExitCode::FAILURE
            }
        },
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
    let _telemetry = hookline_telemetry::init(&producer_settings.telemetry).context("starting telemetry")?;
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
