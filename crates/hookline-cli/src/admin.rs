//! `hookline webhooks|events|deliveries|logs`: the API from a terminal.
//!
//! Talks to a producer over HTTP (`--api`, `HOOKLINE_URL`) with a key or
//! tenant token (`--key`, `HOOKLINE_API_KEY`: read from the environment so
//! it stays out of shell history and process lists). Output is a table, or
//! the API's JSON with `--json` for scripts. An API error prints its
//! problem `code` and `detail` and exits 1.

use std::{collections::HashMap, time::Duration};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

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

struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

/// The API answered with an error.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {code}: {detail}")]
struct Problem {
    status: u16,
    code: String,
    detail: String,
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .map(|v| format!("{k}={}", url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
        })
        .collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

impl Api {
    fn new(connection: &Connection) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { http, base: connection.api.trim_end_matches('/').to_owned(), key: connection.key.clone() })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let value: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if status.is_success() {
            return Ok(value);
        }
        Err(Problem {
            status: status.as_u16(),
            code: value["code"].as_str().unwrap_or("error").to_owned(),
            detail: value["detail"]
                .as_str()
                .map_or_else(|| String::from_utf8_lossy(&bytes).into_owned(), str::to_owned),
        }
        .into())
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Every item of a paged listing.
    async fn all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut next = format!("{path}{sep}limit=100");
        loop {
            let page = self.get(&next).await?;
            items.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["nextCursor"].as_str() {
                Some(cursor) => next = format!("{path}{sep}limit=100&cursor={cursor}"),
                None => return Ok(items),
            }
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Object(o) if o.contains_key("kind") => text(&o["kind"]),
        other => other.to_string(),
    }
}

/// A plain table: one row per item, the given fields as columns.
fn table(items: &[Value], columns: &[(&str, &str)]) -> String {
    let rows: Vec<Vec<String>> =
        items.iter().map(|item| columns.iter().map(|(_, field)| text(&item[*field])).collect()).collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (title, _))| rows.iter().map(|r| r[i].chars().count()).chain([title.len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(columns.iter().map(|(t, _)| (*t).to_owned()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

const WEBHOOK_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("TENANT", "tenant"),
    ("NAME", "name"),
    ("URL", "url"),
    ("EVENTS", "events"),
    ("ACTIVE", "active"),
    ("STATUS", "status"),
    ("FAILURES", "consecutiveFailures"),
];

const DELIVERY_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("EVENT", "eventType"),
    ("EVENT ID", "eventId"),
    ("STATE", "state"),
    ("ATTEMPTS", "attemptCount"),
    ("CREATED", "createdAt"),
    ("NEXT ATTEMPT", "nextAttemptAt"),
];

const ATTEMPT_COLUMNS: &[(&str, &str)] = &[
    ("#", "attemptNo"),
    ("TRIGGER", "trigger"),
    ("SENT", "sentAt"),
    ("STATUS", "statusCode"),
    ("ERROR", "error"),
    ("MS", "durationMs"),
    ("RETRY REASON", "retryReason"),
    ("NEXT", "nextAttemptAt"),
    ("TRACE", "traceId"),
];

fn show(connection: &Connection, value: &Value, columns: &[(&str, &str)]) {
    if connection.json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else if let Some(items) = value.as_array() {
        println!("{}", table(items, columns));
    } else {
        println!("{}", table(std::slice::from_ref(value), columns));
        if let Some(token) = value["token"].as_str().filter(|t| !t.starts_with("****")) {
            println!("\ntoken (shown once, keep it): {token}");
        }
    }
}

fn patch_body(fields: &[(&str, Option<Value>)]) -> Value {
    Value::Object(fields.iter().filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), v))).collect())
}

