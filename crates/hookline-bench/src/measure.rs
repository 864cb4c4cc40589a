//! One run of one scenario: a receiver and a fresh stack, the webhooks, the
//! load, the wait for every measured delivery, the correctness checks
//! (lost, duplicated, attempts recorded against requests seen), and the CPU
//! every part spent in between.

use std::{
    ops::Range,
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{
    cpu::{self, Servers, Snapshot},
    load::{EventSpec, drive},
    outcome::{CpuSeconds, LimitedCounts, Outcome, Rows, SlowCounts, Usage, percentiles},
    receiver::{Behaviour, Placement, Receiver, unix_nanos},
    retention::{self, Backlog},
    scenario::{Limited, Pace, Scenario, Source},
    stack::{KEY, Stack, StackOptions},
};

/// How a run is made, beyond the scenario.
#[derive(Debug, Clone)]
pub(crate) struct RunOptions {
    pub(crate) placement: Placement,
    /// Where the services' and receiver's logs go.
    pub(crate) log_dir: PathBuf,
    /// Which of the repeated runs this is (1-based).
    pub(crate) run: u32,
    /// The raw quorum-queue rate to compare deliveries/s with.
    pub(crate) raw_rate: f64,
    /// Old rows written before the load (`hookline-bench retention`).
    pub(crate) backlog: Option<Backlog>,
}

/// The receiver's webhook number for the rate-limited webhook: after the
/// measured (`0..fanout`) and slow ones, before the backlog's (`+ 999`).
const LIMITED_OFFSET: u32 = 998;

/// The rate-limited burst's event indexes (and ids, `e{index}`) start here,
/// far from the measured events'.
const LIMITED_FIRST_EVENT: u64 = 1_000_000_000;

struct NewWebhook<'a> {
    name: &'a str,
    url: &'a str,
    filter: &'a str,
    tenant: Option<&'a str>,
    rate_limit: Option<u32>,
}

