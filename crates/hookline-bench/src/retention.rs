//! `hookline-bench retention`: the fan-out-1 load while retention removes a
//! large backlog of old rows, against the same load beside the same backlog
//! with retention off, in interleaved runs; and the three tables' sizes
//! before the removal, after it (once autovacuum has passed), and after as
//! many rows again have been written.
//!
//! The backlog is written straight into Postgres with `generate_series`,
//! after the stack has started and before the load: `--backlog` events
//! received 40 days ago (one millisecond apart, into that day's partitions,
//! made for it as a worker makes the days ahead), each with one delivered
//! delivery and one successful attempt, like the rows the load writes, for
//! a webhook of their own (`beside-backlog`, subscribed to nothing the load
//! sends, so the run's checks leave it out). The tables are then vacuumed
//! and analysed, as an established install's are. Both arms run the
//! services with `HOOKLINE_RETENTION_INTERVAL_MS=1000` (so a run starts a
//! second after the backlog is committed rather than up to a minute later);
//! the arm without removal has `HOOKLINE_RETENTION=0`. Everything else is
//! at its default, pacing included.
//!
//! Autovacuum stand-in: this machine's Postgres runs with `autovacuum = off`
//! (`/etc/postgresql/15/main/conf.d/90-ci.conf`, the CI set-up; it can only
//! be turned on for the whole server, which the other work on the machine
//! shares). So from the backlog's commit to the last size reading, the
//! benchmark does what autovacuum would, in both arms: every minute (the
//! default `autovacuum_naptime`) it runs a plain `VACUUM` on each table
//! (events, and each partition of deliveries and attempts, as autovacuum
//! treats them) past one of autovacuum's thresholds (dead rows above 50
//! plus 2 % of its rows, the scale factor V0012 sets; rows inserted since
//! its last vacuum above 1,000 plus 20 % of its rows), at autovacuum's cost
//! limits (`vacuum_cost_delay` 2 ms, `vacuum_cost_limit` 200).
//!
//! The rows written again after the removal go in ten chunks with a look of
//! the stand-in after each, as if written over time: a B-tree page emptied
//! by the removal is reusable only from the vacuum after the one that
//! deleted it, so rows written all at once right after a single vacuum
//! would find none of the indexes' freed pages reusable yet, which is not
//! what a steady flow of writes and autovacuum visits gives. They are
//! received from now on (one millisecond apart, each chunk after the one
//! before), as a deployment's new rows are: every time-ordered key (the
//! UUIDv7 ids, `received_at`) newer than every row already there, so their
//! index pages fill at the right-hand edge, as the backlog's did. Written
//! a day back instead, between the removed rows and the load's, they went
//! into the middle of those indexes, whose pages split in halves there: on
//! a 200,000-row copy (refilled in ten chunks, a vacuum after each) the
//! four time-ordered indexes grew 28–34 %, the others 9 %, and no heap at
//! all (7.1 % in total); written from now on, every index grew 9 % (4.3 %
//! in total): one chunk's worth of pages that vacuum had freed but not yet
//! made reusable when the first chunk came. Their ids (`nw0-1`…) are as
//! long as the backlog's (`old-1`…), so the rows are the same size.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::stack::Stack;

