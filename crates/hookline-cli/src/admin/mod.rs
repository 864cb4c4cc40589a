//! `hookline webhooks|events|deliveries|logs`: the API from a terminal.
//!
//! Talks to a producer over HTTP (`--api`, `HOOKLINE_URL`) with a key or
//! tenant token (`--key`, `HOOKLINE_API_KEY`: read from the environment so
//! it stays out of shell history and process lists). Output is a table, or
//! the API's JSON with `--json` for scripts. An API error prints its
//! problem `code` and `detail` and exits 1.
//!
//! # Layout
//! - this module: the arguments ([`Connection`] and one subcommand enum per
//!   resource);
//! - `api`: the HTTP client, problem answers, query strings and bodies;
//! - `output`: tables, columns and `--json`;
//! - `commands`: `webhooks`, `events` and `deliveries`;
//! - `tail`: `logs tail`, following a webhook's attempts.

mod api;
mod commands;
mod output;
mod tail;

use clap::{Args, Subcommand};

pub(crate) use self::{
    commands::{deliveries, events, webhooks},
    tail::logs,
};

/// Where the API is and who is calling.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// The producer's base URL.
    #[arg(long = "api", env = "HOOKLINE_URL", default_value = "http://127.0.0.1:8080", global = true)]
    api: String,
    /// An API key or tenant token.
    #[arg(long, env = "HOOKLINE_API_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// `hookline webhooks …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Webhooks {
    /// Lists webhooks (every page).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Shows one webhook.
    Get { id: String },
    /// Creates a webhook; without --token one is generated and shown once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        /// Comma-separated event types or patterns (`license.*`, `*`).
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        #[arg(long, env = "HOOKLINE_WEBHOOK_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// `hookline` (default) or `standard-webhooks`.
        #[arg(long)]
        scheme: Option<String>,
        /// Create it inactive.
        #[arg(long)]
        inactive: bool,
    },
    /// Changes fields of a webhook.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long, env = "HOOKLINE_WEBHOOK_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        active: Option<bool>,
        #[arg(long)]
        scheme: Option<String>,
    },
    /// Deletes a webhook and its event log.
    Delete { id: String },
    /// Makes a suspended webhook healthy again.
    Resume { id: String },
    /// Replays failed and suspended deliveries created in a window.
    Recover {
        id: String,
        /// RFC 3339 start of the window.
        #[arg(long)]
        since: String,
        #[arg(long)]
        until: Option<String>,
        /// Only count them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Replaces the token; the old one keeps signing for the grace period.
    RotateToken {
        id: String,
        #[arg(long, env = "HOOKLINE_WEBHOOK_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        grace_seconds: Option<i64>,
    },
}

/// `hookline events …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Events {
    /// Sends an event.
    Send {
        /// Its type, e.g. `license.created`.
        #[arg(long)]
        event: String,
        /// Its data, a JSON object or array.
        #[arg(long, default_value = "{}")]
        data: String,
        /// A client-chosen id (makes the call idempotent).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `hookline deliveries …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Deliveries {
    /// Lists deliveries, newest first.
    List {
        #[arg(long)]
        webhook: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        event: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Shows a delivery and every attempt.
    Show { id: String },
    /// Attempts a delivery now.
    Retry { id: String },
}

/// `hookline logs …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Logs {
    /// Follows a webhook's attempts as they happen (Ctrl-C stops).
    Tail {
        #[arg(long)]
        webhook: String,
        /// How often to look, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Stop after printing this many attempts (for scripts).
        #[arg(long)]
        exit_after: Option<usize>,
    },
}
