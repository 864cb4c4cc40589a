//! Soak: every accepted event is delivered to every subscriber while
//! workers, RabbitMQ and Postgres fail at random.
//!
//! The test owns a private RabbitMQ node and a private Postgres cluster,
//! runs two worker processes (started again whenever one is killed or
//! stopped), publishes [`RATE_PER_S`] events/s straight to the exchange with confirms,
//! and every ~25 s injects one fault. Then it stops the load and waits until
//! everything accepted is delivered.
//!
//! - `HOOKLINE_SOAK_SECS`: how long the load runs; 90 by default so CI runs
//!   it, 300 for the full run. The full run outlasts nextest's limit
//!   (7 × 60 s in `.config/nextest.toml`), so run it with cargo's harness:
//!   `HOOKLINE_SOAK_SECS=300 cargo test -p hookline-worker --test it soak -- --nocapture`.
//! - `HOOKLINE_SOAK_SEED`: the seed of the fault sequence (default: from the
//!   clock); printed at the start, so a run can be repeated.
//!
//! Under nextest the wait after the load is cut so the whole test ends
//! within [`NEXTEST_BUDGET`] (plus the final checks), before nextest would
//! kill it and leave the private servers running.

mod check;
mod faults;
mod load;
mod workers;

use std::{collections::BTreeMap, time::Duration};

use hookline_broker::{
    AmqpSettings, QueueType, Topology,
    lapin::{
        options::{BasicGetOptions, QueueDeclareOptions},
        types::FieldTable,
    },
};
use hookline_core::{EventFilters, SigningToken, TenantId, WebhookId, WebhookName, WebhookUrl};
use hookline_store::{Created, NewWebhook, PgSettings, Store};
use hookline_testkit::{PrivateBroker, PrivatePostgres, Receiver};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::{
    check::{Progress, check_receiver, describe, pg, progress},
    faults::{FAULTS, Fault, Rng},
    load::{open_publisher, run_load},
    workers::Workers,
};
use crate::process::{LogDir, Target};

/// The namespace on the private node (nothing else uses it).
const NAMESPACE: &str = "soak";

/// Events published per second. The `flaky` webhook fails every first
/// attempt, so it is unhealthy nearly all the time and gets one request at
/// a time (its probe) across both workers: that serial pace, not the
/// faults, is what 100 events/s outruns on this 2-core machine (two runs of
/// 2026-11-30 ended the load with about 6,000 events' first attempts still
/// pending and missed the drain deadline). At 60 the same fault sequence
/// drains within seconds. The soak is about what faults lose, so it stays
/// below that pace.
const RATE_PER_S: u64 = 60;

/// How long after the system settled from one fault the next one comes
/// (plus up to 10 s of jitter).
const FAULT_GAP: Duration = Duration::from_secs(20);

/// How long the test waits for everything to be delivered after the load.
/// A CI run of 2026-11-30 (a 20 s broker outage on a loaded machine) was
/// still draining steadily, 426 first attempts of the flaky webhook left,
/// when 120 s ran out: the flaky webhook's serial probes are the pace.
const DRAIN_WAIT: Duration = Duration::from_secs(200);

/// Under nextest, the test ends by itself this long after it started:
/// nextest terminates this test after 7 × 60 s (`.config/nextest.toml`)
/// without running its destructors, which would leave the private RabbitMQ
/// node and Postgres cluster running and lose the diagnostics. The drain
/// wait is cut short to fit, leaving time for the checks and the workers'
/// SIGTERM.
const NEXTEST_BUDGET: Duration = Duration::from_secs(350);

