//! One RabbitMQ node of a test's own (Debian's `rabbitmq-server` package):
//! its own node name, AMQP and distribution ports, data, log and config
//! files under a directory the test owns, no plugins (so no management
//! port), listening on loopback only. The shared epmd finds it by name.
//! [`crate::PrivateBroker`] is one such node, [`crate::Cluster`] several.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

/// How long a node may take to boot (three booting at once on two cores
/// take about 20 s).
const BOOT_WAIT: Duration = Duration::from_secs(120);

/// A node's files and addresses; the process is started with [`Node::boot`].
#[derive(Debug)]
pub(crate) struct Node {
    dir: PathBuf,
    name: String,
    port: u16,
    dist_port: u16,
    running: AtomicBool,
}

/// A loopback port nothing listens on now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// A free port at least 32 away from every port in `taken`: a node's
/// start-up helpers briefly use ports just above its own, so neighbours of
/// another node's ports may be busy for a moment.
pub(crate) fn free_port_apart(taken: &[u16]) -> u16 {
    loop {
        let port = free_port();
        if taken.iter().all(|&t| port.abs_diff(t) >= 32) {
            return port;
        }
    }
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

impl Node {
    /// Writes the files of node `name` under `dir` (created), with AMQP on
    /// `port` and distribution on `dist_port`. Nothing runs yet.
    pub(crate) fn create(dir: PathBuf, name: String, port: u16, dist_port: u16) -> Self {
        std::fs::create_dir_all(dir.join("mnesia")).expect("create the node's data dir");
        std::fs::create_dir_all(dir.join("log")).expect("create the node's log dir");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("write enabled_plugins");
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .expect("write rabbitmq.conf");
        // Debian's wrapper runs the node as the `rabbitmq` user.
        let _ = std::process::Command::new("chown").args(["-R", "rabbitmq:rabbitmq"]).arg(&dir).status();
        Self { dir, name, port, dist_port, running: AtomicBool::new(false) }
    }

    /// The Erlang node name (`…@localhost`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Where the node writes its logs.
    pub(crate) fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// The AMQP URL of this node.
    pub(crate) fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Whether the node was booted and not stopped since.
    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// `program` (`rabbitmq-server`, `rabbitmqctl`) with this node's
    /// environment; output is kept for error messages.
    fn command(&self, program: &str) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("no-env-file"))
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", self.dir.join("pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if program == "rabbitmq-server" {
            // The CLI tools pick their own distribution ports.
            command
                .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
                .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}");
        }
        command
    }

    /// Starts the node and waits until it accepts AMQP connections.
    pub(crate) async fn boot(&self) {
        self.launch().await;
        self.wait_ready().await;
    }

    /// Starts the node's VM in the background; [`Node::wait_ready`] waits
    /// for it.
    pub(crate) async fn launch(&self) {
        // The detached VM inherits the standard streams: pipes would never
        // reach their end.
        let status = tokio::process::Command::from(self.command("rabbitmq-server"))
            .arg("-detached")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .unwrap_or_else(|e| {
                panic!("cannot run rabbitmq-server ({e}); install it (the `services` step of .ci/run does)")
            });
        assert!(status.success(), "rabbitmq-server -detached failed: {status}");
    }

    /// Waits until the launched node accepts AMQP connections.
    pub(crate) async fn wait_ready(&self) {
        self.wait_for_port().await;
        self.running.store(true, Ordering::SeqCst);
    }

    async fn wait_for_port(&self) {
        let deadline = tokio::time::Instant::now() + BOOT_WAIT;
        while !port_open(self.port) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "RabbitMQ node {} did not listen on 127.0.0.1:{} (logs in {})",
                self.name,
                self.port,
                self.log_dir().display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `rabbitmqctl -n <node> args…` and returns its standard output;
    /// panics with its output when it fails.
    pub(crate) async fn ctl(&self, args: &[&str]) -> String {
        let output = tokio::process::Command::from(self.command("rabbitmqctl"))
            .args(["-q", "-n", &self.name])
            .args(args)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run rabbitmqctl ({e})"));
        assert!(
            output.status.success(),
            "rabbitmqctl -n {} {}: {} (logs in {})",
            self.name,
            args.join(" "),
            describe(&output),
            self.log_dir().display()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Makes this (freshly booted) node a member of `seed`'s cluster.
    pub(crate) async fn join(&self, seed: &Node) {
        self.ctl(&["stop_app"]).await;
        self.ctl(&["join_cluster", seed.name()]).await;
        self.ctl(&["start_app"]).await;
        self.wait_for_port().await;
    }

    /// Stops the node (its clients' connections are closed) and waits
    /// until its port is closed.
    pub(crate) async fn stop(&self) {
        self.running.store(false, Ordering::SeqCst);
        let _ = tokio::process::Command::from(self.command("rabbitmqctl"))
            .args(["-q", "-n", &self.name, "stop"])
            .output()
            .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while port_open(self.port) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts stopping the node without waiting (for `Drop`): the child to
    /// wait for.
    pub(crate) fn stop_in_background(&self) -> Option<std::process::Child> {
        self.running.store(false, Ordering::SeqCst);
        let mut command = self.command("rabbitmqctl");
        command.args(["-q", "-n", &self.name, "stop"]).stdout(Stdio::null()).stderr(Stdio::null());
        command.spawn().ok()
    }
}

fn describe(output: &std::process::Output) -> String {
    format!(
        "{} {} {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

/// Removes a directory the nodes wrote (best effort).
pub(crate) fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
