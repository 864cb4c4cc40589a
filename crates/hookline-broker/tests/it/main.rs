//! The broker crate against a real RabbitMQ, one namespace per test.

use std::time::Duration;

use hookline_broker::{
    AmqpSettings, Consumed, DeliveryMessage, Error, EventMessage, Publisher, Subscription, Topology, connect,
};
use hookline_core::DeliveryId;
use hookline_testkit::TestBroker;

/// Settings for `broker`'s namespace with quorum queues, the production
/// default, so the quorum path is exercised here.
fn quorum_settings(broker: &TestBroker) -> AmqpSettings {
    AmqpSettings {
        url: broker.url().to_owned(),
        namespace: broker.namespace().to_owned(),
        queue_expires: Some(Duration::from_secs(60)),
        queue_type: hookline_broker::QueueType::Quorum,
    }
}

async fn setup() -> (TestBroker, hookline_broker::lapin::Connection, Topology) {
    let broker = TestBroker::new().await;
    let settings = quorum_settings(&broker);
    let connection = connect(&settings, "broker-it").await.expect("connect");
    let topology = Topology::from_settings(&settings);
    let channel = connection.create_channel().await.expect("channel");
    topology.declare(&channel).await.expect("declare");
    topology.declare(&channel).await.expect("declaring twice is harmless");
    (broker, connection, topology)
}

/// An event published with confirms lands in the dispatch queue, persistent,
/// with its id as message id.
#[tokio::test]
async fn published_event_reaches_dispatch_queue() {
    let (_broker, connection, topology) = setup().await;
    let publisher = Publisher::open(&connection, topology.clone()).await.expect("publisher");
    let event = EventMessage {
        event: "license.created".into(),
        data: serde_json::json!({"k": 1}),
        id: Some("e-1".into()),
        triggered_at: None,
        tenant: None,
    };
    publisher.publish_event(&event).await.expect("confirmed");
    let mut subscription = Subscription::open(&connection, &topology.dispatch_queue(), "t", 1).await.expect("consume");
    let Consumed { message, mut ack } = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("a message in time")
        .expect("stream open")
        .expect("delivery");
    assert_eq!(EventMessage::decode(&message.body).expect("decode"), event);
    assert_eq!(message.routing_key, "license.created");
    assert_eq!(message.properties.delivery_mode(), &Some(2));
    assert_eq!(message.properties.message_id().as_ref().map(|s| s.as_str()), Some("e-1"));
    ack.ack().await.expect("ack");
    assert!(matches!(ack.ack().await, Err(Error::AlreadySettled)), "a message is settled once");
}

/// Delivery messages are confirmed and consumable in order.
#[tokio::test]
async fn delivery_messages_round_trip() {
    let (_broker, connection, topology) = setup().await;
    let publisher = Publisher::open(&connection, topology.clone()).await.expect("publisher");
    let webhook = hookline_core::WebhookId::from_uuid(uuid::Uuid::now_v7());
    let ids: Vec<_> = (0..5).map(|_| (DeliveryId::from_uuid(uuid::Uuid::now_v7()), webhook)).collect();
    let expect = |id: &DeliveryId, webhook: &hookline_core::WebhookId| {
        DeliveryMessage::due(id.as_uuid(), webhook.as_uuid(), 1_000, hookline_core::Trigger::Scheduled)
    };
    let messages: Vec<_> = ids.iter().map(|(id, webhook)| expect(id, webhook)).collect();
    publisher.publish_deliveries(&messages).await.expect("confirmed");
    let mut subscription =
        Subscription::open(&connection, &topology.deliveries_queue(), "t", 10).await.expect("consume");
    for (expected, webhook) in &ids {
        let Consumed { message, mut ack } = subscription.next().await.expect("open").expect("delivery");
        assert_eq!(DeliveryMessage::decode(&message.body).expect("decode"), expect(expected, webhook));
        ack.ack().await.expect("ack");
    }
}

/// A publish that no queue takes is an error, never a silent success.
#[tokio::test]
async fn unroutable_publish_is_an_error() {
    let (broker, connection, _topology) = setup().await;
    // A topology whose queues were never declared: its exchange does not
    // exist either, so declare just the exchange of a fresh namespace.
    let lonely = Topology::new(format!("{}x", broker.namespace()));
    let channel = connection.create_channel().await.expect("channel");
    channel
        .exchange_declare(
            lonely.events_exchange().into(),
            hookline_broker::lapin::ExchangeKind::Topic,
            hookline_broker::lapin::options::ExchangeDeclareOptions { auto_delete: true, ..Default::default() },
            Default::default(),
        )
        .await
        .expect("exchange");
    let publisher = Publisher::open(&connection, lonely.clone()).await.expect("publisher");
    let event =
        EventMessage { event: "a.b".into(), data: serde_json::json!({}), id: None, triggered_at: None, tenant: None };
    let err = publisher.publish_event(&event).await.expect_err("no queue is bound");
    assert!(matches!(err, Error::Unroutable(_)), "{err}");
    let _ = channel.exchange_delete(lonely.events_exchange().into(), Default::default()).await;
}

