//! The system under test: the release `hookline-producer` and
//! `hookline-worker` binaries as separate processes (so each one's CPU time
//! and peak memory can be read), on a fresh database and broker namespace.
//!
//! The services run with their default settings, log level included. The
//! benchmark sets only what it needs to run them at all (database,
//! namespace, admin key, listen addresses, loopback receivers allowed, a
//! webhook limit above any scenario's, queue expiry so a run's queues
//! disappear) and a scenario's retry schedule when it has one. `HOOKLINE_*`,
//! `RUST_LOG` and `MALLOC_*` variables given to the benchmark pass through.
//! Each service's stdout and stderr go to a log file, never to a pipe.

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

/// What a scenario may change about the services.
#[derive(Debug, Clone)]
pub(crate) struct StackOptions {
    /// Worker processes.
    pub(crate) workers: usize,
    /// `HOOKLINE_RETRY_SCHEDULE`; `None`: the services' default.
    pub(crate) retry_schedule: Option<String>,
    /// Where `producer.log` and `worker-{n}.log` go (created if missing).
    pub(crate) log_dir: PathBuf,
    /// More `HOOKLINE_*` settings for both services (`hookline-bench
    /// retention`'s arms).
    pub(crate) env: Vec<(String, String)>,
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
        std::fs::create_dir_all(&options.log_dir).with_context(|| format!("creating {}", options.log_dir.display()))?;
        let common = |command: &mut Command, log: &str| -> anyhow::Result<()> {
            let path = options.log_dir.join(log);
            let log = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                // HOOKLINE_* settings and RUST_LOG given to the benchmark pass
                // through (to try one: HOOKLINE_DISPATCH_CONCURRENCY=64
                // hookline-bench …); those set below win.
                .envs(std::env::vars().filter(|(k, _)| {
                    (k.starts_with("HOOKLINE_") || k.starts_with("MALLOC_") || k == "RUST_LOG")
                        && !["HOOKLINE_TEST_DATABASE_URL", "HOOKLINE_TEST_AMQP_URL"].contains(&k.as_str())
                }))
                .env("HOOKLINE_DATABASE_URL", format!("postgres://postgres@127.0.0.1:5432/{database}"))
                .env("HOOKLINE_NAMESPACE", &namespace)
                .env("HOOKLINE_QUEUE_EXPIRES_MS", "600000")
                .env("HOOKLINE_API_KEYS", KEY)
                .env("HOOKLINE_ALLOWED_NETWORKS", "127.0.0.0/8")
                .env("HOOKLINE_MAX_WEBHOOKS_PER_TENANT", "10000")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true);
            if let Some(schedule) = &options.retry_schedule {
                command.env("HOOKLINE_RETRY_SCHEDULE", schedule);
            }
            command.envs(options.env.iter().map(|(k, v)| (k, v)));
            Ok(())
        };
        let api_port = free_port()?;
        let mut producer = Command::new(binary("hookline-producer")?);
        common(&mut producer, "producer.log")?;
        producer.env("HOOKLINE_LISTEN_ADDR", format!("127.0.0.1:{api_port}"));
        let mut producer = producer.spawn().context("starting hookline-producer")?;
        let what = format!("hookline-producer (log: {})", options.log_dir.join("producer.log").display());
        wait_healthy(api_port, &mut producer, &what).await?;
        let mut workers = Vec::new();
        for n in 0..options.workers {
            let port = free_port()?;
            let mut worker = Command::new(binary("hookline-worker")?);
            common(&mut worker, &format!("worker-{n}.log"))?;
            worker.env("HOOKLINE_WORKER_LISTEN_ADDR", format!("127.0.0.1:{port}"));
            let mut worker = worker.spawn().context("starting hookline-worker")?;
            let what = format!("hookline-worker (log: {})", options.log_dir.join(format!("worker-{n}.log")).display());
            wait_healthy(port, &mut worker, &what).await?;
            workers.push(worker);
        }
        Ok(Self { api: SocketAddr::from(([127, 0, 0, 1], api_port)), database, namespace, producer, workers })
    }

    /// The producer's process id (`None` once it has exited).
    pub(crate) fn producer_pid(&self) -> Option<u32> {
        self.producer.id()
    }

    /// Each worker's process id (`None` once it has exited).
    pub(crate) fn worker_pids(&self) -> Vec<Option<u32>> {
        self.workers.iter().map(Child::id).collect()
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
