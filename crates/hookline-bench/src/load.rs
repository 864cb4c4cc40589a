//! The load generator: event bodies, and sending them over HTTP or straight
//! to the events exchange at a scenario's pace, noting when each was sent.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use futures_util::StreamExt;

use crate::{
    receiver::unix_nanos,
    scenario::{Pace, Scenario, Source},
    stack::{KEY, Stack},
};

/// Sends one event over HTTP; returns how long the API took.
async fn send_http(http: &reqwest::Client, api: std::net::SocketAddr, body: String) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = http
        .post(format!("http://{api}/v1/events"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(response.status() == 202, "ingest answered {}", response.status());
    Ok(started.elapsed())
}

/// One event to send.
pub(crate) struct EventSpec {
    pub(crate) event_type: String,
    /// Its index, sent in `data.i`.
    pub(crate) index: u64,
    pub(crate) tenant: Option<&'static str>,
}

/// One event's body, its index in `data.i`, `pad` bytes in `data.pad`.
fn event_body(event: &EventSpec, pad: usize) -> String {
    let EventSpec { event_type, index: i, tenant } = event;
    let pad = if pad > 0 { format!(r#","pad":"{}""#, "x".repeat(pad)) } else { String::new() };
    let tenant = tenant.map(|t| format!(r#","tenant":"{t}""#)).unwrap_or_default();
    format!(r#"{{"event":"{event_type}","id":"e{i}","data":{{"i":{i}{pad}}}{tenant}}}"#)
}

/// What the load generator did.
pub(crate) struct Sent {
    /// When each event was sent (Unix nanoseconds, comparable with the
    /// receiver's arrival times), by position; `None`: not sent.
    pub(crate) at: Vec<Option<u64>>,
    /// How long each ingest took (the API's answer, or the broker's
    /// confirm).
    pub(crate) ingest: Vec<Duration>,
}

/// Drives the load: every event `event_at(k)` for `k` in `0..n`.
pub(crate) async fn drive(
    stack: &Stack,
    scenario: &Scenario,
    n: usize,
    event_at: impl Fn(usize) -> EventSpec,
) -> anyhow::Result<(Sent, Duration)> {
    let sent = Arc::new(Mutex::new(Sent { at: vec![None; n], ingest: Vec::with_capacity(n) }));
    let started = Instant::now();
    match scenario.source {
        Source::Http => {
            let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
            let concurrency = match scenario.pace {
                Pace::FullSpeed { concurrency } => concurrency,
                Pace::Rate { .. } => 256,
            };
            let interval = match scenario.pace {
                Pace::Rate { per_sec } => Some(Duration::from_secs_f64(1.0 / f64::from(per_sec.max(1)))),
                Pace::FullSpeed { .. } => None,
            };
            let mut requests = futures_util::stream::iter(0..n)
                .map(|i| {
                    let http = http.clone();
                    let body = event_body(&event_at(i), scenario.payload_bytes);
                    let sent = sent.clone();
                    let api = stack.api;
                    async move {
                        if let Some(interval) = interval {
                            let due = started + interval * u32::try_from(i).unwrap_or(u32::MAX);
                            tokio::time::sleep_until(due.into()).await;
                        }
                        let at = unix_nanos();
                        let took = send_http(&http, api, body).await?;
                        let mut sent = sent.lock().unwrap_or_else(PoisonError::into_inner);
                        sent.at[i] = Some(at);
                        sent.ingest.push(took);
                        Ok::<_, anyhow::Error>(())
                    }
                })
                .buffer_unordered(concurrency);
            while let Some(result) = requests.next().await {
                result?;
            }
        }
        Source::Direct => {
            use hookline_broker::lapin::{
                BasicProperties, Connection, ConnectionProperties,
                options::{BasicPublishOptions, ConfirmSelectOptions},
            };
            let connection =
                Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            let exchange = format!("{}.events", stack.namespace);
            let mut pending = futures_util::stream::FuturesUnordered::new();
            for i in 0..n {
                if pending.len() >= 256 {
                    let (i, at, started, confirm): (usize, u64, Instant, _) = pending.next().await.expect("not empty");
                    let confirm: hookline_broker::lapin::Confirmation = confirm?;
                    anyhow::ensure!(confirm.is_ack(), "publish not confirmed");
                    let mut sent = sent.lock().unwrap_or_else(PoisonError::into_inner);
                    sent.ingest.push(started.elapsed());
                    sent.at[i] = Some(at);
                }
                let (at, started) = (unix_nanos(), Instant::now());
                let event = event_at(i);
                let confirm = channel
                    .basic_publish(
                        exchange.as_str().into(),
                        event.event_type.as_str().into(),
                        BasicPublishOptions { mandatory: true, ..Default::default() },
                        event_body(&event, scenario.payload_bytes).as_bytes(),
                        BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into()),
                    )
                    .await?;
                pending.push(async move { (i, at, started, confirm.await) });
            }
            while let Some((i, at, started, confirm)) = pending.next().await {
                anyhow::ensure!(confirm?.is_ack(), "publish not confirmed");
                let mut sent = sent.lock().unwrap_or_else(PoisonError::into_inner);
                sent.ingest.push(started.elapsed());
                sent.at[i] = Some(at);
            }
            let _ = connection.close(200, "done".into()).await;
        }
    }
    let took = started.elapsed();
    let sent = Arc::try_unwrap(sent).map_err(|_| anyhow::anyhow!("load tasks still running"))?;
    Ok((sent.into_inner().unwrap_or_else(PoisonError::into_inner), took))
}