/// Inserts `$1` events received from `$2` (an interval; negative is ahead)
/// ago on, one millisecond apart, with ids `$4<n>`, and one delivered
/// delivery and one attempt each for webhook `$3`. Delivery and attempt ids are UUIDv7 at the event's time, as the
/// services make them.
const BACKLOG: [&str; 3] = [
    "INSERT INTO events (tenant, id, event_type, body, triggered_at, received_at, ingested_at, dispatched_at)
     SELECT 'default', $4 || g, 'bench.created',
            convert_to('{\"type\":\"bench.created\",\"timestamp\":\"' || to_char(t, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                       || '\",\"data\":{\"i\":' || g || '},\"id\":\"' || $4 || g || '\"}', 'UTF8'),
            t, t, t, t
     FROM generate_series(1::bigint, $1) g, LATERAL (SELECT now() - $2::text::interval + g * interval '1 ms' AS t) x",
    "INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, attempt_count, created_at, updated_at)
     SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3) || '8'
             || substr(h, 4, 15))::uuid,
            'default', $4 || g, $3, 'bench.created', 'delivered', 1, t, t
     FROM generate_series(1::bigint, $1) g,
          LATERAL (SELECT now() - $2::text::interval + g * interval '1 ms' AS t, md5($4 || g) AS h) x",
    "INSERT INTO attempts (id, delivery_id, attempt_no, sent_at, received_at, duration_ms, status_code, trigger,
                           recorded_at)
     SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(a, 1, 3) || '8'
             || substr(a, 4, 15))::uuid,
            (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3) || '8'
             || substr(h, 4, 15))::uuid,
            1, t, t, 1, 200, 'scheduled', t
     FROM generate_series(1::bigint, $1) g,
          LATERAL (SELECT now() - $2::text::interval + g * interval '1 ms' AS t, md5($4 || g) AS h, md5('a' || $4 || g) AS a) x",
];

/// The backlog of a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Backlog {
    /// Events (each with a delivery and an attempt).
    pub(crate) events: u64,
    /// Whether retention removes it during the run (else it is off).
    pub(crate) removed: bool,
}

impl Backlog {
    /// The services' settings for this arm.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("HOOKLINE_RETENTION_INTERVAL_MS".to_owned(), "1000".to_owned())];
        if !self.removed {
            env.push(("HOOKLINE_RETENTION".to_owned(), "0".to_owned()));
        }
        env
    }
}

/// Bytes of each table, indexes and TOAST included.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Sizes {
    pub(crate) events: i64,
    pub(crate) deliveries: i64,
    pub(crate) attempts: i64,
}

impl Sizes {
    pub(crate) fn total(&self) -> i64 {
        self.events + self.deliveries + self.attempts
    }

    pub(crate) async fn read(db: &tokio_postgres::Client) -> anyhow::Result<Self> {
        let row = db
            .query_one(
                // The partitioned tables' sizes are their partitions'.
                "SELECT pg_total_relation_size('events'),
                        (SELECT sum(pg_total_relation_size(relid))::bigint FROM pg_partition_tree('deliveries')),
                        (SELECT sum(pg_total_relation_size(relid))::bigint FROM pg_partition_tree('attempts'))",
                &[],
            )
            .await?;
        Ok(Self { events: row.try_get(0)?, deliveries: row.try_get(1)?, attempts: row.try_get(2)? })
    }
}

/// What a run measured of the backlog.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) backlog_events: u64,
    pub(crate) removed: bool,
    /// Seconds to write the backlog (one transaction).
    pub(crate) insert_seconds: f64,
    /// With the backlog written and vacuumed, before the load.
    pub(crate) before: Sizes,
    /// Old events left when the load started and when it ended (removal
    /// under way during the whole load when the second is above zero).
    pub(crate) left_at_load_start: i64,
    pub(crate) left_after_load: i64,
    /// Seconds from the load's start to its end.
    pub(crate) load_seconds: f64,
    /// From the backlog's commit until no event older than the window was
    /// left, in seconds (removal arm).
    pub(crate) removal_seconds: Option<f64>,
    /// Once removed and vacuumed (removal arm).
    pub(crate) after_removal: Option<Sizes>,
    /// Tables the autovacuum stand-in vacuumed, from the backlog's commit
    /// to the last size reading.
    pub(crate) vacuums: u32,
    /// After as many rows again were written, inside the window (removal
    /// arm).
    pub(crate) after_refill: Option<Sizes>,
}

/// The backlog's state between the load's start and its end.
#[derive(Debug)]
pub(crate) struct Prepared {
    report: Report,
    webhook: uuid::Uuid,
    committed: Instant,
    vacuum: StandIn,
    load_started: Instant,
}

/// The autovacuum stand-in (see the module docs), running until stopped.
#[derive(Debug)]
struct StandIn {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<u32>>,
}