/// Runs `hookline webhooks …`.
#[tokio::main]
pub(crate) async fn webhooks(connection: Connection, command: Webhooks) -> anyhow::Result<()> {
    let api = Api::new(&connection)?;
    match command {
        Webhooks::List { tenant } => {
            let items = api.all(&format!("/v1/webhooks{}", query(&[("tenant", tenant)]))).await?;
            show(&connection, &Value::Array(items), WEBHOOK_COLUMNS);
        }
        Webhooks::Get { id } => show(&connection, &api.get(&format!("/v1/webhooks/{id}")).await?, WEBHOOK_COLUMNS),
        Webhooks::Create { name, url, events, token, tenant, scheme, inactive } => {
            let body = patch_body(&[
                ("name", Some(json!(name))),
                ("url", Some(json!(url))),
                ("events", Some(json!(events))),
                ("token", token.map(Value::from)),
                ("tenant", tenant.map(Value::from)),
                ("signatureScheme", scheme.map(Value::from)),
                ("active", Some(json!(!inactive))),
            ]);
            show(&connection, &api.post("/v1/webhooks", body).await?, WEBHOOK_COLUMNS);
        }
        Webhooks::Update { id, name, url, events, token, active, scheme } => {
            let body = patch_body(&[
                ("name", name.map(Value::from)),
                ("url", url.map(Value::from)),
                ("events", events.map(|e| json!(e))),
                ("token", token.map(Value::from)),
                ("active", active.map(Value::from)),
                ("signatureScheme", scheme.map(Value::from)),
            ]);
            let updated = api.call(reqwest::Method::PATCH, &format!("/v1/webhooks/{id}"), Some(body)).await?;
            show(&connection, &updated, WEBHOOK_COLUMNS);
        }
        Webhooks::Delete { id } => {
            api.call(reqwest::Method::DELETE, &format!("/v1/webhooks/{id}"), None).await?;
            if !connection.json {
                println!("deleted {id}");
            }
        }
        Webhooks::Resume { id } => {
            show(&connection, &api.post(&format!("/v1/webhooks/{id}/resume"), json!({})).await?, WEBHOOK_COLUMNS);
        }
        Webhooks::Recover { id, since, until, dry_run } => {
            let body = patch_body(&[
                ("since", Some(json!(since))),
                ("until", until.map(Value::from)),
                ("dryRun", Some(json!(dry_run))),
            ]);
            let answer = api.post(&format!("/v1/webhooks/{id}/recover"), body).await?;
            show(
                &connection,
                &answer,
                &[("FOUND", "count"), ("QUEUED", "queued"), ("DRY RUN", "dryRun"), ("FINISHES", "finishesAt")],
            );
        }
        Webhooks::RotateToken { id, token, grace_seconds } => {
            let body =
                patch_body(&[("token", token.map(Value::from)), ("graceSeconds", grace_seconds.map(Value::from))]);
            let answer = api.post(&format!("/v1/webhooks/{id}/rotate-token"), body).await?;
            show(&connection, &answer, WEBHOOK_COLUMNS);
        }
    }
    Ok(())
}

/// Runs `hookline events …`.
#[tokio::main]
pub(crate) async fn events(connection: Connection, command: Events) -> anyhow::Result<()> {
    let api = Api::new(&connection)?;
    let Events::Send { event, data, id, tenant } = command;
    let data: Value = serde_json::from_str(&data).context("--data must be JSON")?;
    let body = patch_body(&[
        ("event", Some(json!(event))),
        ("data", Some(data)),
        ("id", id.map(Value::from)),
        ("tenant", tenant.map(Value::from)),
    ]);
    let accepted = api.post("/v1/events", body).await?;
    if connection.json {
        println!("{accepted}");
    } else {
        println!("accepted {}", text(&accepted["id"]));
    }
    Ok(())
}

