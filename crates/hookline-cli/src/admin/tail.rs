//! `hookline logs tail`: follows a webhook's attempts by polling its
//! recent deliveries, printing each new attempt once.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};

use super::{Connection, Logs, api::Api, output::text};

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
