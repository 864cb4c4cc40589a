//! `hookline webhooks|events|deliveries`: one API call (or a paged
//! listing) per command, printed as a table or as JSON.

use anyhow::Context;
use serde_json::{Value, json};

use super::{
    Connection, Deliveries, Events, Webhooks,
    api::{Api, patch_body, query},
    output::{ATTEMPT_COLUMNS, DELIVERY_COLUMNS, WEBHOOK_COLUMNS, show, table, text},
};

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