/// A scheduled message waits in the delay tiers (several hops when needed)
/// and arrives in the retries queue no earlier than it is due.
#[tokio::test]
async fn scheduled_message_waits_in_tiers() {
    let (_broker, connection, topology) = setup().await;
    let publisher = Publisher::open(&connection, topology.clone()).await.expect("publisher");
    let now_ms = || {
        i64::try_from(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis(),
        )
        .expect("fits")
    };
    let start = now_ms();
    let due = start + 300;
    let message = DeliveryMessage::V1 {
        delivery_id: uuid::Uuid::now_v7(),
        webhook_id: None,
        trigger: hookline_broker::WireTrigger::Scheduled,
        not_before_ms: Some(due),
        deferrals: 0,
        fence: None,
        slot_ms: None,
    };
    publisher.schedule(&message, start).await.expect("confirmed");
    let mut subscription = Subscription::open(&connection, &topology.retries_queue(), "t", 10).await.expect("consume");
    // Hop like a worker does until the message is due.
    loop {
        let Consumed { message: got, mut ack } = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("delivery");
        let decoded = DeliveryMessage::decode(&got.body).expect("decode");
        assert_eq!(decoded, message);
        let now = now_ms();
        if hookline_broker::topology::tier_for(due - now).is_some() {
            publisher.schedule(&decoded, now).await.expect("hop");
            ack.ack().await.expect("ack");
            continue;
        }
        assert!(now >= due - 16, "arrived {}ms early", due - now);
        ack.ack().await.expect("ack");
        break;
    }
}

/// An install upgraded from classic tiers (`<ns>.delay.<ms>`, declared by
/// earlier versions with these arguments) declares its quorum tiers beside
/// them without a conflict, and what waits in an old tier still comes out
/// into the retries queue when it expires.
#[tokio::test]
async fn old_classic_tiers_drain_into_retries() {
    use hookline_broker::lapin::{
        BasicProperties,
        options::{BasicPublishOptions, QueueDeclareOptions},
        types::{AMQPValue, FieldTable},
    };
    let broker = TestBroker::new().await;
    let settings = quorum_settings(&broker);
    let connection = connect(&settings, "broker-it").await.expect("connect");
    let topology = Topology::from_settings(&settings);
    let channel = connection.create_channel().await.expect("channel");
    let ns = broker.namespace();
    for ms in hookline_broker::topology::TIERS_MS {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("classic".into()));
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(i64::try_from(ms).expect("fits")));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(format!("{ns}.retries").into()));
        args.insert("x-expires".into(), AMQPValue::LongLongInt(60_000));
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        channel.queue_declare(format!("{ns}.delay.{ms}").into(), durable, args).await.expect("an old tier");
    }
    topology.declare(&channel).await.expect("quorum tiers beside the old classic ones");
    assert_ne!(topology.tier_queue(64), format!("{ns}.delay.64"));

    channel.confirm_select(Default::default()).await.expect("confirms");
    let confirm = channel
        .basic_publish(
            "".into(),
            format!("{ns}.delay.64").into(),
            BasicPublishOptions::default(),
            b"left behind",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack());
    let mut subscription = Subscription::open(&connection, &topology.retries_queue(), "t", 1).await.expect("consume");
    let Consumed { message, mut ack } = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("out of the old tier in time")
        .expect("open")
        .expect("delivery");
    assert_eq!(message.body, b"left behind");
    ack.ack().await.expect("ack");
}

/// With several addresses, one that refuses (a stopped node) is skipped at
/// once: connecting, and reconnecting from any starting address, reaches the
/// live one.
#[tokio::test]
async fn a_dead_address_is_skipped() {
    let broker = TestBroker::new().await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("bound").port()
    };
    let settings = AmqpSettings {
        url: format!("amqp://guest:guest@127.0.0.1:{dead}/%2f, {}", broker.url()),
        namespace: broker.namespace().to_owned(),
        ..AmqpSettings::default()
    };
    let started = std::time::Instant::now();
    let connection = connect(&settings, "broker-it").await.expect("the second address");
    assert!(connection.status().connected());
    let stop = tokio_util::sync::CancellationToken::new();
    for _ in 0..4 {
        let again = hookline_broker::link::connect_until(&settings, "broker-it", &stop).await.expect("connects");
        hookline_broker::link::close(&again, "done").await;
    }
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    hookline_broker::link::close(&connection, "done").await;
}
