//! Postgres stopped for 30 s under load: workers wait for it, and every
//! accepted event is delivered.

use std::time::Duration;

use hookline_e2e::{Receiver, TestApp, eventually, webhook};
use serde_json::json;

use super::worker_metric;

/// Postgres stopped for 30 s under load, with quorum work queues: workers
/// wait for it instead of handing messages back (no redelivery at all),
/// nothing is parked, and every accepted event is delivered.
#[tokio::test]
async fn database_outage_is_waited_out() {
    let pg = hookline_testkit::PrivatePostgres::start().await;
    let url = pg.url("hookline");
    let app = TestApp::spawn_with(|producer, worker| {
        producer.pg.url = url.clone();
        worker.pg.url = url.clone();
        producer.amqp.queue_type = hookline_broker::QueueType::Quorum;
        worker.amqp.queue_type = hookline_broker::QueueType::Quorum;
    })
    .await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("steady", &receiver.url(), &["*"])).await;
    let mut accepted = std::collections::BTreeSet::new();
    let send = async |i: usize| {
        let r = app.post("/v1/events", &json!({"event": "license.created", "data": {}, "id": format!("e{i}")})).await;
        assert_eq!(r.status, 202, "ingestion needs no database: {:?}", r.body);
        format!("e{i}")
    };
    for i in 0..40 {
        accepted.insert(send(i).await);
    }
    pg.stop().await;
    let outage = std::time::Instant::now();
    let mut i = 40;
    while outage.elapsed() < Duration::from_secs(30) {
        accepted.insert(send(i).await);
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pg.start_again().await;
    for j in 0..40 {
        accepted.insert(send(i + j).await);
    }
    let n = accepted.len();
    eventually(Duration::from_secs(90), || async {
        let delivered: std::collections::BTreeSet<String> = app
            .deliveries_all(&id)
            .await
            .into_iter()
            .filter(|d| d["state"] == "delivered")
            .map(|d| d["eventId"].as_str().unwrap_or_default().to_owned())
            .collect();
        let missing = accepted.difference(&delivered).count();
        if missing == 0 { Ok(()) } else { Err(format!("{missing} of {n} accepted events not delivered")) }
    })
    .await;
    let ids: std::collections::BTreeSet<String> =
        receiver.requests().iter().filter_map(|r| r.header("webhook-id").map(str::to_owned)).collect();
    assert_eq!(ids.len(), n, "one Webhook-Id per event");
    let connection = app.broker.connect().await;
    let channel = connection.create_channel().await.expect("channel");
    let parked = channel
        .basic_get(
            format!("{}.parked", app.broker.namespace()).into(),
            hookline_broker::lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .expect("get");
    assert!(parked.is_none(), "nothing parked");
    assert_eq!(worker_metric(&app, "hookline_redeliveries_total").await, 0.0, "no message went round again");
    assert!(worker_metric(&app, "hookline_store_waits_total").await > 0.0, "the worker waited for the database");
    let _ = connection.close(200, "done".into()).await;
    app.stop().await;
}