/// `autovacuum_naptime`'s default.
const NAPTIME: Duration = Duration::from_secs(60);

/// The rows written again go in this many chunks, the stand-in looking
/// after each.
const REFILL_CHUNKS: u64 = 10;

/// Vacuums, as autovacuum would, each table whose dead rows exceed its
/// threshold; returns how many it vacuumed.
async fn vacuum_pass(db: &tokio_postgres::Client) -> anyhow::Result<u32> {
    let due = db
        .query(
            "SELECT s.relname::text FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
             WHERE (s.relname = 'events' OR s.relname ~ '^(deliveries|attempts)_(p[0-9]{8}|default)$')
               AND (s.n_dead_tup > 50 + 0.02 * greatest(c.reltuples, 0)
                    OR s.n_ins_since_vacuum > 1000 + 0.2 * greatest(c.reltuples, 0))
             ORDER BY s.relname",
            &[],
        )
        .await?;
    for row in &due {
        let table: String = row.try_get(0)?;
        db.batch_execute(&format!("VACUUM {table}")).await?;
    }
    Ok(u32::try_from(due.len()).unwrap_or(u32::MAX))
}

impl StandIn {
    async fn start(stack: &Stack) -> anyhow::Result<Self> {
        let db = stack.db().await?;
        db.batch_execute("SET vacuum_cost_delay = '2ms'; SET vacuum_cost_limit = 200").await?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut passes = 0;
            loop {
                tokio::select! {
                    _ = stopped.changed() => return Ok(passes),
                    () = tokio::time::sleep(NAPTIME) => {}
                }
                passes += vacuum_pass(&db).await?;
            }
        });
        Ok(Self { stop, task })
    }

    /// Stops it (after the pass under way, if any); returns the tables it
    /// vacuumed.
    async fn stop(self) -> anyhow::Result<u32> {
        let _ = self.stop.send(true);
        self.task.await.context("the vacuum stand-in")?
    }
}

/// Writes `n` events received from `ago` (a Postgres interval) ago on.
async fn insert(
    db: &mut tokio_postgres::Client,
    n: u64,
    ago: &str,
    webhook: uuid::Uuid,
    prefix: &str,
) -> anyhow::Result<()> {
    let n = i64::try_from(n).context("backlog too large")?;
    // Their days' partitions, as a worker makes today's and the next
    // week's (V0014): the backlog's day is 40 days back.
    db.execute(
        "SELECT hookline_make_partitions((now() - $1::text::interval)::date, (now() - $1::text::interval)::date + 1)",
        &[&ago],
    )
    .await
    .context("making the backlog's partitions")?;
    let tx = db.transaction().await?;
    for sql in BACKLOG {
        use tokio_postgres::types::Type;
        let statement = tx.prepare_typed(sql, &[Type::INT8, Type::TEXT, Type::UUID, Type::TEXT]).await?;
        tx.execute(&statement, &[&n, &ago, &webhook, &prefix]).await.context("writing the backlog")?;
    }
    tx.commit().await?;
    Ok(())
}

async fn vacuum(db: &tokio_postgres::Client) -> anyhow::Result<()> {
    db.batch_execute("VACUUM (ANALYZE) events, deliveries, attempts").await?;
    Ok(())
}

/// Writes the backlog for the webhook named `beside-backlog` and measures
/// the tables.
pub(crate) async fn prepare(stack: &Stack, backlog: Backlog) -> anyhow::Result<Prepared> {
    let mut db = stack.db().await?;
    let webhook: uuid::Uuid =
        db.query_one("SELECT id FROM webhooks WHERE name = 'beside-backlog'", &[]).await?.try_get(0)?;
    eprintln!("  writing a backlog of {} events with their deliveries and attempts…", backlog.events);
    let started = Instant::now();
    insert(&mut db, backlog.events, "40 days", webhook, "old-").await?;
    let committed = Instant::now();
    let insert_seconds = started.elapsed().as_secs_f64();
    let stand_in = StandIn::start(stack).await?;
    vacuum(&db).await?;
    let before = Sizes::read(&db).await?;
    eprintln!("  written in {insert_seconds:.0} s; tables {:.0} MiB", mib(before.total()));
    let left_at_load_start = old_left(&db).await?;
    Ok(Prepared {
        report: Report {
            backlog_events: backlog.events,
            removed: backlog.removed,
            insert_seconds,
            before,
            left_at_load_start,
            ..Report::default()
        },
        webhook,
        committed,
        vacuum: stand_in,
        load_started: Instant::now(),
    })
}

