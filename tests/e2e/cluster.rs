//! Beyond one machine: a three-node RabbitMQ cluster loses nothing when the
//! node leading the work queues dies under load.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use hookline_broker::{
    QueueType, Topology,
    lapin::{Connection, ConnectionProperties, options::QueueDeclareOptions, types::FieldTable},
};
use hookline_core::RetrySchedule;
use hookline_e2e::{ADMIN_KEY, Receiver, TestApp, eventually, webhook};
use hookline_testkit::Cluster;
use serde_json::{Value, json};

/// Events sent, at [`RATE`] per second; the leader stops after half.
const EVENTS: usize = 2_000;
/// Events per second.
const RATE: u64 = 200;
/// Webhooks on the receiver, each subscribed to its own event type: a
/// webhook whose first attempts all fail is unhealthy most of the time and
/// gets one request at a time, so one alone would take minutes for 2,000.
const WEBHOOKS: usize = 8;

/// A producer and two workers on a cluster of three nodes, with quorum
/// queues (delay tiers included), each service given all three addresses.
/// 2,000 events go in at 200/s (one delivery each, spread over
/// [`WEBHOOKS`] webhooks) to a receiver that fails every first attempt, so
/// each delivery also passes a delay tier; halfway, the node
/// leading the work queues is stopped. A request the API does not accept
/// (503 while the producer reconnects) is sent again with the same event id,
/// as a client would. Every event is accepted and delivered, each with one
/// `Webhook-Id`, and nothing is parked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_loses_nothing_when_the_leader_dies() {
    let test_started = Instant::now();
    let cluster = Arc::new(Cluster::start(3).await);
    eprintln!("cluster: 3 nodes up and joined in {:.1?}", test_started.elapsed());
    let urls = cluster.urls();
    // Each service lists every node, starting at a different one.
    let from = |first: usize| (0..urls.len()).map(|k| urls[(first + k) % urls.len()].clone()).collect::<Vec<_>>();
    let mut app = TestApp::spawn_with(|producer, worker| {
        for amqp in [&mut producer.amqp, &mut worker.amqp] {
            amqp.url = from(0).join(",");
            // The production default, replicated on all three nodes.
            amqp.queue_type = QueueType::Quorum;
            // The cluster goes with the test.
            amqp.queue_expires = None;
        }
        // Every first attempt fails; later ones (retries, and attempts
        // repeated after a lost acknowledgement) go through the tiers.
        worker.retry_schedule =
            RetrySchedule::from_delays([100, 200, 400, 800, 1_000, 1_000, 1_000].map(Duration::from_millis).to_vec());
        // Half of all attempts fail: no suspension, whatever their order.
        worker.suspend_after_failures = 1_000_000;
        // Unhealthy webhooks' requests take several statements each.
        worker.pg.pool_size = 16;
        // What a publish lost in the failover left overdue is found soon.
        worker.reconcile_interval = Duration::from_secs(1);
        worker.reconcile_grace = Duration::from_secs(2);
    })
    .await;
    app.worker_settings.amqp.url = from(1).join(",");
    app.add_worker().await;
    let receiver = Receiver::start().await;
    receiver.fail_first_per_id(true);
    let mut hooks = Vec::new();
    for k in 0..WEBHOOKS {
        let url = receiver.url_for(&format!("/hook-{k}"));
        hooks.push(app.create_webhook(&webhook(&format!("clustered-{k}"), &url, &[&event_type(k)])).await);
    }

    let topology = Topology::from_settings(&app.worker_settings.amqp);
    let leader = cluster.leader(&topology.dispatch_queue()).await;
    let leaders = [
        leader,
        cluster.leader(&topology.deliveries_queue()).await,
        cluster.leader(&topology.retries_queue()).await,
        cluster.leader(&topology.tier_queue(64)).await,
    ];
    eprintln!("cluster: dispatch, deliveries, retries and delay.64 led by nodes {leaders:?}; stopping node {leader}");

    let load_started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut sends = tokio::task::JoinSet::new();
    let mut stopping = None;
    for i in 0..EVENTS {
        ticker.tick().await;
        if i == EVENTS / 2 {
            let cluster = cluster.clone();
            stopping = Some(tokio::spawn(async move {
                let at = Instant::now();
                cluster.stop(leader).await;
                at
            }));
        }
        sends.spawn(send_until_accepted(app.http.clone(), app.url("/v1/events"), i));
    }
    let mut refused = BTreeMap::<String, usize>::new();
    let mut accepted = BTreeSet::new();
    let mut last_refusal = None;
    while let Some(sent) = sends.join_next().await {
        let sent = sent.expect("a sender does not panic");
        for (why, at) in &sent.refusals {
            *refused.entry(why.clone()).or_default() += 1;
            last_refusal = last_refusal.max(Some(*at));
        }
        assert!(sent.accepted, "event {} was never accepted: {:?}", sent.i, sent.refusals);
        accepted.insert(sent.i);
    }
    let stopped_at = stopping.expect("the leader was stopped").await.expect("stopping does not panic");
    eprintln!(
        "cluster: {EVENTS} events sent in {:.1?}; refused on the way {refused:?}, the last {:.1?} after the stop began",
        load_started.elapsed(),
        last_refusal.map(|at: Instant| at.saturating_duration_since(stopped_at)),
    );
    assert_eq!(accepted.len(), EVENTS);
    let new_leader = cluster.leader(&topology.dispatch_queue()).await;
    assert_ne!(new_leader, leader, "a surviving node leads the dispatch queue");

    // Every event delivered: a successful request for each.
    let delivered_in = Instant::now();
    eventually(Duration::from_secs(240), || async {
        let delivered: BTreeSet<usize> =
            receiver.requests().iter().filter(|r| r.status < 300).filter_map(event_index).collect();
        if delivered.len() == EVENTS { Ok(()) } else { Err(format!("{} of {EVENTS} delivered", delivered.len())) }
    })
    .await;
    eprintln!("cluster: all delivered {:.1?} after the last send", delivered_in.elapsed());

    // One Webhook-Id per event, a different one for each.
    let mut ids = BTreeMap::<usize, BTreeSet<String>>::new();
    let requests = receiver.requests();
    for request in &requests {
        let i = event_index(request).expect("every request carries one of the events");
        ids.entry(i).or_default().insert(request.header("webhook-id").expect("a Webhook-Id").to_owned());
    }
    let several: Vec<_> = ids.iter().filter(|(_, ids)| ids.len() != 1).collect();
    assert!(several.is_empty(), "events with several Webhook-Ids: {several:?}");
    let distinct: BTreeSet<_> = ids.values().flatten().collect();
    assert_eq!(distinct.len(), EVENTS, "one Webhook-Id per event");
    let successes = requests.iter().filter(|r| r.status < 300).count();
    eprintln!("cluster: {} requests, {successes} successful ({} repeated)", requests.len(), successes - EVENTS);

    // The log agrees, and nothing was parked.
    eventually(Duration::from_secs(30), || async {
        let (mut all, mut done) = (0, 0);
        for hook in &hooks {
            let deliveries = app.deliveries_all(hook).await;
            all += deliveries.len();
            done += deliveries.iter().filter(|d| d["state"] == "delivered").count();
        }
        if all == EVENTS && done == EVENTS { Ok(()) } else { Err(format!("{all} deliveries, {done} delivered")) }
    })
    .await;
    let survivor = (leader + 1) % cluster.size();
    let connection = Connection::connect(&cluster.url(survivor), ConnectionProperties::default())
        .await
        .expect("a surviving node answers");
    let channel = connection.create_channel().await.expect("channel");
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let parked =
        channel.queue_declare(topology.parked_queue().into(), passive, FieldTable::default()).await.expect("parked");
    assert_eq!(parked.message_count(), 0, "nothing is parked");
    let _ = connection.close(200, "done".into()).await;

    app.stop().await;
    eprintln!("cluster: test took {:.1?}", test_started.elapsed());
}

