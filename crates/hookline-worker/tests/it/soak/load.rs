//! The soak's load: events published straight to the exchange with
//! confirms, at a steady rate, reconnecting through broker outages.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hookline_broker::{AmqpSettings, EventMessage, Publisher, Topology, connect, lapin::Connection};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::RATE_PER_S;

/// What the load did.
#[derive(Debug, Default)]
pub(super) struct LoadStats {
    /// Events whose publish the broker confirmed.
    pub(super) accepted: BTreeSet<String>,
    /// Publishes that failed or timed out (the event may or may not exist).
    pub(super) failed: u64,
    /// Ticks with no connection to publish on.
    pub(super) skipped: u64,
    /// Connections opened after the first.
    pub(super) reconnects: u64,
}

fn event_id(n: u64) -> String {
    format!("s{n}")
}

fn settle(stats: &mut LoadStats, result: Result<(String, bool), tokio::task::JoinError>) {
    match result {
        Ok((id, true)) => {
            stats.accepted.insert(id);
        }
        _ => stats.failed += 1,
    }
}

/// A confirm-mode publisher on a fresh connection, or `None` within 5 s.
pub(super) async fn open_publisher(amqp: &AmqpSettings) -> Option<(Connection, Publisher)> {
    let opened = async {
        let connection = connect(amqp, "soak-load").await?;
        let publisher = Publisher::open(&connection, Topology::from_settings(amqp)).await?;
        Ok::<_, hookline_broker::Error>((connection, publisher))
    };
    tokio::time::timeout(Duration::from_secs(5), opened).await.ok()?.ok()
}

/// Publishes [`RATE_PER_S`] events a second, each awaited for its confirm
/// in its own task, until `stop`; reconnects with backoff after a failure.
pub(super) async fn run_load(amqp: AmqpSettings, stop: CancellationToken) -> LoadStats {
    let mut stats = LoadStats::default();
    let mut link: Option<(Connection, Publisher)> = None;
    // Publishes that failed on the link of this generation mark it broken.
    let generation = Arc::new(AtomicU64::new(0));
    let broken = Arc::new(AtomicU64::new(u64::MAX));
    let mut backoff = Duration::from_millis(100);
    let mut next_try = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(1000 / RATE_PER_S));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut publishes = tokio::task::JoinSet::new();
    let mut n = 0u64;
    let mut opened = 0u64;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        while let Some(result) = publishes.try_join_next() {
            settle(&mut stats, result);
        }
        let current = generation.load(Ordering::SeqCst);
        let dead = link.as_ref().is_some_and(|(_, p)| !p.is_connected()) || broken.load(Ordering::SeqCst) == current;
        if dead {
            if let Some((connection, _)) = link.take() {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), connection.close(200, "reconnecting".into())).await;
            }
            generation.fetch_add(1, Ordering::SeqCst);
        }
        if link.is_none() {
            if Instant::now() < next_try {
                stats.skipped += 1;
                continue;
            }
            match open_publisher(&amqp).await {
                Some(fresh) => {
                    link = Some(fresh);
                    opened += 1;
                    backoff = Duration::from_millis(100);
                }
                None => {
                    next_try = Instant::now() + backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    stats.skipped += 1;
                    continue;
                }
            }
        }
        let Some((_, publisher)) = &link else { continue };
        let publisher = publisher.clone();
        let id = event_id(n);
        n += 1;
        let mine = generation.load(Ordering::SeqCst);
        let (generation, broken) = (generation.clone(), broken.clone());
        publishes.spawn(async move {
            let event = EventMessage {
                event: "license.created".into(),
                data: serde_json::json!({ "n": id }),
                id: Some(id.clone()),
                triggered_at: None,
                tenant: None,
            };
            let ok = matches!(
                tokio::time::timeout(Duration::from_secs(10), publisher.publish_event(&event)).await,
                Ok(Ok(()))
            );
            if !ok && generation.load(Ordering::SeqCst) == mine {
                broken.store(mine, Ordering::SeqCst);
            }
            (id, ok)
        });
    }
    while let Some(result) = publishes.join_next().await {
        settle(&mut stats, result);
    }
    if let Some((connection, _)) = link {
        let _ = tokio::time::timeout(Duration::from_secs(5), connection.close(200, "load done".into())).await;
    }
    stats.reconnects = opened.saturating_sub(1);
    stats
}
