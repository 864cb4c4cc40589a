//! What a scenario is (its load, its webhooks, its receiver's behaviour)
//! and the list `hookline-bench run` knows.

use serde::Serialize;

/// How events are sent.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) enum Pace {
    /// As fast as `concurrency` requests in flight allow.
    FullSpeed { concurrency: usize },
    /// At a fixed rate.
    Rate { per_sec: u32 },
}

/// How events enter Hookline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Source {
    Http,
    /// Published straight to the events exchange (with confirms).
    Direct,
}

/// Webhooks beside the measured ones whose endpoints answer after the
/// scenario's `hang_ms`, with events of their own interleaved evenly with
/// the measured events. Their deliveries are counted, not waited for.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Beside {
    /// Webhooks, each subscribed to `filter`.
    pub(crate) webhooks: u32,
    /// Events of type `event_type` (each goes to every one of the webhooks).
    pub(crate) events: usize,
    /// Their account (webhooks and events); `None`: the default one.
    pub(crate) tenant: Option<&'static str>,
    pub(crate) event_type: &'static str,
    pub(crate) filter: &'static str,
}

impl Beside {
    /// One webhook of the default account that hangs, on `events` events.
    pub(crate) fn hanging(events: usize) -> Self {
        Self { webhooks: 1, events, tenant: None, event_type: "slow.created", filter: "slow.created" }
    }
}

/// A webhook beside the measured ones limited to `per_sec` requests a
/// second (`rateLimit`), sent a burst of `events` events of its own
/// (`limited.created`) before the measured load starts: the load is
/// measured while that burst drains at the limit. Without `limit` (the arm
/// to compare with) the webhook has no limit and the load starts once the
/// whole burst is delivered: the same events written before the load, and
/// nothing of them left during it.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Limited {
    pub(crate) per_sec: u32,
    pub(crate) events: usize,
    pub(crate) limit: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    /// Which phase of the scenario this is (`alone`, `beside`), or empty.
    pub(crate) phase: &'static str,
    /// Events to the measured webhooks.
    pub(crate) events: usize,
    /// Measured webhooks.
    pub(crate) fanout: u32,
    /// The measured webhooks' and events' account; `None`: the default one.
    pub(crate) tenant: Option<&'static str>,
    /// The measured events' type, and what every measured webhook subscribes
    /// to (unless `separate`).
    pub(crate) event_type: &'static str,
    pub(crate) filter: &'static str,
    /// Each measured webhook has its own event type (`h{w}.created`) and
    /// each event goes to one of them.
    pub(crate) separate: bool,
    /// Bytes of padding (a string in `data.pad`) in every event.
    pub(crate) payload_bytes: usize,
    pub(crate) pace: Pace,
    pub(crate) source: Source,
    /// Fail the first request of every n-th event (0: none).
    pub(crate) fail_every: u64,
    /// How long slow endpoints take to answer, in ms.
    pub(crate) hang_ms: u64,
    /// The measured webhooks' endpoints are slow too.
    pub(crate) slow: bool,
    /// Slow webhooks beside the measured ones.
    pub(crate) beside: Option<Beside>,
    /// A rate-limited webhook draining its burst beside the measured load.
    pub(crate) limited: Option<Limited>,
    /// Run the scenario first without `beside` (at the measured events'
    /// share of the rate) and report the p99 ratio.
    pub(crate) compare_alone: bool,
    /// Stop waiting for deliveries this many seconds after the first event
    /// was sent; deliveries not finished by then are reported, not failed.
    pub(crate) time_box_secs: Option<u64>,
    /// Worker processes.
    pub(crate) workers: usize,
    /// `HOOKLINE_RETRY_SCHEDULE` for this scenario; `None`: the service's
    /// default.
    pub(crate) retry_schedule: Option<&'static str>,
}

