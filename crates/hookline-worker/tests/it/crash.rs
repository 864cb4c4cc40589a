//! `kill -9` of one of two worker processes in the middle of a load, with
//! and without retries, and SIGTERM during a load.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::Duration,
};

use hookline_broker::{AmqpSettings, EventMessage, Publisher, Topology, connect};
use hookline_core::{EventFilters, SigningToken, TenantId, WebhookId, WebhookName, WebhookUrl};
use hookline_store::{Created, NewWebhook, PgSettings, Store};
use hookline_testkit::{Receiver, TestBroker, TestDb};

use crate::process::{LogDir, Target, spawn_process};

const EVENTS: usize = 2000;

/// Events of the retry test: each is delivered twice (a 500, then a 2xx).
const RETRY_EVENTS: usize = 1000;

/// What every worker of these tests on the shared services gets.
const TEST_VARS: [(&str, &str); 5] = [
    ("HOOKLINE_DATABASE_POOL_SIZE", "8"),
    ("HOOKLINE_QUEUE_EXPIRES_MS", "120000"),
    ("HOOKLINE_QUEUE_TYPE", "classic"),
    ("HOOKLINE_WORKER_CONCURRENCY", "32"),
    // Events a killed worker was dispatching wait out the dispatch
    // lease (request timeout + 5 s) before another worker takes them.
    ("HOOKLINE_REQUEST_TIMEOUT_MS", "3000"),
];

/// Starts a worker on this test's database and namespace with
/// [`TEST_VARS`], then `extra` (which wins); output to `log` when given.
fn spawn_worker(db: &TestDb, broker: &TestBroker, extra: &[(&str, &str)], log: Option<&Path>) -> tokio::process::Child {
    let vars: Vec<(&str, &str)> = TEST_VARS.iter().chain(extra).copied().collect();
    let target = Target { database_url: db.url(), amqp_url: broker.url(), namespace: broker.namespace() };
    spawn_process(target, &vars, log).child
}

/// One test's database, namespace, receiver and a webhook for `*`, plus a
/// confirm-mode publisher to load the exchange directly.
struct Load {
    db: TestDb,
    broker: TestBroker,
    receiver: Receiver,
    connection: hookline_broker::lapin::Connection,
    publisher: Publisher,
}

impl Load {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let broker = TestBroker::new().await;
        let receiver = Receiver::start().await;
        let store = Store::connect(&PgSettings { url: db.url().to_owned(), pool_size: 2, ..Default::default() })
            .await
            .expect("store");
        let new = NewWebhook {
            scheme: Default::default(),
            tenant: TenantId::default(),
            name: WebhookName::parse("load").expect("valid"),
            url: WebhookUrl::parse(&receiver.url()).expect("valid"),
            token: SigningToken::parse("0123456789abcdef").expect("valid"),
            events: EventFilters::parse(["*"]).expect("valid"),
            active: true,
            headers: Default::default(),
            rate_limit: None,
            recovery: Default::default(),
        };
        let created = store
            .create_webhook(WebhookId::from_uuid(uuid::Uuid::now_v7()), &new, time::OffsetDateTime::now_utc(), 10)
            .await
            .expect("create");
        assert!(matches!(created, Created::Webhook(_)));
        let amqp = AmqpSettings {
            url: broker.url().to_owned(),
            namespace: broker.namespace().to_owned(),
            queue_expires: Some(Duration::from_secs(120)),
            queue_type: hookline_broker::QueueType::Classic,
        };
        let connection = connect(&amqp, "load-test").await.expect("connect");
        let publisher = Publisher::open(&connection, Topology::from_settings(&amqp)).await.expect("publisher");
        publisher.declare_topology().await.expect("declare");
        Self { db, broker, receiver, connection, publisher }
    }

    async fn publish(&self, i: usize) {
        let event = EventMessage {
            event: "license.created".into(),
            data: serde_json::json!({"i": i}),
            id: Some(format!("e{i}")),
            triggered_at: None,
            tenant: None,
        };
        self.publisher.publish_event(&event).await.expect("confirmed");
    }

    async fn delivered(&self, client: &tokio_postgres::Client) -> usize {
        let n: i64 = client
            .query_one("SELECT count(*) FROM deliveries WHERE state = 'delivered'", &[])
            .await
            .expect("query")
            .get(0);
        usize::try_from(n).expect("a count")
    }

    /// Waits until `n` deliveries are delivered while `worker` stays up, then
    /// checks the log's consistency and the receiver's Webhook-Ids.
    async fn expect_all_delivered(&self, n: usize, worker: &mut tokio::process::Child) {
        let client = self.db.client().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let done = self.delivered(&client).await;
            if done == n {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("only {done} of {n} delivered within 120 s; {}", undelivered(&client).await);
            }
            assert!(worker.try_wait().expect("status").is_none(), "the remaining worker died");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM events),
                        (SELECT count(*) FROM deliveries),
                        (SELECT count(*) FROM deliveries d WHERE NOT EXISTS
                            (SELECT 1 FROM attempts a WHERE a.delivery_id = d.id AND a.status_code = 200)),
                        (SELECT count(*) FROM deliveries d WHERE d.attempt_count <>
                            (SELECT count(*) FROM attempts a WHERE a.delivery_id = d.id))",
                &[],
            )
            .await
            .expect("query");
        let n64 = i64::try_from(n).expect("fits");
        assert_eq!(row.get::<_, i64>(0), n64, "one event row per event");
        assert_eq!(row.get::<_, i64>(1), n64, "one delivery row per event, no duplicates");
        assert_eq!(row.get::<_, i64>(2), 0, "every delivery has its successful attempt recorded");
        assert_eq!(row.get::<_, i64>(3), 0, "attempt counts match the attempt rows");
        let ids: BTreeSet<String> =
            self.receiver.requests().iter().filter_map(|r| r.header("webhook-id").map(str::to_owned)).collect();
        assert_eq!(ids.len(), n, "every delivery reached the receiver (repeats allowed: at-least-once)");
    }
}