/// What became of one event's sending.
struct Sent {
    i: usize,
    accepted: bool,
    /// Each answer other than `202`, with when it came.
    refusals: Vec<(String, Instant)>,
}

/// Posts event `i` until the API accepts it (`202`), sending it again with
/// the same id after anything else, for up to a minute.
async fn send_until_accepted(http: reqwest::Client, url: String, i: usize) -> Sent {
    let body = json!({"event": event_type(i % WEBHOOKS), "data": {"i": i}, "id": format!("event-{i}")});
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refusals = Vec::new();
    while Instant::now() < deadline {
        let response = http.post(&url).bearer_auth(ADMIN_KEY).json(&body).send().await;
        let why = match response {
            Ok(r) if r.status().as_u16() == 202 => return Sent { i, accepted: true, refusals },
            Ok(r) => r.status().as_u16().to_string(),
            Err(e) => format!("transport: {e}"),
        };
        refusals.push((why, Instant::now()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Sent { i, accepted: false, refusals }
}

/// The event type webhook `k` is subscribed to.
fn event_type(k: usize) -> String {
    format!("license.k{k}")
}

/// The index of the event a request carried.
fn event_index(request: &hookline_e2e::Received) -> Option<usize> {
    let body: Value = serde_json::from_slice(&request.body).ok()?;
    body["data"]["i"].as_u64().and_then(|i| usize::try_from(i).ok())
}
