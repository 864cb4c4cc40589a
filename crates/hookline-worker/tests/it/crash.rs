//! `kill -9` of one of two worker processes in the middle of a load.

use std::{collections::BTreeSet, process::Stdio, time::Duration};

use hookline_broker::{AmqpSettings, EventMessage, Publisher, Topology, connect};
use hookline_core::{EventFilters, SigningToken, TenantId, WebhookId, WebhookName, WebhookUrl};
use hookline_store::{Created, NewWebhook, PgSettings, Store};
use hookline_testkit::{Receiver, TestBroker, TestDb};

const EVENTS: usize = 2000;

fn spawn_worker(db: &TestDb, broker: &TestBroker) -> tokio::process::Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline-worker"))
        .env_clear()
        .env("HOOKLINE_DATABASE_URL", db.url())
        .env("HOOKLINE_DATABASE_POOL_SIZE", "8")
        .env("HOOKLINE_AMQP_URL", broker.url())
        .env("HOOKLINE_NAMESPACE", broker.namespace())
        .env("HOOKLINE_QUEUE_EXPIRES_MS", "120000")
        .env("HOOKLINE_QUEUE_TYPE", "classic")
        .env("HOOKLINE_WORKER_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("HOOKLINE_WORKER_CONCURRENCY", "32")
        .env("HOOKLINE_ALLOWED_NETWORKS", "127.0.0.0/8")
        // Events a killed worker was dispatching wait out the dispatch
        // lease (request timeout + 5 s) before another worker takes them.
        .env("HOOKLINE_REQUEST_TIMEOUT_MS", "3000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the worker binary starts")
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
            assert!(tokio::time::Instant::now() < deadline, "only {done} of {n} delivered");
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
    let mut survivor = spawn_worker(&load.db, &load.broker);
    let mut victim = spawn_worker(&load.db, &load.broker);
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
    let mut staying = spawn_worker(&load.db, &load.broker);
    let mut leaving = spawn_worker(&load.db, &load.broker);
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
