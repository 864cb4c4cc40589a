//! One RabbitMQ namespace per test.
//!
//! Every exchange and queue name Hookline uses is derived from one namespace
//! string, so a random namespace isolates a test's topology from every other
//! test on the same broker. Queues declared for tests should carry
//! `x-expires` so that what a failed test leaves behind disappears by itself.

use lapin::{Connection, ConnectionProperties};

/// The broker used when `HOOKLINE_TEST_AMQP_URL` is unset.
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A broker namespace that belongs to one test.
#[derive(Debug, Clone)]
pub struct TestBroker {
    namespace: String,
    url: String,
}

impl TestBroker {
    /// Picks a fresh namespace and checks that the broker answers. Panics with
    /// the address it tried when RabbitMQ is unreachable.
    pub async fn new() -> Self {
        let url = std::env::var("HOOKLINE_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned());
        let namespace = format!("t{}", crate::unique_suffix());
        let props = ConnectionProperties::default().with_connection_name(format!("{namespace}-probe").into());
        match Connection::connect(&url, props).await {
            Ok(conn) => {
                let _ = conn.close(200, "probe done".into()).await;
            }
            Err(e) => panic!(
                "cannot reach RabbitMQ at {url}: {e}. Start it with `rabbitmq-server -detached` (the `services` step of .ci/run does this)"
            ),
        }
        Self { namespace, url }
    }

    /// The namespace that replaces `hookline` in every exchange and queue name.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The AMQP URL of the broker.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens a plain connection, for tests that publish or inspect directly.
    pub async fn connect(&self) -> Connection {
        let props = ConnectionProperties::default().with_connection_name(format!("{}-test", self.namespace).into());
        Connection::connect(&self.url, props)
            .await
            .unwrap_or_else(|e| panic!("cannot reach RabbitMQ at {}: {e}", self.url))
    }
}
