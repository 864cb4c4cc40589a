//! `hookline-bench rate-limit`: the others' throughput while a rate-limited
//! webhook's burst drains at its limit, against the same load after the
//! same burst went to the same webhook without a limit (all delivered
//! before the load starts), in interleaved runs on fresh stacks.
//!
//! The limited webhook (`rateLimit` = `--limit`) is sent `--limited-events`
//! events at full speed, and the measured load (fan-out 1, `--events`
//! events at full speed, to webhooks of its own) starts once every one of
//! the burst's deliveries is recorded and settled: delivered, queued at the
//! limit, or released from the queue (not while the burst's messages are
//! still on their way to the queue).
//! The load is therefore measured while the queue drains beside it, which
//! at the defaults (50/s, 5,000 events) takes about 100 s: longer than the
//! load. The burst's own ingest is not in the measured window; what is, is
//! what the limiter and the drain cost everyone else. Afterwards the
//! benchmark waits for the burst to drain and counts its requests per
//! wall-clock second at the receiver.

use std::path::PathBuf;

use anyhow::Context;

use crate::{
    measure::{RunOptions, run_scenario},
    outcome::Outcome,
    receiver::Placement,
    report::Spread,
    scenario::{Limited, Scenario},
};

#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) per_sec: u32,
    pub(crate) limited_events: usize,
    pub(crate) events: usize,
    pub(crate) runs: u32,
    pub(crate) placement: Placement,
    pub(crate) out: PathBuf,
}

/// Runs both arms `runs` times (alternating which goes first) and prints
/// and saves min / median / max of each.
pub(crate) async fn compare(args: Args) -> anyhow::Result<()> {
    let Args { per_sec, limited_events, events, runs, placement, out } = args;
    let beside = Scenario {
        phase: "beside a limited burst draining",
        limited: Some(Limited { per_sec, events: limited_events, limit: true }),
        ..Scenario::new("rate-limit", events)
    };
    let alone = Scenario {
        phase: "burst delivered before, no limit",
        limited: Some(Limited { per_sec, events: limited_events, limit: false }),
        ..beside.clone()
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failures = Vec::new();
    for run in 1..=runs {
        let order = if run % 2 == 1 { [&alone, &beside] } else { [&beside, &alone] };
        for scenario in order {
            let title = scenario.title();
            eprintln!("{title}, run {run} of {runs} …");
            let options = RunOptions {
                placement,
                log_dir: out.join("logs").join(format!("{}-run{run}", scenario.slug())),
                run,
                raw_rate: 1.0,
                backlog: None,
            };
            let outcome = run_scenario(scenario, &options).await.with_context(|| format!("{title}, run {run}"))?;
            failures.extend(crate::check(&format!("{title} (run {run})"), &outcome));
            if let Some(l) = outcome.limited {
                eprintln!(
                    "  limited: {} of {} delivered, {} duplicates, at most {} in a second (median {}), {} seconds over {}, drained in {:.1} s",
                    l.delivered,
                    l.expected,
                    l.duplicates,
                    l.max_in_a_second,
                    l.median_in_a_second,
                    l.seconds_over_limit,
                    l.per_sec,
                    l.drain_seconds
                );
                if l.delivered < l.expected || l.duplicates > 0 || l.seconds_over_limit > 0 {
                    failures.push(format!(
                        "{title} (run {run}): limited webhook {} of {} delivered, {} duplicated, {} seconds over the limit",
                        l.delivered, l.expected, l.duplicates, l.seconds_over_limit
                    ));
                }
            }
            outcomes.push(outcome);
        }
    }
    let md = markdown(&outcomes, &alone, &beside, runs, placement);
    println!("{md}");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json = serde_json::json!({ "runs": runs, "receiver": placement, "outcomes": outcomes });
    std::fs::write(out.join("rate-limit.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(out.join("rate-limit.md"), &md)?;
    anyhow::ensure!(failures.is_empty(), "failed: {}", failures.join("; "));
    Ok(())
}

/// The two arms' figures and the per-run ratios, as Markdown.
fn markdown(outcomes: &[Outcome], alone: &Scenario, beside: &Scenario, runs: u32, placement: Placement) -> String {
    let arm = |s: &Scenario| -> Vec<&Outcome> { outcomes.iter().filter(|o| o.scenario.title() == s.title()).collect() };
    let (a, b) = (arm(alone), arm(beside));
    let receiver = match placement {
        Placement::Process => "in its own process",
        Placement::InProcess => "inside the benchmark's process",
    };
    let mut md = format!(
        "{runs} run(s) per arm, interleaved, each on a fresh stack; services at their defaults; receiver {receiver}. \
         Min / median / max over the runs.\n\n\
         | others' load ({} events, fan-out 1, full speed) | deliveries/s | p50 ms | p99 ms | CPU s / 1k deliveries |\n\
         |---|---|---|---|---|\n",
        beside.events
    );
    for (name, runs) in [("the burst delivered before, no limit", &a), ("beside the limited burst draining", &b)] {
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            Spread::of(runs.iter().map(|o| o.deliveries_per_sec)).show(0),
            Spread::of(runs.iter().map(|o| o.delivery_latency.p50_ms)).show(1),
            Spread::of(runs.iter().map(|o| o.delivery_latency.p99_ms)).show(1),
            Spread::of(runs.iter().map(|o| o.cpu_per_1k_deliveries.unwrap_or(f64::NAN))).show(3),
        ));
    }
    let ratios: Vec<f64> = a
        .iter()
        .filter_map(|alone| {
            let beside = b.iter().find(|o| o.run == alone.run)?;
            Some(beside.deliveries_per_sec / alone.deliveries_per_sec.max(1e-9))
        })
        .collect();
    md.push_str(&format!(
        "\nDeliveries/s beside ÷ alone, run by run: {} (min / median / max {}).\n",
        ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", "),
        Spread::of(ratios.iter().copied()).show(3)
    ));
    let limited: Vec<_> = b.iter().filter_map(|o| o.limited).collect();
    if let Some(first) = limited.first() {
        md.push_str(&format!(
            "\nThe limited webhook ({}/s, a burst of {}): delivered {}; duplicates {}; delivered before the load \
             started {}; requests in one second at most {} (median of its full seconds {}); seconds over the limit \
             {}; drained in {} s.\n",
            first.per_sec,
            first.expected,
            Spread::of(limited.iter().map(|l| l.delivered as f64)).show(0),
            Spread::of(limited.iter().map(|l| l.duplicates as f64)).show(0),
            Spread::of(limited.iter().map(|l| l.delivered_before_load as f64)).show(0),
            Spread::of(limited.iter().map(|l| l.max_in_a_second as f64)).show(0),
            Spread::of(limited.iter().map(|l| l.median_in_a_second as f64)).show(0),
            Spread::of(limited.iter().map(|l| l.seconds_over_limit as f64)).show(0),
            Spread::of(limited.iter().map(|l| l.drain_seconds)).show(1),
        ));
    }
    md
}