impl Scenario {
    pub(crate) fn new(name: &'static str, events: usize) -> Self {
        Self {
            name,
            phase: "",
            events,
            fanout: 1,
            tenant: None,
            event_type: "bench.created",
            filter: "bench.created",
            separate: false,
            payload_bytes: 0,
            pace: Pace::FullSpeed { concurrency: 64 },
            source: Source::Http,
            fail_every: 0,
            hang_ms: 10_000,
            slow: false,
            beside: None,
            limited: None,
            compare_alone: false,
            time_box_secs: None,
            workers: 1,
            retry_schedule: None,
        }
    }

    /// The name with its phase.
    pub(crate) fn title(&self) -> String {
        if self.phase.is_empty() { self.name.to_owned() } else { format!("{} ({})", self.name, self.phase) }
    }

    /// The title as a file name (for the run's log directory).
    pub(crate) fn slug(&self) -> String {
        let title = self.title().replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        title.split('-').filter(|part| !part.is_empty()).collect::<Vec<_>>().join("-")
    }

    /// The same scenario without the load beside (slow or rate-limited):
    /// only the measured events,
    /// at their share of a fixed rate.
    pub(crate) fn alone(&self) -> Self {
        let beside = self.beside.as_ref().map_or(0, |b| b.events);
        let pace = match self.pace {
            Pace::Rate { per_sec } => {
                let share = u64::from(per_sec) * self.events as u64 / (self.events + beside).max(1) as u64;
                Pace::Rate { per_sec: u32::try_from(share).unwrap_or(u32::MAX).max(1) }
            }
            full => full,
        };
        Self { phase: "alone", beside: None, limited: None, pace, ..self.clone() }
    }
}

pub(crate) fn scenarios(events: usize, seconds: u64) -> Vec<Scenario> {
    let rate_events = |rate: u32| usize::try_from(u64::from(rate) * seconds).unwrap_or(usize::MAX);
    vec![
        Scenario::new("fanout-1", events),
        Scenario { fanout: 10, ..Scenario::new("fanout-10", events / 10) },
        Scenario { pace: Pace::Rate { per_sec: 500 }, ..Scenario::new("rate-500", rate_events(500)) },
        Scenario { pace: Pace::Rate { per_sec: 200 }, ..Scenario::new("rate-200", rate_events(200)) },
        Scenario { fail_every: 10, retry_schedule: Some("200ms,1s"), ..Scenario::new("failing-10pct", events / 3) },
        Scenario {
            fanout: 10,
            separate: true,
            pace: Pace::Rate { per_sec: 200 },
            hang_ms: 10_000,
            beside: Some(Beside::hanging(1000)),
            ..Scenario::new("hanging-beside-10", 10_000)
        },
        Scenario { source: Source::Direct, ..Scenario::new("direct-amqp", events) },
        Scenario { workers: 2, ..Scenario::new("two-workers", events) },
        // Account B (globex, one fast webhook on `b.*`, 10 events/s) beside
        // account A (acme, six webhooks on `a.*` answering after 8 s, 50
        // events/s): B's latency, and B's alone first.
        Scenario {
            phase: "beside",
            tenant: Some("globex"),
            event_type: "b.created",
            filter: "b.*",
            pace: Pace::Rate { per_sec: 60 },
            hang_ms: 8_000,
            beside: Some(Beside {
                webhooks: 6,
                events: rate_events(50),
                tenant: Some("acme"),
                event_type: "a.created",
                filter: "a.*",
            }),
            compare_alone: true,
            ..Scenario::new("slow-tenant", rate_events(10))
        },
        // 100 webhooks on `*` answering after 10 s, 300 events of ~250 KB
        // (under the producer's 256 KiB body limit): the worker's peak RSS
        // 40 s in.
        Scenario {
            fanout: 100,
            filter: "*",
            payload_bytes: 250_000,
            slow: true,
            hang_ms: 10_000,
            time_box_secs: Some(40),
            ..Scenario::new("memory", 300)
        },
    ]
}
