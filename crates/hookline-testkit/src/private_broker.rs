//! A private RabbitMQ node for fault tests: its own node name, ports and
//! data directory, so a test can stop and restart it without disturbing the
//! shared broker the other tests use. Loopback only.

use std::path::PathBuf;

use crate::rabbit_node::{Node, free_port, free_port_apart, remove};

/// A RabbitMQ node owned by one test; stopped and removed when dropped.
#[derive(Debug)]
pub struct PrivateBroker {
    dir: PathBuf,
    node: Node,
}

impl PrivateBroker {
    /// Starts a fresh node and waits until it accepts AMQP connections.
    pub async fn start() -> Self {
        let suffix = crate::unique_suffix();
        let dir = std::env::temp_dir().join(format!("hookline-rabbit-{suffix}"));
        let port = free_port();
        let node = Node::create(dir.clone(), format!("hl{suffix}@localhost"), port, free_port_apart(&[port]));
        node.boot().await;
        Self { dir, node }
    }

    /// The AMQP URL of this node.
    pub fn url(&self) -> String {
        self.node.url()
    }

    /// Stops the node (as an outage would), waiting until it is gone.
    pub async fn stop(&self) {
        self.node.stop().await;
    }

    /// Starts the stopped node again, with the data it had.
    pub async fn restart(&self) {
        self.node.boot().await;
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(mut stopping) = self.node.stop_in_background() {
            let _ = stopping.wait();
        }
        remove(&self.dir);
    }
}
