//! The soak's two worker processes: started, checked, replaced when a fault
//! kills or stops one, and stopped at the end; their counters summed.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use tokio::time::Instant;

use super::WORKER_VARS;
use crate::process::{LogDir, Target, WorkerProcess, spawn_process};

/// The worker metrics summed into the summary line.
const COUNTERS: [&str; 5] = [
    "hookline_redeliveries_total",
    "hookline_reconciled_total",
    "hookline_messages_fenced_total",
    "hookline_store_waits_total",
    "hookline_publish_failures_total",
];

/// The two worker processes, replaced as they are killed or stopped.
pub(super) struct Workers<'a> {
    target: Target<'a>,
    logs: &'a LogDir,
    http: reqwest::Client,
    slots: Vec<WorkerProcess>,
    pub(super) started: usize,
    /// Counters scraped from workers just before they were stopped.
    gone: BTreeMap<String, f64>,
    /// Anything a worker did that it should not have (exit on its own,
    /// unclean exit on SIGTERM, not healthy in time).
    pub(super) problems: Vec<String>,
}

impl<'a> Workers<'a> {
    pub(super) async fn start(target: Target<'a>, logs: &'a LogDir) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client for /healthz and /metrics");
        let mut workers =
            Self { target, logs, http, slots: Vec::new(), started: 0, gone: BTreeMap::new(), problems: Vec::new() };
        for _ in 0..2 {
            let worker = workers.spawn().await;
            workers.slots.push(worker);
        }
        workers
    }

    /// Starts a worker and waits (bounded) until it serves `/healthz`.
    async fn spawn(&mut self) -> WorkerProcess {
        self.started += 1;
        let name = format!("worker-{:02}.log", self.started);
        let mut worker = spawn_process(self.target, &WORKER_VARS, Some(&self.logs.file(&name)));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let url = format!("http://{}/healthz", worker.addr);
            if self.http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return worker;
            }
            if let Ok(Some(status)) = worker.child.try_wait() {
                self.problems.push(format!("{name}: exited during start-up: {status}"));
                return worker;
            }
            if Instant::now() > deadline {
                self.problems.push(format!("{name}: not healthy within 60 s of its start"));
                return worker;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sums [`COUNTERS`] from one worker's `/metrics`.
    async fn scrape(&self, addr: SocketAddr) -> BTreeMap<String, f64> {
        let mut sums = BTreeMap::new();
        let Ok(response) = self.http.get(format!("http://{addr}/metrics")).send().await else { return sums };
        let Ok(text) = response.text().await else { return sums };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let family = series.split('{').next().unwrap_or_default();
            if COUNTERS.contains(&family) {
                *sums.entry(family.to_owned()).or_default() += value.parse::<f64>().unwrap_or(0.0);
            }
        }
        sums
    }

    /// The counters of every worker that ran, live or gone.
    pub(super) async fn totals(&self) -> BTreeMap<String, f64> {
        let mut totals = self.gone.clone();
        for worker in &self.slots {
            for (name, value) in self.scrape(worker.addr).await {
                *totals.entry(name).or_default() += value;
            }
        }
        totals
    }

    /// Replaces any worker that exited by itself, recording that it did.
    pub(super) async fn check(&mut self) {
        for i in 0..self.slots.len() {
            if let Ok(Some(status)) = self.slots[i].child.try_wait() {
                self.problems.push(format!("worker in slot {i} exited by itself: {status}"));
                self.slots[i] = self.spawn().await;
            }
        }
    }

    /// Stops the worker in `slot` (SIGKILL, or SIGTERM and waits for its
    /// drain) and starts a new one in its place.
    pub(super) async fn replace(&mut self, slot: usize, kill: bool) {
        let addr = self.slots[slot].addr;
        for (name, value) in self.scrape(addr).await {
            *self.gone.entry(name).or_default() += value;
        }
        let child = &mut self.slots[slot].child;
        if kill {
            child.start_kill().expect("SIGKILL");
            let _ = child.wait().await;
        } else {
            let pid = child.id().expect("running");
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            // The binary's default drain timeout is 20 s.
            match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(status) => self.problems.push(format!("worker {addr} on SIGTERM: {status:?}, not a clean exit")),
                Err(_) => {
                    self.problems.push(format!("worker {addr} still running 30 s after SIGTERM; killed"));
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
            }
        }
        self.slots[slot] = self.spawn().await;
    }

    /// SIGTERM to every worker, each expected to exit 0 within 30 s (its
    /// drain timeout, 20 s, and a margin: a machine running other tests
    /// beside the soak is slow).
    pub(super) async fn stop_all(&mut self) {
        for worker in &mut self.slots {
            if let Some(pid) = worker.child.id() {
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
        }
        for worker in &mut self.slots {
            match tokio::time::timeout(Duration::from_secs(30), worker.child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                other => self.problems.push(format!("worker {} at the end on SIGTERM: {other:?}", worker.addr)),
            }
        }
    }
}