/// Deliveries by state and the first ten not delivered, for a failure message.
async fn undelivered(client: &tokio_postgres::Client) -> String {
    let states: Vec<String> = client
        .query("SELECT state || '=' || count(*) FROM deliveries GROUP BY state ORDER BY state", &[])
        .await
        .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
        .unwrap_or_default();
    let rows: Vec<String> = client
        .query(
            "SELECT id::text || ' ' || state || ' attempts ' || attempt_count
                    || ' next_attempt_at ' || coalesce(next_attempt_at::text, '-')
                    || ' claimed_until ' || coalesce(claimed_until::text, '-')
             FROM deliveries WHERE state <> 'delivered' ORDER BY id LIMIT 10",
            &[],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
        .unwrap_or_default();
    format!("deliveries by state {states:?}; not delivered (first 10): {rows:#?}")
}

async fn sigterm(child: &mut tokio::process::Child, within: Duration) {
    let pid = child.id().expect("running");
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let exit = tokio::time::timeout(within, child.wait()).await.expect("exits in time").expect("status");
    assert!(exit.success(), "exits cleanly on SIGTERM: {exit}");
}

/// Two workers share a load of 2,000 events; one is killed with SIGKILL
/// midway. Every event is delivered, each delivery row exists once, every
/// delivered delivery has its attempts, and receivers saw each Webhook-Id.
#[tokio::test]
async fn killing_a_worker_loses_nothing() {
    let load = Load::new().await;
    let mut survivor = spawn_worker(&load.db, &load.broker, &[], None);
    let mut victim = spawn_worker(&load.db, &load.broker, &[], None);
    let client = load.db.client().await;
    for i in 0..EVENTS {
        load.publish(i).await;
        if i == EVENTS / 2 {
            // Kill once the workers are surely mid-work.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while load.delivered(&client).await < 200 {
                assert!(tokio::time::Instant::now() < deadline, "workers made no progress");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            victim.start_kill().expect("SIGKILL");
            let _ = victim.wait().await;
        }
    }
    load.expect_all_delivered(EVENTS, &mut survivor).await;
    let _ = load.connection.close(200, "done".into()).await;
    sigterm(&mut survivor, Duration::from_secs(30)).await;
}

/// SIGTERM to one of two workers during a load: it exits 0 within its drain
/// timeout, and the other delivers everything.
#[tokio::test]
async fn sigterm_during_a_load_loses_nothing() {
    let load = Load::new().await;
    let mut staying = spawn_worker(&load.db, &load.broker, &[], None);
    let mut leaving = spawn_worker(&load.db, &load.broker, &[], None);
    let client = load.db.client().await;
    let events = EVENTS / 2;
    for i in 0..events {
        load.publish(i).await;
        if i == events / 2 {
            while load.delivered(&client).await < 100 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The binary's default drain timeout is 20 s.
            sigterm(&mut leaving, Duration::from_secs(25)).await;
        }
    }
    load.expect_all_delivered(events, &mut staying).await;
    let _ = load.connection.close(200, "done".into()).await;
    sigterm(&mut staying, Duration::from_secs(30)).await;
}

/// Two workers, 1,000 events failed once each, one SIGKILLed mid-retries: each delivery succeeds once, nothing waits.
#[tokio::test]
async fn killing_a_worker_during_retries_loses_nothing() {
    let load = Load::new().await;
    load.receiver.fail_first_per_id(true);
    let logs = LogDir::new("crash-retries");
    let vars = [
        ("HOOKLINE_RETRY_SCHEDULE", "200ms,1s,1s"),
        ("HOOKLINE_RECONCILE_INTERVAL_MS", "500"),
        ("HOOKLINE_RECONCILE_GRACE_MS", "2000"),
        // Every first attempt fails by design, hundreds in a row: the
        // webhook must not be suspended for it (suspension is not under test).
        ("HOOKLINE_SUSPEND_AFTER_FAILURES", "1000000"),
    ];
    let mut survivor = spawn_worker(&load.db, &load.broker, &vars, Some(&logs.file("survivor.log")));
    let mut victim = spawn_worker(&load.db, &load.broker, &vars, Some(&logs.file("victim.log")));
    let client = load.db.client().await;
    for i in 0..RETRY_EVENTS {
        load.publish(i).await;
        if i == RETRY_EVENTS / 2 {
            // Every delivered delivery was retried: kill once 100 were.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while load.delivered(&client).await < 100 {
                assert!(tokio::time::Instant::now() < deadline, "no retry succeeded within 60 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            victim.start_kill().expect("SIGKILL");
            let _ = victim.wait().await;
        }
    }
    load.expect_all_delivered(RETRY_EVENTS, &mut survivor).await;

    // Postgres: one delivery per event, none waiting, one success each.
    let rows = client
        .query("SELECT id, event_id, state, attempt_count, next_attempt_at IS NOT NULL FROM deliveries", &[])
        .await
        .expect("deliveries");
    let deliveries: BTreeMap<String, String> =
        rows.iter().map(|r| (r.get::<_, uuid::Uuid>(0).to_string(), r.get::<_, String>(1))).collect();
    let waiting: Vec<String> = rows
        .iter()
        .filter(|r| matches!(r.get::<_, &str>(2), "pending" | "retrying") || r.get::<_, bool>(4))
        .map(|r| {
            format!(
                "{} {} next_attempt_at set: {}",
                r.get::<_, uuid::Uuid>(0),
                r.get::<_, &str>(2),
                r.get::<_, bool>(4)
            )
        })
        .collect();
    assert!(waiting.is_empty(), "deliveries left waiting: {waiting:?}");
    let overdue: i64 = client
        .query_one("SELECT count(*) FROM deliveries WHERE state = 'retrying' AND next_attempt_at < now()", &[])
        .await
        .expect("overdue")
        .get(0);
    assert_eq!(overdue, 0, "no delivery is retrying with its due time in the past");
    let not_one_success: Vec<String> = client
        .query(
            "SELECT d.id::text, count(a.id) FILTER (WHERE a.status_code BETWEEN 200 AND 299)
             FROM deliveries d LEFT JOIN attempts a ON a.delivery_id = d.id
             GROUP BY d.id HAVING count(a.id) FILTER (WHERE a.status_code BETWEEN 200 AND 299) <> 1",
            &[],
        )
        .await
        .expect("successes")
        .iter()
        .map(|r| format!("{}: {} successful attempts", r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    assert!(not_one_success.is_empty(), "deliveries without exactly one recorded success: {not_one_success:?}");
    let retried = rows.iter().filter(|r| r.get::<_, i32>(3) >= 2).count();

    // The receiver: the Webhook-Ids answered 2xx are exactly the deliveries,
    // and each event arrived under one Webhook-Id (its delivery's).
    let requests = load.receiver.requests();
    let mut ids_per_event: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut succeeded = BTreeSet::new();
    for request in &requests {
        let id = request.header("webhook-id").expect("every request has a Webhook-Id").to_owned();
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("a JSON body");
        let event = format!("e{}", body["data"]["i"]);
        assert_eq!(deliveries.get(&id), Some(&event), "Webhook-Id {id} is the delivery of the event it carried");
        ids_per_event.entry(event).or_default().insert(id.clone());
        if (200..300).contains(&request.status) {
            succeeded.insert(id);
        }
    }
    let known: BTreeSet<String> = deliveries.keys().cloned().collect();
    assert_eq!(succeeded, known, "every delivery, and nothing else, was answered 2xx under its Webhook-Id");
    assert_eq!(ids_per_event.len(), RETRY_EVENTS, "every event reached the receiver");
    let several: Vec<_> = ids_per_event.iter().filter(|(_, ids)| ids.len() != 1).collect();
    assert!(several.is_empty(), "events that arrived under several Webhook-Ids: {several:?}");
    eprintln!(
        "retries under SIGKILL: {RETRY_EVENTS} delivered, {retried} with two or more recorded attempts, {} requests",
        requests.len()
    );
    let _ = load.connection.close(200, "done".into()).await;
    sigterm(&mut survivor, Duration::from_secs(30)).await;
    drop(logs);
}
