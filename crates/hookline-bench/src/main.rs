//! `hookline-bench`: measures Hookline on this machine, against the local
//! Postgres and RabbitMQ, with the release producer and worker binaries as
//! separate processes at their default settings, a receiver in its own
//! process and a load generator on loopback.
//!
//! `hookline-bench run` runs every scenario (or those named with
//! `--scenario`) `--runs` times, each run on a fresh stack, and prints and
//! saves (JSON and Markdown) per scenario: ingest requests/s and latency,
//! deliveries/s end to end, ingest → delivery latency percentiles, CPU
//! seconds of each service, of Postgres and of RabbitMQ (and per 1,000
//! deliveries), peak RSS of each process, rows written, and Hookline's rate
//! as a fraction of the raw RabbitMQ publish+consume rate measured in the
//! same round; Markdown shows each figure as min / median / max over the
//! runs. A run that loses or duplicates a delivery fails.
//! `hookline-bench fairness` measures healthy webhooks' latency with and
//! without a hanging one beside them. `hookline-bench retention` measures
//! the fan-out-1 load while retention removes a large backlog of old rows
//! against the same load with the backlog kept, and the tables' sizes
//! around the removal. `hookline-bench rate-limit` measures the same load
//! while a rate-limited webhook's burst drains beside it, against the load
//! after the same burst went through unlimited. `hookline-bench receive` is the receiver's own
//! process (started by the others).
//!
//! A scenario's measured webhooks may have slow endpoints beside them
//! ([`scenario::Beside`], possibly another account's), answering after
//! `hang_ms`: those deliveries are counted (requested, answered,
//! duplicated), not waited for. `slow-tenant` runs first without that load
//! (`alone`) so the measured p99 can be compared; `memory` stops at a time
//! box and reports the worker's peak RSS.
//!
//! Each scenario uses a fresh database (`hookline_bench_…`, dropped after)
//! and broker namespace.
//!
//! # Layout
//!
//! - `scenario`: what each scenario does; `load`: sending events;
//!   `receiver`: the webhook receiver, server and client.
//! - `stack`: the services as processes; `cpu`: `/proc` readings.
//! - `measure`: one run of one scenario; `outcome`: what it measured;
//!   `report`: min / median / max over runs, `results.md`.
//! - `baseline`: raw RabbitMQ publish+consume.
//! - `retention`: the backlog beside the load, and `hookline-bench
//!   retention`.
//! - `ratelimit`: `hookline-bench rate-limit`.

mod baseline;
mod cpu;
mod load;
mod measure;
mod outcome;
mod ratelimit;
mod receiver;
mod report;
mod retention;
mod scenario;
mod stack;

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Parser;
use measure::{RunOptions, run_scenario};
use outcome::Outcome;
use receiver::{Behaviour, Placement};
use report::RawRates;
use scenario::{Beside, Pace, Scenario};