/// What every soak worker gets.
const WORKER_VARS: [(&str, &str); 10] = [
    ("HOOKLINE_QUEUE_TYPE", "quorum"),
    ("HOOKLINE_DATABASE_POOL_SIZE", "16"),
    // The 1 s receiver alone needs about 100 requests in flight at
    // 100 events/s, from one worker while the other is being replaced; all
    // three webhooks belong to the one tenant.
    ("HOOKLINE_WORKER_CONCURRENCY", "256"),
    ("HOOKLINE_MAX_IN_FLIGHT_PER_WEBHOOK", "256"),
    ("HOOKLINE_MAX_IN_FLIGHT_PER_TENANT", "256"),
    ("HOOKLINE_REQUEST_TIMEOUT_MS", "3000"),
    ("HOOKLINE_RECONCILE_INTERVAL_MS", "1000"),
    ("HOOKLINE_RECONCILE_GRACE_MS", "5000"),
    ("HOOKLINE_RETRY_SCHEDULE", "500ms,1s,2s,5s"),
    // One receiver fails every first attempt, dozens in a row at this rate:
    // suspension is not under test.
    ("HOOKLINE_SUSPEND_AFTER_FAILURES", "1000000"),
];

/// Under random worker kills, broker outages and Postgres restarts, every accepted event reaches all three subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_event_is_delivered_to_every_subscriber_under_random_faults() {
    let test_started = Instant::now();
    let secs: u64 = std::env::var("HOOKLINE_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(90);
    let seed: u64 = std::env::var("HOOKLINE_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("soak: {secs} s of load, HOOKLINE_SOAK_SEED={seed}");
    let mut rng = Rng::new(seed);
    let logs = LogDir::new("soak");
    let postgres = PrivatePostgres::start().await;
    let rabbit = PrivateBroker::start().await;
    let database_url = postgres.url("hookline");
    let amqp_url = rabbit.url();

    // Three subscribers of every event, created directly in the store.
    let prompt = Receiver::start().await;
    let flaky = Receiver::start().await;
    flaky.fail_first_per_id(true);
    let slow = Receiver::start().await;
    slow.set_delay(Duration::from_secs(1));
    let store = Store::connect(&PgSettings { url: database_url.clone(), pool_size: 2, ..Default::default() })
        .await
        .expect("the private Postgres answers and migrates");
    let mut webhooks = Vec::new();
    for (name, receiver) in [("prompt", &prompt), ("flaky", &flaky), ("slow", &slow)] {
        let id = WebhookId::from_uuid(uuid::Uuid::now_v7());
        let new = NewWebhook {
            scheme: Default::default(),
            tenant: TenantId::default(),
            name: WebhookName::parse(name).expect("valid"),
            url: WebhookUrl::parse(&receiver.url()).expect("valid"),
            token: SigningToken::parse("0123456789abcdef").expect("valid"),
            events: EventFilters::parse(["*"]).expect("valid"),
            active: true,
            headers: Default::default(),
            rate_limit: None,
            recovery: Default::default(),
        };
        let created = store.create_webhook(id, &new, time::OffsetDateTime::now_utc(), 10).await.expect("create");
        assert!(matches!(created, Created::Webhook(_)));
        webhooks.push((name, receiver, id.as_uuid().to_string()));
    }
    drop(store);

    let amqp = AmqpSettings {
        url: amqp_url.clone(),
        namespace: NAMESPACE.to_owned(),
        queue_expires: None,
        queue_type: QueueType::Quorum,
    };
    {
        let (connection, publisher) = open_publisher(&amqp).await.expect("the private RabbitMQ answers");
        publisher.declare_topology().await.expect("declare the topology");
        let _ = connection.close(200, "declared".into()).await;
    }
    let target = Target { database_url: &database_url, amqp_url: &amqp_url, namespace: NAMESPACE };
    let mut workers = Workers::start(target, &logs).await;

    let stop_load = CancellationToken::new();
    let load = tokio::spawn(run_load(amqp.clone(), stop_load.clone()));
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut faults: Vec<String> = Vec::new();
    let mut order: Vec<Fault> = Vec::new();
    let mut next_fault = started + FAULT_GAP + Duration::from_millis(rng.below(10_000));
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        workers.check().await;
        if Instant::now() < next_fault {
            continue;
        }
        // Each kind once per round of four, in a random order.
        if order.is_empty() {
            order = FAULTS.to_vec();
            for i in (1..order.len()).rev() {
                let j = usize::try_from(rng.below(i as u64 + 1)).expect("small");
                order.swap(i, j);
            }
        }
        let fault = order.pop().expect("refilled above");
        let at = started.elapsed().as_secs();
        let detail = match fault {
            Fault::KillWorker | Fault::StopWorker => {
                let slot = usize::try_from(rng.below(2)).expect("small");
                workers.replace(slot, matches!(fault, Fault::KillWorker)).await;
                format!("slot {slot}")
            }
            Fault::BrokerOutage => {
                let handle = tokio::runtime::Handle::current();
                // The node's control commands block: keep them off the
                // threads that run the receivers and the load.
                tokio::task::block_in_place(|| handle.block_on(rabbit.stop()));
                tokio::time::sleep(Duration::from_secs(5)).await;
                tokio::task::block_in_place(|| handle.block_on(rabbit.restart()));
                String::new()
            }
            Fault::PostgresRestart => {
                postgres.restart().await;
                String::new()
            }
        };
        let took = started.elapsed().as_secs() - at;
        eprintln!("soak: t={at}s {fault:?} {detail} (took {took} s)");
        faults.push(format!("t={at}s {fault:?} {detail}"));
        next_fault = Instant::now() + FAULT_GAP + Duration::from_millis(rng.below(10_000));
    }
    stop_load.cancel();
    let stats = load.await.expect("the load task");
    let load_secs = started.elapsed().as_secs();
    let accepted: Vec<String> = stats.accepted.iter().cloned().collect();
    eprintln!(
        "soak: load stopped after {load_secs} s: {} accepted, {} failed publishes, {} ticks without a connection, {} reconnects",
        accepted.len(),
        stats.failed,
        stats.skipped,
        stats.reconnects
    );

    // Wait (bounded) until every accepted event is delivered three times
    // and nothing waits.
    let mut deadline = Instant::now() + DRAIN_WAIT;
    let under_nextest = std::env::var_os("NEXTEST").is_some();
    if under_nextest {
        deadline = deadline.min(test_started + NEXTEST_BUDGET);
    }
    let drain_started = Instant::now();
    let mut last = Progress::default();
    let mut settled = false;
    let mut report = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        workers.check().await;
        if Instant::now() >= report {
            // Progress, in case the harness's own timeout ends the test first.
            eprintln!(
                "soak: draining: deliveries by state {:?}, {} accepted events incomplete",
                last.states,
                last.incomplete.len()
            );
            report += Duration::from_secs(10);
        }
        if let Some(client) = pg(&database_url).await
            && let Ok(now) = progress(&client, &accepted).await
        {
            settled = now.done();
            last = now;
            if settled {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let drain_secs = started.elapsed().as_secs() - load_secs;

    let mut problems = std::mem::take(&mut workers.problems);
    let client = pg(&database_url).await.expect("the private Postgres answers at the end");
    if !settled {
        let sample: Vec<String> = last.incomplete.iter().take(10).cloned().collect();
        problems.push(format!(
            "not settled within {:?} of the load's end{}: deliveries by state {:?}; {} of {} accepted events without 3 delivered deliveries; some:\n{}",
            drain_started.elapsed(),
            if under_nextest { " (cut to fit nextest's slow-timeout)" } else { "" },
            last.states,
            last.incomplete.len(),
            accepted.len(),
            describe(&client, &sample).await
        ));
        let ids: Vec<String> = client
            .query(
                "SELECT id::text FROM deliveries WHERE tenant = 'default' AND event_id = ANY($1) AND state <> 'delivered'",
                &[&sample],
            )
            .await
            .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
            .unwrap_or_default();
        for id in ids {
            problems.push(format!("worker log lines naming delivery {id}: {:#?}", logs.grep(&id)));
        }
        let waiting: Vec<String> = client
            .query(
                "SELECT d.id::text || ' event ' || d.event_id || ' ' || d.state || ' attempts ' || d.attempt_count
                        || ' next_attempt_at ' || coalesce(d.next_attempt_at::text, '-')
                        || ' claimed_until ' || coalesce(d.claimed_until::text, '-')
                 FROM deliveries d WHERE d.state IN ('pending', 'retrying') ORDER BY d.next_attempt_at LIMIT 10",
                &[],
            )
            .await
            .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
            .unwrap_or_default();
        if !waiting.is_empty() {
            problems.push(format!("waiting deliveries (first 10): {waiting:#?}"));
        }
    }

    // Exactly one delivery per (event, webhook) for the accepted events.
    let rows = client
        .query("SELECT id::text, event_id, webhook_id::text FROM deliveries", &[])
        .await
        .expect("read the deliveries");
    let deliveries: BTreeMap<String, (String, String)> =
        rows.iter().map(|r| (r.get::<_, String>(0), (r.get::<_, String>(1), r.get::<_, String>(2)))).collect();
    let mut per_event: BTreeMap<&str, usize> = BTreeMap::new();
    for (event, _) in deliveries.values() {
        *per_event.entry(event).or_default() += 1;
    }
    let not_three: Vec<_> =
        accepted.iter().filter(|e| per_event.get(e.as_str()).copied() != Some(3)).take(20).collect();
    if !not_three.is_empty() {
        problems.push(format!("accepted events without exactly 3 delivery rows (first 20): {not_three:?}"));
    }
    let mismatched: i64 = client
        .query_one(
            "SELECT count(*) FROM deliveries d WHERE d.attempt_count <>
                (SELECT count(*) FROM attempts a WHERE a.delivery_id = d.id)",
            &[],
        )
        .await
        .expect("attempt counts")
        .get(0);
    if mismatched != 0 {
        problems.push(format!("{mismatched} deliveries whose attempt_count differs from their attempt rows"));
    }

    // Each receiver saw each accepted event under one Webhook-Id.
    let mut requests = 0;
    for (name, receiver, webhook) in &webhooks {
        requests += check_receiver(name, receiver, webhook, &deliveries, &stats.accepted, &mut problems);
    }

    // Nothing parked.
    match open_publisher(&amqp).await {
        None => problems.push("cannot connect to the private RabbitMQ at the end".to_owned()),
        Some((connection, _)) => {
            let channel = connection.create_channel().await.expect("channel");
            let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
            let parked = Topology::from_settings(&amqp).parked_queue();
            let queue = channel.queue_declare(parked.as_str().into(), passive, FieldTable::default()).await;
            match queue {
                Err(e) => problems.push(format!("passive declare of {parked}: {e}")),
                Ok(queue) if queue.message_count() > 0 => {
                    let mut bodies = Vec::new();
                    for _ in 0..5 {
                        let got = channel.basic_get(parked.as_str().into(), BasicGetOptions { no_ack: false }).await;
                        if let Ok(Some(message)) = got {
                            bodies.push(String::from_utf8_lossy(&message.delivery.data).into_owned());
                        }
                    }
                    problems.push(format!("{} messages parked in {parked}; some: {bodies:#?}", queue.message_count()));
                }
                Ok(_) => {}
            }
            let _ = connection.close(200, "checked".into()).await;
        }
    }

    let totals = workers.totals().await;
    workers.stop_all().await;
    problems.append(&mut workers.problems);
    let counter = |name: &str| totals.get(name).copied().unwrap_or(0.0);
    println!(
        "soak summary: seed {seed}, {load_secs} s load + {drain_secs} s drain, {} events accepted ({} failed publishes), {} faults [{}], {} workers started, {} requests received, redeliveries {}, reconciled {}, fenced {}, store waits {}, publish failures {}",
        accepted.len(),
        stats.failed,
        faults.len(),
        faults.join("; "),
        workers.started,
        requests,
        counter("hookline_redeliveries_total"),
        counter("hookline_reconciled_total"),
        counter("hookline_messages_fenced_total"),
        counter("hookline_store_waits_total"),
        counter("hookline_publish_failures_total"),
    );
    assert!(!accepted.is_empty(), "the load published nothing");
    assert!(problems.is_empty(), "soak failed (seed {seed}):\n{}", problems.join("\n"));
    drop(workers);
    drop(logs);
}
