//! The system under test: the release `hookline-producer` and
//! `hookline-worker` binaries as separate processes (so each one's CPU time
//! and peak memory can be read), on a fresh database and broker namespace.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::process::{Child, Command};

/// The admin key the benchmark's producer accepts.
pub(crate) const KEY: &str = "bench-admin-key-0123456789";

const ADMIN_DB: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// CPU seconds and peak resident memory of one process.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct Usage {
    /// User plus system CPU time, in seconds.
    pub(crate) cpu_seconds: f64,
    /// Peak resident set size, in MiB.
    pub(crate) peak_rss_mib: f64,
}

/// Reads `/proc/<pid>`: utime + stime (clock ticks) and `VmHWM`.
fn usage(pid: u32) -> Usage {
    let ticks = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu_seconds = (field(11) + field(12)) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    Usage { cpu_seconds, peak_rss_mib: peak_kib / 1024.0 }
}

/// What a scenario may change about the services.
#[derive(Debug, Clone)]
pub(crate) struct StackOptions {
    /// Worker processes.
    pub(crate) workers: usize,
    /// `HOOKLINE_RETRY_SCHEDULE`.
    pub(crate) retry_schedule: String,
    /// Extra variables for every service.
    pub(crate) extra_env: Vec<(String, String)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self { workers: 1, retry_schedule: "5s,1m,5m,30m,2h,5h,10h,10h".to_owned(), extra_env: Vec::new() }
    }
}

/// Running services.
#[derive(Debug)]
pub(crate) struct Stack {
    /// The producer's API address.
    pub(crate) api: SocketAddr,
    /// The database of this run.
    pub(crate) database: String,
    /// The broker namespace of this run.
    pub(crate) namespace: String,
    producer: Child,
    workers: Vec<Child>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The directory holding this binary, where cargo also put the services.
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} not found next to hookline-bench; build it: cargo build --release -p hookline-producer -p hookline-worker -p hookline-bench",
        path.display()
    );
    Ok(path)
}

async fn wait_healthy(port: u16, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("{what} exited early with {status}");
        }
        if http.get(format!("http://127.0.0.1:{port}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what} did not become ready within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Stack {
    /// Starts a producer and `options.workers` workers.
    pub(crate) async fn start(options: &StackOptions) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let database = format!("hookline_bench_{id}");
        let namespace = format!("bench{id}");
        let common = |command: &mut Command| {
            command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                // HOOKLINE_* settings given to the benchmark pass through (to
                // try one: HOOKLINE_DISPATCH_CONCURRENCY=64 hookline-bench …);
                // those set below win.
                .envs(std::env::vars().filter(|(k, _)| {
                    (k.starts_with("HOOKLINE_") || k.starts_with("MALLOC_"))
                        && !["HOOKLINE_TEST_DATABASE_URL", "HOOKLINE_TEST_AMQP_URL"].contains(&k.as_str())
                }))
                .env("HOOKLINE_DATABASE_URL", format!("postgres://postgres@127.0.0.1:5432/{database}"))
                .env("HOOKLINE_NAMESPACE", &namespace)
                .env("HOOKLINE_QUEUE_EXPIRES_MS", "600000")
                .env("HOOKLINE_API_KEYS", KEY)
                .env("HOOKLINE_ALLOWED_NETWORKS", "127.0.0.0/8")
                .env("HOOKLINE_MAX_WEBHOOKS_PER_TENANT", "10000")
                .env("HOOKLINE_RETRY_SCHEDULE", &options.retry_schedule)
                .env("RUST_LOG", "warn")
                .envs(options.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
        };
        let api_port = free_port()?;
        let mut producer = Command::new(binary("hookline-producer")?);
        common(&mut producer);
        producer.env("HOOKLINE_LISTEN_ADDR", format!("127.0.0.1:{api_port}"));
        let mut producer = producer.spawn().context("starting hookline-producer")?;
        wait_healthy(api_port, &mut producer, "hookline-producer").await?;
        let mut workers = Vec::new();
        for _ in 0..options.workers {
            let port = free_port()?;
            let mut worker = Command::new(binary("hookline-worker")?);
            common(&mut worker);
            worker.env("HOOKLINE_WORKER_LISTEN_ADDR", format!("127.0.0.1:{port}"));
            let mut worker = worker.spawn().context("starting hookline-worker")?;
            wait_healthy(port, &mut worker, "hookline-worker").await?;
            workers.push(worker);
        }
        Ok(Self { api: SocketAddr::from(([127, 0, 0, 1], api_port)), database, namespace, producer, workers })
    }

    /// CPU time and peak memory of the producer and of each worker.
    pub(crate) fn usage(&self) -> (Usage, Vec<Usage>) {
        let producer = self.producer.id().map(usage).unwrap_or_default();
        let workers = self.workers.iter().filter_map(Child::id).map(usage).collect();
        (producer, workers)
    }

    /// A connection to this run's database.
    pub(crate) async fn db(&self) -> anyhow::Result<tokio_postgres::Client> {
        let url = format!("postgres://postgres@127.0.0.1:5432/{}", self.database);
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Stops every process (SIGTERM, then SIGKILL) and drops the database.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        for child in self.workers.iter_mut().chain(std::iter::once(&mut self.producer)) {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
        }
        for child in self.workers.iter_mut().chain(std::iter::once(&mut self.producer)) {
            if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
        let (client, connection) = tokio_postgres::connect(ADMIN_DB, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database)).await?;
        Ok(())
    }
}
