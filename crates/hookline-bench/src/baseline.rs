//! The machine's own limit: persistent RabbitMQ publish (with confirms) plus
//! consume (with acks), measured in the same run as Hookline, so every
//! result says how far it is from what the broker alone can do here.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hookline_broker::lapin::{
    BasicProperties, Confirmation, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Outstanding unconfirmed publishes at a time.
const WINDOW: usize = 512;

/// Publishes `n` persistent 200-byte messages to a fresh durable queue of
/// `queue_type` (`classic` or `quorum`) with confirms while a consumer acks
/// them; returns messages per second through both.
pub(crate) async fn rabbitmq_rate(queue_type: &str, n: usize) -> anyhow::Result<f64> {
    let connection = Connection::connect(AMQP, ConnectionProperties::default()).await?;
    let queue = format!("bench-raw-{}", uuid::Uuid::new_v4().simple());
    let publish = connection.create_channel().await?;
    publish.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(queue_type.into()));
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    publish.queue_declare(queue.as_str().into(), durable, args).await?;

    let consume = connection.create_channel().await?;
    consume.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut consumer = consume
        .basic_consume(queue.as_str().into(), "bench".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let started = Instant::now();
    let consuming = tokio::spawn(async move {
        let mut seen = 0;
        while seen < n {
            match tokio::time::timeout(Duration::from_secs(30), consumer.next()).await {
                Ok(Some(Ok(delivery))) => {
                    delivery.ack(BasicAckOptions::default()).await?;
                    seen += 1;
                }
                _ => anyhow::bail!("consumer stopped after {seen} of {n}"),
            }
        }
        Ok(())
    });
    let body = vec![b'x'; 200];
    let mut pending = futures_util::stream::FuturesUnordered::new();
    for _ in 0..n {
        if pending.len() >= WINDOW {
            let confirm: Confirmation = pending.next().await.expect("not empty")?;
            anyhow::ensure!(confirm.is_ack(), "broker nacked a publish");
        }
        let confirm = publish
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
        pending.push(confirm);
    }
    while let Some(confirm) = pending.next().await {
        let confirm: Confirmation = confirm?;
        anyhow::ensure!(confirm.is_ack(), "broker nacked a publish");
    }
    consuming.await??;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    // Close the consuming channel first: deleting a queue under a live
    // consumer makes the broker cancel it mid-conversation.
    let _ = consume.close(200, "done".into()).await;
    publish.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
    let _ = connection.close(200, "done".into()).await;
    Ok(rate)
}
