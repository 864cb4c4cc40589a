//! A private RabbitMQ node for fault tests: its own node name, ports and
//! data directory, so a test can stop and restart it without disturbing the
//! shared broker the other tests use. Loopback only.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

/// A RabbitMQ node owned by one test; stopped and removed when dropped.
#[derive(Debug)]
pub struct PrivateBroker {
    dir: PathBuf,
    node: String,
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

impl PrivateBroker {
    /// Starts a fresh node and waits until it accepts AMQP connections.
    pub async fn start() -> Self {
        let suffix = crate::unique_suffix();
        let dir = std::env::temp_dir().join(format!("hookline-rabbit-{suffix}"));
        std::fs::create_dir_all(dir.join("mnesia")).expect("create the node's data dir");
        std::fs::create_dir_all(dir.join("log")).expect("create the node's log dir");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("write enabled_plugins");
        let port = free_port();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .expect("write rabbitmq.conf");
        // Debian's wrapper runs the node as the `rabbitmq` user.
        let _ = Command::new("chown").args(["-R", "rabbitmq:rabbitmq"]).arg(&dir).status();
        let broker = Self { dir, node: format!("hl{suffix}@localhost"), port };
        broker.boot().await;
        broker
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let dist_port = free_port();
        command
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("no-env-file"))
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", self.dir.join("pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    async fn boot(&self) {
        let status = self.command("rabbitmq-server").arg("-detached").status().unwrap_or_else(|e| {
            panic!("cannot run rabbitmq-server ({e}); install it (the `services` step of .ci/run does)")
        });
        assert!(status.success(), "rabbitmq-server -detached failed: {status}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while !port_open(self.port) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "private RabbitMQ node {} did not listen on 127.0.0.1:{} (logs in {})",
                self.node,
                self.port,
                self.dir.join("log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The AMQP URL of this node.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Stops the node (as an outage would), waiting until it is gone.
    pub async fn stop(&self) {
        let _ = self.command("rabbitmqctl").args(["-n", &self.node, "stop"]).status();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while port_open(self.port) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts the stopped node again, with the data it had.
    pub async fn restart(&self) {
        self.boot().await;
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.command("rabbitmqctl").args(["-n", &self.node, "stop"]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