/// Old events left.
async fn old_left(db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(db
        .query_one("SELECT count(*) FROM events WHERE received_at < now() - interval '30 days'", &[])
        .await?
        .try_get(0)?)
}

/// After the load: how much was left; in the removal arm, waits for the
/// removal to finish and vacuums as autovacuum would, then writes as many rows again
/// (inside the window) and measures the tables each time.
pub(crate) async fn finish(stack: &Stack, prepared: Prepared) -> anyhow::Result<Report> {
    let Prepared { mut report, webhook, committed, vacuum: stand_in, load_started } = prepared;
    let mut db = stack.db().await?;
    report.left_after_load = old_left(&db).await?;
    report.load_seconds = load_started.elapsed().as_secs_f64();
    if !report.removed {
        report.vacuums = stand_in.stop().await?;
        return Ok(report);
    }
    eprintln!(
        "  old events: {} when the load started, {} when it ended ({:.0} s later); waiting for the removal…",
        report.left_at_load_start, report.left_after_load, report.load_seconds
    );
    let deadline = Instant::now() + Duration::from_secs(3600);
    while old_left(&db).await? > 0 {
        anyhow::ensure!(Instant::now() < deadline, "the backlog was not removed within an hour");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let removal_seconds = committed.elapsed().as_secs_f64();
    report.removal_seconds = Some(removal_seconds);
    eprintln!(
        "  removed in {removal_seconds:.0} s ({:.0} events/s); vacuuming as autovacuum would…",
        report.backlog_events as f64 / removal_seconds
    );
    // Autovacuum's next look: whatever is past its threshold now.
    report.vacuums = stand_in.stop().await? + vacuum_pass(&db).await?;
    let after = Sizes::read(&db).await?;
    report.after_removal = Some(after);
    eprintln!("  tables {:.0} MiB; writing as many rows again…", mib(after.total()));
    let chunk = report.backlog_events.div_ceil(REFILL_CHUNKS);
    for k in 0..REFILL_CHUNKS {
        let n = chunk.min(report.backlog_events.saturating_sub(k * chunk));
        // From now on, after the chunks before (see the module docs).
        let ago = format!("-{} milliseconds", k * chunk);
        insert(&mut db, n, &ago, webhook, &format!("nw{k}-")).await?;
        report.vacuums += vacuum_pass(&db).await?;
    }
    let refill = Sizes::read(&db).await?;
    report.after_refill = Some(refill);
    eprintln!("  tables {:.0} MiB", mib(refill.total()));
    Ok(report)
}

pub(crate) fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What `hookline-bench retention` is asked to do.
#[derive(Debug)]
pub(crate) struct CompareArgs {
    pub(crate) backlog: u64,
    pub(crate) events: usize,
    pub(crate) runs: u32,
    pub(crate) placement: crate::receiver::Placement,
    pub(crate) out: std::path::PathBuf,
}

/// The fan-out-1 load beside a backlog being removed and beside one kept,
/// `runs` times each, interleaved (the order alternates by round); prints
/// and saves (`retention.json`, `retention.md`) deliveries/s and the table
/// sizes.
pub(crate) async fn compare(args: CompareArgs) -> anyhow::Result<()> {
    use crate::{
        measure::{RunOptions, run_scenario},
        report::Spread,
        scenario::Scenario,
    };
    let CompareArgs { backlog, events, runs, placement, out } = args;
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for run in 1..=runs {
        let rates = crate::raw_rates(run).await?;
        let arms = if run % 2 == 1 { [true, false] } else { [false, true] };
        for removed in arms {
            let phase = if removed { "backlog removed" } else { "backlog kept" };
            let scenario = Scenario { phase, ..Scenario::new("fanout-1", events) };
            eprintln!("{}, run {run} of {runs} …", scenario.title());
            let options = RunOptions {
                placement,
                log_dir: out.join("logs").join(format!("retention-{}-run{run}", scenario.slug())),
                run,
                raw_rate: rates.quorum,
                backlog: Some(Backlog { events: backlog, removed }),
            };
            match run_scenario(&scenario, &options).await {
                Ok(outcome) => {
                    failures.extend(crate::check(&format!("{} (run {run})", scenario.title()), &outcome));
                    eprintln!("  {:.0} deliveries/s", outcome.deliveries_per_sec);
                    outcomes.push(outcome);
                    // Saved after every run: a comparison cut short keeps
                    // what it measured.
                    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
                    std::fs::write(out.join("retention.json"), serde_json::to_string_pretty(&outcomes)?)?;
                }
                Err(e) => failures.push(format!("{} (run {run}): {e:#}", scenario.title())),
            }
        }
    }

    let arm =
        |removed: bool| outcomes.iter().filter(move |o| o.retention.as_ref().is_some_and(|r| r.removed == removed));
    let mut md = format!(
        "Fan-out 1, {events} events at full speed, beside a backlog of {backlog} events (each with a delivery and an \
         attempt) received 40 days ago; {runs} run(s) per arm, interleaved. Figures are min / median / max.\n\n\
         | backlog | deliveries/s | p50 ms | p99 ms | CPU s / 1k deliveries | old events removed per second during \
         the load | old events left when it ended |\n\
         |---|---|---|---|---|---|---|\n"
    );
    for (removed, name) in [(false, "kept (`HOOKLINE_RETENTION=0`)"), (true, "being removed (defaults)")] {
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} |\n",
            Spread::of(arm(removed).map(|o| o.deliveries_per_sec)).show(0),
            Spread::of(arm(removed).map(|o| o.delivery_latency.p50_ms)).show(1),
            Spread::of(arm(removed).map(|o| o.delivery_latency.p99_ms)).show(1),
            Spread::of(arm(removed).map(|o| o.cpu_per_1k_deliveries.unwrap_or(f64::NAN))).show(2),
            Spread::of(
                arm(removed)
                    .filter_map(|o| o.retention.as_ref())
                    .map(|r| (r.left_at_load_start - r.left_after_load) as f64 / r.load_seconds.max(1e-9))
            )
            .show(0),
            Spread::of(arm(removed).filter_map(|o| o.retention.as_ref()).map(|r| r.left_after_load as f64)).show(0),
        ));
    }
    let median = |removed: bool| Spread::of(arm(removed).map(|o| o.deliveries_per_sec)).median;
    md.push_str(&format!(
        "\nMedian deliveries/s being removed / kept: {:.3}\n\n",
        median(true) / median(false).max(1e-9)
    ));
    md.push_str(
        "| run | removal s (events/s) | vacuums | events MiB | deliveries MiB | attempts MiB | total MiB |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for o in arm(true) {
        let Some(r) = &o.retention else { continue };
        let rate = r.removal_seconds.map_or(String::new(), |s| format!("{s:.0} ({:.0})", r.backlog_events as f64 / s));
        let auto = r.vacuums;
        for (label, sizes) in
            [("before", Some(r.before)), ("after removal", r.after_removal), ("after as many again", r.after_refill)]
        {
            let Some(s) = sizes else { continue };
            md.push_str(&format!(
                "| {} {label} | {rate} | {auto} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
                o.run,
                mib(s.events),
                mib(s.deliveries),
                mib(s.attempts),
                mib(s.total())
            ));
        }
    }
    println!("{md}");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("retention.json"), serde_json::to_string_pretty(&outcomes)?)?;
    std::fs::write(out.join("retention.md"), &md)?;
    eprintln!("saved {}", out.join("retention.{json,md}").display());
    anyhow::ensure!(failures.is_empty(), "failed: {}", failures.join("; "));
    Ok(())
}