#[derive(Debug, Parser)]
#[command(name = "hookline-bench", about = "Measure Hookline on this machine")]
enum Cli {
    /// Runs the scenarios and saves the results.
    Run {
        /// Only these scenarios (repeatable); all when none is given.
        #[arg(long = "scenario")]
        scenarios: Vec<String>,
        /// Events in the full-speed scenarios.
        #[arg(long, default_value_t = 30_000)]
        events: usize,
        /// Seconds of the fixed-rate scenarios (`rate-*`, `slow-tenant`).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Runs of each scenario (each on a fresh stack); figures are
        /// reported as min / median / max over them.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// Where the receiver runs: its own process, or inside the
        /// benchmark (beside the load generator, for comparison).
        #[arg(long, value_enum, default_value_t = Placement::Process)]
        receiver: Placement,
        /// Where the JSON and Markdown results and the logs go.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// Healthy webhooks' latency with and without one hanging endpoint.
    Fairness {
        /// Healthy webhooks.
        #[arg(long, default_value_t = 10)]
        healthy: u32,
        /// Events per healthy webhook.
        #[arg(long, default_value_t = 1000)]
        events: usize,
        /// Events to the hanging webhook.
        #[arg(long, default_value_t = 1000)]
        slow_events: usize,
        /// How long the hanging endpoint takes to answer, in ms.
        #[arg(long, default_value_t = 10_000)]
        hang_ms: u64,
        /// Events ingested per second (all webhooks together).
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Where the receiver runs.
        #[arg(long, value_enum, default_value_t = Placement::Process)]
        receiver: Placement,
        /// Where the logs go.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// The fan-out-1 load while retention removes a large backlog of old
    /// rows, against the same load beside the backlog kept; and the
    /// tables' sizes before and after the removal and after as many rows
    /// again.
    Retention {
        /// Old events written before the load (each with a delivery and an
        /// attempt).
        #[arg(long, default_value_t = 1_000_000)]
        backlog: u64,
        /// Events of the load.
        #[arg(long, default_value_t = 30_000)]
        events: usize,
        /// Runs of each arm, interleaved.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// Where the receiver runs.
        #[arg(long, value_enum, default_value_t = Placement::Process)]
        receiver: Placement,
        /// Where the results and the logs go.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// The others' throughput while a rate-limited webhook's burst drains
    /// at its limit, against the same load after the same burst went
    /// through unlimited.
    RateLimit {
        /// The limited webhook's `rateLimit` (requests per second).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Events of the limited webhook's burst.
        #[arg(long, default_value_t = 5_000)]
        limited_events: usize,
        /// Events of the measured load (fan-out 1, full speed).
        #[arg(long, default_value_t = 30_000)]
        events: usize,
        /// Runs of each arm, interleaved.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// Where the receiver runs.
        #[arg(long, value_enum, default_value_t = Placement::Process)]
        receiver: Placement,
        /// Where the results and the logs go.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// The receiver's own process (started by `run` and `fairness`).
    #[command(hide = true)]
    Receive {
        /// Loopback port to listen on.
        #[arg(long)]
        port: u16,
        /// Fail (500) the first request of every n-th event (0: never).
        #[arg(long, default_value_t = 0)]
        fail_every: u64,
        /// How long the slow URLs take to answer, in ms.
        #[arg(long, default_value_t = 0)]
        hang_ms: u64,
    },
}

/// Measures the raw RabbitMQ rates for round `run`.
async fn raw_rates(run: u32) -> anyhow::Result<RawRates> {
    eprintln!("measuring raw RabbitMQ publish+consume…");
    let classic = baseline::rabbitmq_rate("classic", 50_000).await.context("raw RabbitMQ rate")?;
    let quorum = baseline::rabbitmq_rate("quorum", 50_000).await.context("raw RabbitMQ rate")?;
    eprintln!("  classic {classic:.0} msg/s, quorum {quorum:.0} msg/s");
    Ok(RawRates { run, classic, quorum })
}

/// Prints one run's figures and returns what makes it fail, if anything.
fn check(title: &str, outcome: &Outcome) -> Option<String> {
    eprintln!(
        "  {:.0} deliveries/s, p50 / p95 / p99 / max {:.1} / {:.1} / {:.1} / {:.1} ms, lost {}{}, duplicates {}, \
         CPU s / 1k deliveries {:.2} (producer {:.2}, workers {:.2}, Postgres {:.2}, RabbitMQ {:.2}), worker peak RSS {:.0} MiB",
        outcome.deliveries_per_sec,
        outcome.delivery_latency.p50_ms,
        outcome.delivery_latency.p95_ms,
        outcome.delivery_latency.p99_ms,
        outcome.delivery_latency.max_ms,
        outcome.lost,
        if outcome.stopped_at_time_box { " (unfinished at the time box)" } else { "" },
        outcome.duplicates,
        outcome.cpu_per_1k_deliveries.unwrap_or(f64::NAN),
        outcome.cpu.producer,
        outcome.cpu.workers,
        outcome.cpu.postgres,
        outcome.cpu.rabbitmq,
        outcome.worker_peak_rss_mib(),
    );
    if let Some(c) = outcome.slow {
        eprintln!(
            "  slow endpoints: {} of {} deliveries requested, {} answered, duplicates {}",
            c.requested, c.expected, c.answered, c.duplicates
        );
    }
    // Deliveries not finished within a time box are reported, not failed; a
    // duplicate always fails.
    let lost = if outcome.scenario.time_box_secs.is_some() { 0 } else { outcome.lost };
    let slow_duplicates = outcome.slow.map_or(0, |c| c.duplicates);
    (lost > 0 || outcome.duplicates > 0 || slow_duplicates > 0).then(|| {
        format!(
            "{title}: lost {}, duplicated {}, slow endpoints' duplicated {slow_duplicates}",
            outcome.lost, outcome.duplicates
        )
    })
}

#[derive(Debug)]
struct RunArgs {
    names: Vec<String>,
    events: usize,
    seconds: u64,
    runs: u32,
    placement: Placement,
    out: PathBuf,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let RunArgs { names, events, seconds, runs, placement, out } = args;
    let all = scenario::scenarios(events, seconds);
    let known: Vec<&str> = all.iter().map(|s| s.name).collect();
    let known = known.join(", ");
    let selected: Vec<Scenario> =
        all.into_iter().filter(|s| names.is_empty() || names.iter().any(|n| n == s.name)).collect();
    anyhow::ensure!(!selected.is_empty(), "no such scenario; known: {known}");
    let phases: Vec<Scenario> = selected
        .iter()
        .flat_map(|s| if s.compare_alone { vec![s.alone(), s.clone()] } else { vec![s.clone()] })
        .collect();
    let mut raw = Vec::new();
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    // Rounds: every scenario once, then again, so a busy spell of the
    // machine spreads over scenarios instead of sinking one.
    for run in 1..=runs {
        let rates = raw_rates(run).await?;
        raw.push(rates);
        for scenario in &phases {
            let title = scenario.title();
            eprintln!("scenario {title}, run {run} of {runs} …");
            let options = RunOptions {
                placement,
                log_dir: out.join("logs").join(format!("{}-run{run}", scenario.slug())),
                run,
                raw_rate: rates.quorum,
                backlog: None,
            };
            match run_scenario(scenario, &options).await {
                Ok(outcome) => {
                    failures.extend(check(&format!("{title} (run {run})"), &outcome));
                    outcomes.push(outcome);
                }
                Err(e) => failures.push(format!("{title} (run {run}): {e:#}")),
            }
        }
    }
    let md = report::markdown(&outcomes, &raw, placement, runs);
    println!("{md}");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json = serde_json::json!({
        "runs": runs,
        "receiver": placement,
        "rabbitmq_raw_per_sec": raw,
        "summaries": report::summaries(&outcomes),
        "p99_ratios": report::comparisons(&outcomes),
        "outcomes": outcomes,
    });
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(out.join("results.md"), &md)?;
    eprintln!("saved {} (logs in {})", out.join("results.{json,md}").display(), out.join("logs").display());
    anyhow::ensure!(failures.is_empty(), "failed: {}", failures.join("; "));
    Ok(())
}

#[derive(Debug)]
struct FairnessArgs {
    healthy: u32,
    events: usize,
    slow_events: usize,
    hang_ms: u64,
    rate: u32,
    placement: Placement,
    out: PathBuf,
}

async fn fairness(args: FairnessArgs) -> anyhow::Result<()> {
    let FairnessArgs { healthy, events, slow_events, hang_ms, rate, placement, out } = args;
    let base = Scenario {
        fanout: healthy,
        separate: true,
        pace: Pace::Rate { per_sec: rate },
        hang_ms,
        beside: Some(Beside::hanging(0)),
        ..Scenario::new("alone", events * healthy as usize)
    };
    let beside =
        Scenario { name: "beside a hanging endpoint", beside: Some(Beside::hanging(slow_events)), ..base.clone() };
    let options = |scenario: &Scenario| RunOptions {
        placement,
        log_dir: out.join("logs").join(format!("fairness-{}", scenario.slug())),
        run: 1,
        raw_rate: 1.0,
        backlog: None,
    };
    eprintln!("fairness: {healthy} healthy webhooks × {events} events at {rate}/s; alone…");
    let alone = run_scenario(&base, &options(&base)).await?;
    eprintln!("…and beside a webhook hanging {hang_ms} ms on each of {slow_events} events…");
    let with = run_scenario(&beside, &options(&beside)).await?;
    println!("| healthy deliveries | n | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (name, o) in [("alone", &alone), ("beside a hanging endpoint", &with)] {
        let l = o.delivery_latency;
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            o.deliveries, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
        );
    }
    let ratio = with.delivery_latency.p99_ms / alone.delivery_latency.p99_ms.max(1e-9);
    println!("\np99 ratio (beside / alone): {ratio:.2} (target: at most 2)");
    Ok(())
}

/// The receiver process: serves until killed, or until the benchmark that
/// started it is gone (its parent changes).
async fn receive(port: u16, behaviour: Behaviour) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding the receiver to 127.0.0.1:{port}"))?;
    let parent = std::os::unix::process::parent_id();
    let orphaned = async move {
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        served = receiver::serve(listener, behaviour) => served,
        () = orphaned => Ok(()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Run { scenarios, events, seconds, runs, receiver, out } => {
            run(RunArgs { names: scenarios, events, seconds, runs, placement: receiver, out }).await
        }
        Cli::Fairness { healthy, events, slow_events, hang_ms, rate, receiver, out } => {
            fairness(FairnessArgs { healthy, events, slow_events, hang_ms, rate, placement: receiver, out }).await
        }
        Cli::Retention { backlog, events, runs, receiver, out } => {
            retention::compare(retention::CompareArgs { backlog, events, runs, placement: receiver, out }).await
        }
        Cli::RateLimit { limit, limited_events, events, runs, receiver, out } => {
            ratelimit::compare(ratelimit::Args {
                per_sec: limit,
                limited_events,
                events,
                runs,
                placement: receiver,
                out,
            })
            .await
        }
        Cli::Receive { port, fail_every, hang_ms } => {
            receive(port, Behaviour { fail_every, hang: Duration::from_millis(hang_ms) }).await
        }
    }
}