async fn create_webhook(http: &reqwest::Client, stack: &Stack, webhook: NewWebhook<'_>) -> anyhow::Result<()> {
    let NewWebhook { name, url, filter, tenant, rate_limit } = webhook;
    let mut body = serde_json::json!({
        "name": name, "url": url, "token": "bench-token-0123456789", "events": [filter]
    });
    if let Some(tenant) = tenant {
        body["tenant"] = tenant.into();
    }
    if let Some(limit) = rate_limit {
        body["rateLimit"] = limit.into();
    }
    let response = http.post(format!("http://{}/v1/webhooks", stack.api)).bearer_auth(KEY).json(&body).send().await?;
    anyhow::ensure!(response.status() == 201, "create webhook: {}", response.status());
    Ok(())
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> anyhow::Result<i64> {
    Ok(db.query_one(sql, &[]).await?.get(0))
}

/// The order events are sent in: slow events (indexes from `healthy`)
/// spread evenly among the healthy ones.
fn interleave(healthy: usize, slow: usize) -> Vec<u64> {
    let total = healthy + slow;
    let mut order = Vec::with_capacity(total);
    let (mut h, mut s) = (0u64, healthy as u64);
    for k in 0..total {
        let slow_turn = slow > 0 && (k * slow / total) != ((k + 1) * slow / total);
        if slow_turn {
            order.push(s);
            s += 1;
        } else {
            order.push(h);
            h += 1;
        }
    }
    order
}

/// The processes whose CPU a run measures.
#[derive(Debug, Clone)]
struct Pids {
    servers: Servers,
    producer: Option<u32>,
    workers: Vec<Option<u32>>,
    receiver: Option<u32>,
    benchmark: u32,
}

impl Pids {
    fn snapshot(&self) -> Snapshot {
        let singles = [self.producer, self.receiver].into_iter().chain(self.workers.iter().copied()).flatten();
        Snapshot::take(&self.servers, singles.chain([self.benchmark]))
    }

    fn usage(&self, pid: Option<u32>, before: &Snapshot, after: &Snapshot) -> Usage {
        pid.map(|pid| Usage { cpu_seconds: after.since(before, pid), peak_rss_mib: cpu::peak_rss_mib(pid) })
            .unwrap_or_default()
    }
}

/// Runs one scenario from start to stop.
pub(crate) async fn run_scenario(scenario: &Scenario, options: &RunOptions) -> anyhow::Result<Outcome> {
    let behaviour = Behaviour { fail_every: scenario.fail_every, hang: Duration::from_millis(scenario.hang_ms) };
    std::fs::create_dir_all(&options.log_dir)?;
    let receiver = Receiver::start(options.placement, behaviour, &options.log_dir.join("receiver.log")).await?;
    let stack = Stack::start(&StackOptions {
        workers: scenario.workers,
        retry_schedule: scenario.retry_schedule.map(str::to_owned),
        log_dir: options.log_dir.clone(),
        env: options.backlog.map(|b| b.env()).unwrap_or_default(),
    })
    .await?;
    let http = reqwest::Client::new();
    // Measured webhooks are receiver webhooks `0..fanout` (named `w…`),
    // those beside come after them (named `beside…`).
    let fanout = scenario.fanout;
    let separate = scenario.separate;
    for w in 0..fanout {
        let filter = if separate { format!("h{w}.created") } else { scenario.filter.to_owned() };
        let url = if scenario.slow { receiver.slow_url(w) } else { receiver.url(w) };
        let name = format!("w{w}");
        let webhook = NewWebhook { name: &name, url: &url, filter: &filter, tenant: scenario.tenant, rate_limit: None };
        create_webhook(&http, &stack, webhook).await?;
    }
    let beside_webhooks = fanout..fanout + scenario.beside.as_ref().map_or(0, |b| b.webhooks);
    if let Some(beside) = &scenario.beside {
        for w in beside_webhooks.clone() {
            let url = receiver.slow_url(w);
            let name = format!("beside{w}");
            let webhook =
                NewWebhook { name: &name, url: &url, filter: beside.filter, tenant: beside.tenant, rate_limit: None };
            create_webhook(&http, &stack, webhook).await?;
        }
    }

    let prepared = match options.backlog {
        Some(backlog) => {
            // Its rows belong to a webhook of their own, subscribed to
            // nothing the load sends (`beside…`: left out of the checks).
            let url = receiver.url(fanout + 999);
            let webhook = NewWebhook {
                name: "beside-backlog",
                url: &url,
                filter: "backlog.none",
                tenant: None,
                rate_limit: None,
            };
            create_webhook(&http, &stack, webhook).await?;
            Some(retention::prepare(&stack, backlog).await?)
        }
        None => None,
    };

    let limited_webhook = fanout + LIMITED_OFFSET;
    let limited_before_load = match scenario.limited {
        Some(limited) => Some(send_limited_burst(&http, &stack, &receiver, scenario, limited, limited_webhook).await?),
        None => None,
    };

    let healthy_events = scenario.events;
    let total = healthy_events + scenario.beside.as_ref().map_or(0, |b| b.events);
    let order = interleave(healthy_events, total - healthy_events);
    let pids = Pids {
        servers: Servers::find(),
        producer: stack.producer_pid(),
        workers: stack.worker_pids(),
        receiver: receiver.pid(),
        benchmark: std::process::id(),
    };
    let before = pids.snapshot();
    let window_started = Instant::now();
    let (sent, ingest_took) = drive(&stack, scenario, total, |k| {
        let index = order[k];
        match &scenario.beside {
            Some(beside) if index >= healthy_events as u64 => {
                EventSpec { event_type: beside.event_type.to_owned(), index, tenant: beside.tenant }
            }
            _ if separate => EventSpec {
                event_type: format!("h{}.created", index % u64::from(fanout.max(1))),
                index,
                tenant: scenario.tenant,
            },
            _ => EventSpec { event_type: scenario.event_type.to_owned(), index, tenant: scenario.tenant },
        }
    })
    .await?;
    // `sent.at` is by position in `order`; map it back to event indexes.
    let mut sent_at = vec![None; total];
    for (k, at) in sent.at.iter().enumerate() {
        sent_at[usize::try_from(order[k]).unwrap_or(0)] = *at;
    }
    let first_sent = sent_at.iter().flatten().min().copied().unwrap_or_else(unix_nanos);

    // Which (event, webhook) pairs must arrive.
    let expected: Vec<(u64, u32)> = (0..healthy_events as u64)
        .flat_map(|i| {
            if separate {
                vec![(i, u32::try_from(i % u64::from(fanout.max(1))).unwrap_or(0))]
            } else {
                (0..fanout).map(|w| (i, w)).collect()
            }
        })
        .collect();
    let want = expected.len() as u64;
    let stopped_at_time_box = wait_for(&receiver, 0..fanout, want, scenario, first_sent).await?;
    let arrivals = receiver.arrivals().await?;
    let mut latencies = Vec::with_capacity(expected.len());
    let mut lost = 0;
    let mut duplicates = 0;
    let mut requests = 0u64;
    let mut last = first_sent;
    for key in &expected {
        match arrivals.get(key) {
            Some(arrival) => {
                let planned_failures = u32::from(scenario.fail_every > 0 && key.0 % scenario.fail_every == 0);
                duplicates += u64::from(arrival.requests.saturating_sub(1 + planned_failures));
                requests += u64::from(arrival.requests);
                match (arrival.delivered_at, sent_at[usize::try_from(key.0).unwrap_or(0)]) {
                    (Some(at), Some(sent)) => {
                        latencies.push(Duration::from_nanos(at.saturating_sub(sent)));
                        last = last.max(at);
                    }
                    (None, _) => lost += 1,
                    (Some(_), None) => {}
                }
            }
            None => lost += 1,
        }
    }
    let delivered = want - lost;
    let slow = match &scenario.beside {
        Some(beside) => {
            Some(SlowCounts::count(&arrivals, beside_webhooks, beside.events as u64 * u64::from(beside.webhooks)))
        }
        None if scenario.slow => Some(SlowCounts::count(&arrivals, 0..fanout, want)),
        None => None,
    };

    // Every attempt made to a measured webhook is recorded: when they answer
    // at once, as many as requests arrived; when they are slow, at least the
    // requests answered before and at most those arrived by now (the others
    // are recorded once answered).
    let db = stack.db().await?;
    let measured_attempts = "SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
                             JOIN webhooks w ON w.id = d.webhook_id WHERE w.name NOT LIKE 'beside%'";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recorded = u64::try_from(count(&db, measured_attempts).await?).unwrap_or(0);
        let (ok, wanted) = if scenario.slow {
            let arrived = receiver.requests(0..fanout).await?;
            (delivered <= recorded && recorded <= arrived, format!("{delivered} to {arrived}"))
        } else {
            (recorded == requests, requests.to_string())
        };
        if ok {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{}: {wanted} attempts expected but {recorded} are recorded",
            scenario.title()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = pids.snapshot();
    let window_seconds = window_started.elapsed().as_secs_f64();
    let limited = match (scenario.limited, limited_before_load) {
        (Some(limited), Some(before_load)) if limited.limit => {
            Some(wait_for_limited(&receiver, limited, limited_webhook, before_load, scenario).await?)
        }
        _ => None,
    };
    let producer = pids.usage(pids.producer, &before, &after);
    let workers: Vec<Usage> = pids.workers.iter().map(|&pid| pids.usage(pid, &before, &after)).collect();
    let receiver_usage = pids.receiver.is_some().then(|| pids.usage(pids.receiver, &before, &after));
    let postgres = (after.postgres - before.postgres).max(0.0);
    let rabbitmq = (after.rabbitmq - before.rabbitmq).max(0.0);
    let workers_cpu: f64 = workers.iter().map(|w| w.cpu_seconds).sum();
    let hookline = producer.cpu_seconds + workers_cpu + postgres + rabbitmq;
    let cpu = CpuSeconds {
        producer: producer.cpu_seconds,
        workers: workers_cpu,
        postgres,
        rabbitmq,
        hookline,
        receiver: receiver_usage.map(|r| r.cpu_seconds),
        benchmark: after.since(&before, pids.benchmark),
    };

    let rows = Rows {
        events: count(&db, "SELECT count(*) FROM events").await?,
        deliveries: count(&db, "SELECT count(*) FROM deliveries").await?,
        attempts: count(&db, "SELECT count(*) FROM attempts").await?,
        bytes: retention::Sizes::read(&db).await?.total(),
    };
    drop(db);
    let retention = match prepared {
        Some(prepared) => Some(retention::finish(&stack, prepared).await?),
        None => None,
    };
    stack.stop().await?;
    receiver.stop().await?;

    let span = Duration::from_nanos(last.saturating_sub(first_sent)).as_secs_f64().max(1e-9);
    let deliveries_per_sec = delivered as f64 / span;
    Ok(Outcome {
        scenario: scenario.clone(),
        run: options.run,
        events_sent: total,
        deliveries: delivered,
        ingest_per_sec: total as f64 / ingest_took.as_secs_f64().max(1e-9),
        ingest_latency: percentiles(sent.ingest),
        deliveries_per_sec,
        delivery_latency: percentiles(latencies),
        producer,
        workers,
        receiver: receiver_usage,
        window_seconds,
        servers: pids.servers.clone(),
        cpu,
        cpu_per_1k_deliveries: (delivered > 0).then(|| hookline / delivered as f64 * 1000.0),
        rows,
        lost,
        duplicates,
        stopped_at_time_box,
        slow,
        rabbitmq_raw_per_sec: options.raw_rate,
        fraction_of_raw: deliveries_per_sec / options.raw_rate.max(1e-9),
        retention,
        limited,
    })
}

/// Creates the rate-limited webhook, sends its burst and waits until every
/// delivery of it is recorded and settled (delivered, queued at the limit
/// or released from the queue; all delivered when it has no limit);
/// returns how many had been delivered by then.
async fn send_limited_burst(
    http: &reqwest::Client,
    stack: &Stack,
    receiver: &Receiver,
    scenario: &Scenario,
    limited: Limited,
    webhook: u32,
) -> anyhow::Result<u64> {
    let url = receiver.url(webhook);
    let new = NewWebhook {
        name: "beside-limited",
        url: &url,
        filter: "limited.created",
        tenant: scenario.tenant,
        rate_limit: limited.limit.then_some(limited.per_sec),
    };
    create_webhook(http, stack, new).await?;
    let burst = Scenario {
        pace: Pace::FullSpeed { concurrency: 64 },
        source: Source::Http,
        ..Scenario::new("limited burst", limited.events)
    };
    drive(stack, &burst, limited.events, |k| EventSpec {
        event_type: "limited.created".to_owned(),
        index: LIMITED_FIRST_EVENT + k as u64,
        tenant: scenario.tenant,
    })
    .await?;
    let db = stack.db().await?;
    // Recorded, and past the first look: queued at the limit, released,
    // or delivered. A recorded delivery not yet looked at still has its
    // message on its way through the worker (claim, limit, queue), which
    // must not overlap the measured load.
    let settled = "SELECT count(*) FILTER (WHERE d.rate_queued OR d.state <> 'pending' OR d.next_attempt_at IS NOT NULL) \
                   FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE w.name = 'beside-limited'";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = usize::try_from(count(&db, settled).await?).unwrap_or(0);
        if n >= limited.events {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{}: {n} of the limited burst's {} deliveries settled after 60 s",
            scenario.title(),
            limited.events
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !limited.limit {
        // Not limited: the load starts once the burst is all delivered.
        let deadline = Instant::now() + Duration::from_secs(60);
        while receiver.successes(webhook..webhook + 1).await? < limited.events as u64 {
            anyhow::ensure!(Instant::now() < deadline, "{}: the burst was not delivered in 60 s", scenario.title());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    receiver.successes(webhook..webhook + 1).await
}

/// Waits until the rate-limited burst has drained (every delivery answered,
/// or no progress for 30 s) and counts it.
async fn wait_for_limited(
    receiver: &Receiver,
    limited: Limited,
    webhook: u32,
    delivered_before_load: u64,
    scenario: &Scenario,
) -> anyhow::Result<LimitedCounts> {
    let want = limited.events as u64;
    let mut last_progress = (receiver.successes(webhook..webhook + 1).await?, Instant::now());
    while last_progress.0 < want && last_progress.1.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = receiver.successes(webhook..webhook + 1).await?;
        if now != last_progress.0 {
            last_progress = (now, Instant::now());
        }
    }
    if last_progress.0 < want {
        eprintln!("  {}: the limited burst stalled at {} of {want}", scenario.title(), last_progress.0);
    }
    let arrivals = receiver.arrivals().await?;
    Ok(LimitedCounts::count(&arrivals, webhook, limited.per_sec, want, delivered_before_load))
}

/// Waits until `want` pairs of `webhooks` were delivered; returns whether
/// the scenario's time box (counted from `first_sent`) ended the wait first.
/// Fails when nothing arrives for 60 s.
async fn wait_for(
    receiver: &Receiver,
    webhooks: Range<u32>,
    want: u64,
    scenario: &Scenario,
    first_sent: u64,
) -> anyhow::Result<bool> {
    let time_box = scenario.time_box_secs.map(|s| first_sent.saturating_add(s.saturating_mul(1_000_000_000)));
    let mut last_progress = (receiver.successes(webhooks.clone()).await?, Instant::now());
    while last_progress.0 < want {
        if time_box.is_some_and(|end| unix_nanos() >= end) {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = receiver.successes(webhooks.clone()).await?;
        if now != last_progress.0 {
            last_progress = (now, Instant::now());
        }
        anyhow::ensure!(
            last_progress.1.elapsed() < Duration::from_secs(60),
            "{}: stalled at {now} of {want} deliveries",
            scenario.title()
        );
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slow events are spread evenly and every index is sent once.
    #[test]
    fn interleave_spreads_slow_events() {
        let order = interleave(6, 2);
        assert_eq!(order, vec![0, 1, 2, 6, 3, 4, 5, 7]);
        assert_eq!(interleave(3, 0), vec![0, 1, 2]);
    }
}
