//! A RabbitMQ cluster of one test's own, on this machine: several nodes
//! (each with its own name, ports and data directory, see `rabbit_node`)
//! joined with `rabbitmqctl join_cluster`, for tests in which a node dies.
//! Only Debian's `rabbitmq-server` package is needed; every node runs as
//! the `rabbitmq` user and so shares its Erlang cookie.

use std::path::PathBuf;

use crate::rabbit_node::{Node, free_port_apart, remove};

/// A running cluster; every node is stopped and its files removed when
/// dropped.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Boots `size` fresh nodes at once, then joins every node to the first
    /// one's cluster, one at a time. Panics (naming the logs) when a node
    /// does not come up.
    pub async fn start(size: usize) -> Self {
        assert!(size >= 1, "a cluster has a node");
        let suffix = crate::unique_suffix();
        let dir = std::env::temp_dir().join(format!("hookline-cluster-{suffix}"));
        let mut taken = Vec::new();
        let nodes: Vec<Node> = (1..=size)
            .map(|i| {
                let port = free_port_apart(&taken);
                taken.push(port);
                let dist_port = free_port_apart(&taken);
                taken.push(dist_port);
                Node::create(dir.join(format!("n{i}")), format!("hl{suffix}n{i}@localhost"), port, dist_port)
            })
            .collect();
        let cluster = Self { dir, nodes };
        // All boot at once: starting returns at once, then each is waited for.
        for node in &cluster.nodes {
            node.launch().await;
        }
        for node in &cluster.nodes {
            node.wait_ready().await;
        }
        let (seed, others) = cluster.nodes.split_first().expect("at least one node");
        for node in others {
            node.join(seed).await;
        }
        cluster
    }

    /// The number of nodes.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// The AMQP URL of node `i` (from 0).
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Every node's AMQP URL, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// The Erlang name of node `i`.
    pub fn node_name(&self, i: usize) -> &str {
        self.nodes[i].name()
    }

    /// The index of the node that leads quorum queue `queue` now, asked of
    /// a running node. Panics when no running node knows the queue.
    pub async fn leader(&self, queue: &str) -> usize {
        let asked = self.nodes.iter().find(|n| n.is_running()).expect("a running node");
        let listing = asked.ctl(&["list_queues", "name", "leader", "--no-table-headers"]).await;
        let leader = listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(name, _)| *name == queue)
            .map(|(_, leader)| leader.trim().to_owned())
            .unwrap_or_else(|| panic!("queue {queue} is not in {listing}"));
        self.nodes
            .iter()
            .position(|n| n.name() == leader)
            .unwrap_or_else(|| panic!("{queue} is led by {leader}, not a node of this cluster"))
    }

    /// Stops node `i` with `rabbitmqctl stop`, as an operator or a shutdown
    /// would: it closes its clients' connections and leaves; the others
    /// elect new leaders for what it led. Waits until its port is closed.
    pub async fn stop(&self, i: usize) {
        self.nodes[i].stop().await;
    }

    /// Where node `i` writes its logs (for failure messages).
    pub fn log_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].log_dir()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stopping: Vec<_> = self.nodes.iter().filter_map(Node::stop_in_background).collect();
        for mut child in stopping {
            let _ = child.wait();
        }
        remove(&self.dir);
    }
}