/// Runs `hookline deliveries …`.
#[tokio::main]
pub(crate) async fn deliveries(connection: Connection, command: Deliveries) -> anyhow::Result<()> {
    let api = Api::new(&connection)?;
    match command {
        Deliveries::List { webhook, state, event, tenant, limit } => {
            let q = query(&[
                ("webhookId", webhook),
                ("state", state),
                ("event", event),
                ("tenant", tenant),
                ("limit", Some(limit.clamp(1, 100).to_string())),
            ]);
            let page = api.get(&format!("/v1/deliveries{q}")).await?;
            let items = page["data"].clone();
            show(&connection, if connection.json { &page } else { &items }, DELIVERY_COLUMNS);
        }
        Deliveries::Show { id } => {
            let delivery = api.get(&format!("/v1/deliveries/{id}")).await?;
            if connection.json {
                println!("{}", serde_json::to_string_pretty(&delivery).unwrap_or_default());
            } else {
                println!("{}", table(std::slice::from_ref(&delivery), DELIVERY_COLUMNS));
                println!("\npayload: {}\n", delivery["payload"]);
                println!("{}", table(delivery["attempts"].as_array().map_or(&[][..], Vec::as_slice), ATTEMPT_COLUMNS));
            }
        }
        Deliveries::Retry { id } => {
            let queued = api.post(&format!("/v1/deliveries/{id}/retry"), json!({})).await?;
            if connection.json {
                println!("{queued}");
            } else {
                println!("retry of {id} queued");
            }
        }
    }
    Ok(())
}

/// Runs `hookline logs tail`: prints every new attempt of the webhook's
/// recent deliveries, one line each, as they are recorded.
#[tokio::main]
pub(crate) async fn logs(connection: Connection, command: Logs) -> anyhow::Result<()> {
    let api = Api::new(&connection)?;
    let Logs::Tail { webhook, interval_ms, exit_after } = command;
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(hookline_telemetry::cancel_on_signal(shutdown.clone()));
    // Attempts already printed, per delivery.
    let mut printed: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    let mut first = true;
    if !connection.json {
        println!("following webhook {webhook} (Ctrl-C stops)");
    }
    while !shutdown.is_cancelled() {
        let page = api.get(&format!("/v1/webhooks/{webhook}/deliveries?limit=50")).await?;
        let mut changed: Vec<&Value> = page["data"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter(|d| {
                        printed.get(&text(&d["id"])).copied().unwrap_or(0)
                            < d["attemptCount"].as_u64().unwrap_or(0) as usize
                    })
                    .collect()
            })
            .unwrap_or_default();
        changed.reverse(); // oldest first
        for delivery in changed {
            let id = text(&delivery["id"]);
            let detail = api.get(&format!("/v1/deliveries/{id}")).await?;
            let attempts = detail["attempts"].as_array().cloned().unwrap_or_default();
            let seen = printed.entry(id.clone()).or_insert(0);
            // On the first look, show only each delivery's latest attempt.
            let from = if first { attempts.len().saturating_sub(1) } else { *seen };
            for attempt in attempts.iter().skip(from) {
                if connection.json {
                    println!(
                        "{}",
                        json!({"deliveryId": id, "eventType": detail["eventType"], "state": detail["state"], "attempt": attempt})
                    );
                } else {
                    println!(
                        "{}  {}  {}  #{} {}  {} ms  {}",
                        text(&attempt["sentAt"]),
                        id,
                        text(&detail["eventType"]),
                        text(&attempt["attemptNo"]),
                        if attempt["statusCode"].is_null() {
                            text(&attempt["error"])
                        } else {
                            text(&attempt["statusCode"])
                        },
                        text(&attempt["durationMs"]),
                        if attempt["retryReason"].is_null() {
                            text(&detail["state"])
                        } else {
                            text(&attempt["retryReason"])
                        },
                    );
                }
                total += 1;
                if exit_after.is_some_and(|n| total >= n) {
                    return Ok(());
                }
            }
            *seen = attempts.len();
        }
        first = false;
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(Duration::from_millis(interval_ms.max(100))) => {}
        }
    }
    Ok(())
}
