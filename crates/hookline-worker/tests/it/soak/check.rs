//! What the soak checks at the end: progress of the accepted events in
//! Postgres, descriptions of what is missing, and each receiver's requests
//! against the deliveries.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use hookline_testkit::Receiver;

/// A fresh connection to the private Postgres (it restarts under the test).
pub(super) async fn pg(url: &str) -> Option<tokio_postgres::Client> {
    let (client, connection) =
        tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(url, tokio_postgres::NoTls))
            .await
            .ok()?
            .ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(client)
}

/// Where the log stands for the accepted events.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Deliveries by state, over every event.
    pub(super) states: BTreeMap<String, i64>,
    /// Accepted events without three `delivered` deliveries.
    pub(super) incomplete: Vec<String>,
}

impl Progress {
    pub(super) fn done(&self) -> bool {
        self.incomplete.is_empty() && !self.states.contains_key("pending") && !self.states.contains_key("retrying")
    }
}

/// Deliveries by state, and the accepted events not yet delivered to all three.
pub(super) async fn progress(
    client: &tokio_postgres::Client,
    accepted: &[String],
) -> Result<Progress, tokio_postgres::Error> {
    let states = client
        .query("SELECT state, count(*) FROM deliveries GROUP BY state", &[])
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    let incomplete = client
        .query(
            "SELECT e.id FROM unnest($1::text[]) AS e(id)
             WHERE (SELECT count(*) FROM deliveries d
                    WHERE d.tenant = 'default' AND d.event_id = e.id AND d.state = 'delivered') <> 3
             ORDER BY e.id",
            &[&accepted],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Ok(Progress { states, incomplete })
}

/// The deliveries of `events` that are not delivered (or missing), for a
/// failure message.
pub(super) async fn describe(client: &tokio_postgres::Client, events: &[String]) -> String {
    let rows = client
        .query(
            "SELECT e.id, d.id::text, d.webhook_id::text, d.state, d.attempt_count,
                    d.next_attempt_at::text, d.claimed_until::text, ev.dispatched_at::text
             FROM unnest($1::text[]) AS e(id)
             LEFT JOIN events ev ON ev.tenant = 'default' AND ev.id = e.id
             LEFT JOIN deliveries d ON d.tenant = 'default' AND d.event_id = e.id
             WHERE d.state IS DISTINCT FROM 'delivered'
             ORDER BY e.id, d.webhook_id",
            &[&events],
        )
        .await;
    match rows {
        Err(e) => format!("(could not read them: {e})"),
        Ok(rows) => rows
            .iter()
            .map(|r| {
                format!(
                    "event {} delivery {:?} webhook {:?} state {:?} attempts {:?} next_attempt_at {:?} claimed_until {:?} dispatched_at {:?}",
                    r.get::<_, String>(0),
                    r.get::<_, Option<String>>(1),
                    r.get::<_, Option<String>>(2),
                    r.get::<_, Option<String>>(3),
                    r.get::<_, Option<i32>>(4),
                    r.get::<_, Option<String>>(5),
                    r.get::<_, Option<String>>(6),
                    r.get::<_, Option<String>>(7),
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Checks one receiver against the deliveries of its webhook: every
/// accepted event arrived under exactly one Webhook-Id (its delivery's) and
/// was answered 2xx under it; no request carried another webhook's id.
pub(super) fn check_receiver(
    name: &str,
    receiver: &Receiver,
    webhook: &str,
    deliveries: &BTreeMap<String, (String, String)>,
    accepted: &BTreeSet<String>,
    problems: &mut Vec<String>,
) -> usize {
    let requests = receiver.requests();
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut succeeded = BTreeSet::new();
    let mut wrong = Vec::new();
    for request in &requests {
        let id = request.header("webhook-id").unwrap_or_default().to_owned();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let event = body["data"]["n"].as_str().unwrap_or_default().to_owned();
        match deliveries.get(&id) {
            Some((e, w)) if *e == event && w == webhook => {}
            other => wrong.push(format!("Webhook-Id {id:?} carrying event {event:?} is {other:?}")),
        }
        if (200..300).contains(&request.status) {
            succeeded.insert((event.clone(), id.clone()));
        }
        ids.entry(event).or_default().insert(id);
    }
    if !wrong.is_empty() {
        problems.push(format!(
            "{name}: {} requests not matching a delivery of its webhook: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(10)]
        ));
    }
    let missing: Vec<&String> = accepted.iter().filter(|e| !ids.contains_key(*e)).collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{name}: {} accepted events never arrived: {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        ));
    }
    let several: Vec<_> = ids.iter().filter(|(_, ids)| ids.len() > 1).collect();
    if !several.is_empty() {
        problems.push(format!(
            "{name}: {} events arrived under several Webhook-Ids: {:?}",
            several.len(),
            &several[..several.len().min(10)]
        ));
    }
    let unanswered: Vec<&String> = accepted
        .iter()
        .filter(|e| {
            ids.get(*e).is_some_and(|set| set.iter().all(|id| !succeeded.contains(&((*e).clone(), id.clone()))))
        })
        .collect();
    if !unanswered.is_empty() {
        problems.push(format!(
            "{name}: {} accepted events never answered 2xx: {:?}",
            unanswered.len(),
            &unanswered[..unanswered.len().min(20)]
        ));
    }
    requests.len()
}
