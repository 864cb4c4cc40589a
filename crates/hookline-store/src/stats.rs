//! Counts for the portal's charts: a webhook's attempts per hour over the
//! last day, delivered (a 2xx answer) and failed (anything else).
//!
//! There is no index on when an attempt was sent, and none is needed: an
//! attempt reaches its webhook through its delivery, deliveries are indexed
//! by `(webhook_id, id DESC)`, and delivery ids are UUIDv7s made when the
//! event was accepted, so the webhook's deliveries of a time range are one
//! range of that index (read index-only). Each one's attempts are then
//! found through `attempts (delivery_id, attempt_no)`. The read is bounded
//! twice: deliveries are taken from a day before the window on (so the
//! later retries of older deliveries count; the default schedule's end
//! about 28 h after the first attempt), and at most [`MAX_DELIVERIES`] of
//! them, newest first, so a busy webhook's chart costs what any other's
//! does; it then says from when it counted ([`HourlyAttempts::counted_since`]).
//! Attempts of deliveries older than that (a manual retry or a `recover`
//! of an old delivery) are not counted, except the current suspension's
//! recovery probes, whose delivery is looked up by its id.

use hookline_core::{DeliveryId, fence::unix_ms, health::recovery::probe_event_id};
use time::{Duration, OffsetDateTime};

use crate::{Result, Store, Webhook, delivery::uuid_v7_floor};

/// How many hours a chart shows, the current one last.
pub const HOURS: usize = 24;

/// At most this many of a webhook's latest deliveries are read for its
/// chart (about half a second of work on a small server).
pub const MAX_DELIVERIES: i64 = 50_000;

/// How long before the window deliveries are read from: their retries may
/// fall inside it.
const LOOKBACK: Duration = Duration::DAY;

/// One hour of a chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HourCount {
    /// The start of the hour (UTC, on the hour).
    pub start: OffsetDateTime,
    /// Attempts answered with a 2xx.
    pub delivered: i64,
    /// Every other attempt: another status, a timeout, a transport error.
    pub failed: i64,
}

/// A webhook's attempts per hour over the last [`HOURS`] hours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HourlyAttempts {
    /// Every hour, oldest first (hours without attempts at zero); the last
    /// is the current hour, so far.
    pub hours: Vec<HourCount>,
    /// When the webhook had more than [`MAX_DELIVERIES`] deliveries in the
    /// range read: the time of the oldest one counted, if that is inside
    /// the window. Hours before it are not counted.
    pub counted_since: Option<OffsetDateTime>,
}

impl HourlyAttempts {
    /// Whether `hour` was counted (it ends after [`Self::counted_since`]).
    pub fn counted(&self, hour: &HourCount) -> bool {
        self.counted_since.is_none_or(|since| hour.start + Duration::HOUR > since)
    }
}

/// The chart's one statement. `$1` the webhook, `$2` the smallest
/// delivery id read, `$3`/`$4` the window, `$5` [`MAX_DELIVERIES`], `$6`
/// the current suspension's probe delivery. `OFFSET 0` keeps the attempts'
/// subquery apart, so it runs per delivery through the index on
/// `delivery_id`: joined instead, the planner may hash the whole of
/// `attempts` for a busy webhook.
const HOURLY: &str = "
    WITH recent AS MATERIALIZED (
         SELECT id FROM deliveries
         WHERE webhook_id = $1 AND id >= $2
         ORDER BY id DESC LIMIT $5),
     d AS (
         SELECT id FROM recent
         UNION ALL
         SELECT id FROM deliveries WHERE id = $6 AND webhook_id = $1 AND id < $2),
     h AS (
         SELECT floor(date_part('epoch', a.sent_at) / 3600)::bigint AS hour,
                count(*) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS delivered,
                count(*) FILTER (WHERE a.status_code IS NULL
                                    OR a.status_code NOT BETWEEN 200 AND 299) AS failed
         FROM d CROSS JOIN LATERAL (
             SELECT sent_at, status_code FROM attempts
             WHERE delivery_id = d.id AND sent_at >= $3 AND sent_at < $4
             OFFSET 0) a
         GROUP BY 1)
     SELECT (SELECT count(*) FROM recent) AS scanned,
            (SELECT id FROM recent ORDER BY id LIMIT 1) AS oldest,
            h.hour, h.delivered, h.failed
     FROM (VALUES (1)) AS one LEFT JOIN h ON true";

/// The unix hour (hours since the epoch) `at` falls in.
fn unix_hour(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(3600)
}

/// The start of unix hour `hour`.
fn hour_start(hour: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::hours(hour)
}

/// The window's first unix hour: the current one and the 23 before it.
fn first_hour(now: OffsetDateTime) -> i64 {
    unix_hour(now) - (HOURS as i64 - 1)
}

/// Every hour of the window from `first`, with the counts `rows` (unix
/// hour, delivered, failed) give; hours they leave out are zero.
fn fill(first: i64, rows: &[(i64, i64, i64)]) -> Vec<HourCount> {
    (first..first + HOURS as i64)
        .map(|hour| {
            let (delivered, failed) =
                rows.iter().find(|(h, _, _)| *h == hour).map_or((0, 0), |&(_, delivered, failed)| (delivered, failed));
            HourCount { start: hour_start(hour), delivered, failed }
        })
        .collect()
}

/// The time a UUIDv7 was made (`None` for another kind of UUID).
fn v7_time(id: uuid::Uuid) -> Option<OffsetDateTime> {
    let (seconds, nanos) = id.get_timestamp()?.to_unix();
    let seconds = i64::try_from(seconds).ok()?;
    Some(OffsetDateTime::from_unix_timestamp(seconds).ok()? + Duration::nanoseconds(nanos.into()))
}

impl Store {
    /// `webhook`'s attempts per hour, delivered and failed, over the
    /// [`HOURS`] hours up to `now` (see the module's docs for what is
    /// read). The caller has read `webhook` in the caller's scope.
    pub async fn hourly_attempts(&self, webhook: &Webhook, now: OffsetDateTime) -> Result<HourlyAttempts> {
        let first = first_hour(now);
        let from = hour_start(first);
        let until = hour_start(first + HOURS as i64);
        // The current suspension's probes are attempts of one delivery,
        // made when it began (however long ago).
        let probes = webhook.suspended_at.map(|at| {
            DeliveryId::derive(&webhook.tenant, &probe_event_id(webhook.id, at), webhook.id, unix_ms(at)).as_uuid()
        });
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client.prepare_cached(HOURLY).await?,
                &[&webhook.id.as_uuid(), &uuid_v7_floor(from - LOOKBACK), &from, &until, &MAX_DELIVERIES, &probes],
            )
            .await?;
        let mut counts = Vec::with_capacity(rows.len());
        let mut counted_since = None;
        for row in &rows {
            if let Some(hour) = row.try_get::<_, Option<i64>>("hour")? {
                counts.push((hour, row.try_get("delivered")?, row.try_get("failed")?));
            }
            let scanned: i64 = row.try_get("scanned")?;
            if scanned >= MAX_DELIVERIES {
                let oldest: Option<uuid::Uuid> = row.try_get("oldest")?;
                counted_since = oldest.and_then(v7_time).filter(|&at| at > from);
            }
        }
        Ok(HourlyAttempts { hours: fill(first, &counts), counted_since })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> OffsetDateTime {
        hookline_core::parse_timestamp(text).expect("a valid time")
    }

    /// The window is the current hour and the 23 before it, on UTC hours,
    /// every hour present, oldest first.
    #[test]
    fn every_hour_of_the_day_is_there() {
        let now = at("2026-11-25T03:11:54Z");
        let first = first_hour(now);
        assert_eq!(hour_start(first), at("2026-11-24T04:00:00Z"));
        let hours = fill(first, &[(first, 2, 1), (first + 23, 5, 0)]);
        assert_eq!(hours.len(), HOURS);
        assert_eq!(hours[0], HourCount { start: at("2026-11-24T04:00:00Z"), delivered: 2, failed: 1 });
        assert_eq!(hours[23], HourCount { start: at("2026-11-25T03:00:00Z"), delivered: 5, failed: 0 });
        assert!(hours[1..23].iter().all(|h| h.delivered == 0 && h.failed == 0), "{hours:?}");
        assert!(hours.windows(2).all(|w| w[1].start - w[0].start == Duration::HOUR));
        assert_eq!(first_hour(at("2026-11-25T03:00:00Z")), first, "an hour starts at its first second");
    }

    /// Hours that end before the oldest delivery read were not counted.
    #[test]
    fn a_busy_webhook_counts_from_its_oldest_delivery_read() {
        let now = at("2026-11-25T03:11:54Z");
        let hours = fill(first_hour(now), &[]);
        let chart = HourlyAttempts { hours, counted_since: Some(at("2026-11-25T01:30:00Z")) };
        let counted: Vec<bool> = chart.hours.iter().map(|h| chart.counted(h)).collect();
        assert_eq!(counted.iter().filter(|c| **c).count(), 3, "01:00 (in part), 02:00 and 03:00");
        assert!(counted[21] && !counted[20]);
        let whole = HourlyAttempts { counted_since: None, ..chart };
        assert!(whole.hours.iter().all(|h| whole.counted(h)));
    }

    /// A delivery id tells when it was made.
    #[test]
    fn v7_ids_tell_their_time() {
        let made = at("2026-11-25T03:11:54.123Z");
        let id = DeliveryId::derive(
            &hookline_core::TenantId::parse("t").expect("tenant"),
            &hookline_core::EventId::parse("e").expect("event"),
            hookline_core::WebhookId::from_uuid(uuid::Uuid::nil()),
            unix_ms(made),
        );
        assert_eq!(v7_time(id.as_uuid()), Some(made));
        assert_eq!(v7_time(uuid::Uuid::nil()), None);
    }
}

/// The statement against a real Postgres.
#[cfg(test)]
mod db_tests {
    use hookline_core::{EventFilters, SigningToken, TenantId, WebhookId, WebhookName, WebhookUrl};
    use hookline_testkit::TestDb;

    use super::*;
    use crate::{Created, NewWebhook, PgSettings};

    async fn webhook(store: &Store, name: &str) -> Webhook {
        let new = NewWebhook {
            tenant: TenantId::parse("default").expect("tenant"),
            name: WebhookName::parse(name).expect("name"),
            url: WebhookUrl::parse("https://example.com/h").expect("url"),
            token: SigningToken::parse("0123456789abcdef").expect("token"),
            scheme: Default::default(),
            events: EventFilters::parse(["*"]).expect("events"),
            active: true,
            headers: Default::default(),
            rate_limit: None,
            recovery: Default::default(),
        };
        let id = WebhookId::from_uuid(uuid::Uuid::now_v7());
        match store.create_webhook(id, &new, OffsetDateTime::now_utc(), 100).await.expect("create") {
            Created::Webhook(w) => *w,
            Created::LimitReached => panic!("below the limit"),
        }
    }

    /// Inserts `n` deliveries of `webhook` made at `made` (each with an
    /// event), each with one attempt per `(sent, status)` of `attempts`.
    async fn deliveries(
        client: &tokio_postgres::Client,
        webhook: &Webhook,
        n: i64,
        made: OffsetDateTime,
        attempts: &[(OffsetDateTime, Option<i32>)],
    ) {
        let sent: Vec<OffsetDateTime> = attempts.iter().map(|a| a.0).collect();
        let status: Vec<Option<i32>> = attempts.iter().map(|a| a.1).collect();
        client
            .execute(
                "WITH ev AS (
                     INSERT INTO events (tenant, id, event_type, body, triggered_at, received_at)
                     SELECT 'default', 'e-' || gen_random_uuid(), 'x.y', '\\x00', $3, $3
                     FROM generate_series(1, $2::bigint)
                     RETURNING id),
                 d AS (
                     INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, created_at, updated_at)
                     SELECT (lpad(to_hex((date_part('epoch', $3::timestamptz) * 1000)::bigint), 12, '0')
                             || '7' || substr(md5(ev.id), 1, 3) || '8' || substr(md5(ev.id), 4, 15))::uuid,
                            'default', ev.id, $1, 'x.y', 'delivered', $3, $3
                     FROM ev
                     RETURNING id)
                 INSERT INTO attempts (id, delivery_id, attempt_no, sent_at, duration_ms, status_code)
                 SELECT gen_random_uuid(), d.id, a.no, a.sent, 5, a.status
                 FROM d, UNNEST($4::timestamptz[], $5::int[]) WITH ORDINALITY AS a (sent, status, no)",
                &[&webhook.id.as_uuid(), &n, &made, &sent, &status],
            )
            .await
            .expect("rows inserted");
    }

    /// Counts per hour: 2xx delivered, the rest failed; hours without
    /// attempts zero; only this webhook's attempts inside the window, the
    /// retries of deliveries made up to a day before it included; the
    /// current suspension's probes however old it is. Read through the
    /// indexes: no scan of `attempts` or `deliveries`.
    #[tokio::test]
    async fn attempts_per_hour_through_the_indexes() {
        let db = TestDb::new().await;
        let store = Store::connect(&PgSettings { url: db.url().to_owned(), pool_size: 2, ..Default::default() })
            .await
            .expect("store");
        let client = db.client().await;
        let now = OffsetDateTime::now_utc();
        let first = hour_start(first_hour(now));
        let minutes = |m: i64| first + Duration::minutes(m);
        let hook = webhook(&store, "charted").await;
        let other = webhook(&store, "other").await;
        // Noise: another webhook's deliveries in the window.
        deliveries(&client, &other, 20_000, minutes(10), &[(minutes(11), Some(200))]).await;
        deliveries(&client, &hook, 3, minutes(5), &[(minutes(6), Some(204))]).await;
        deliveries(&client, &hook, 2, minutes(5), &[(minutes(6), Some(500)), (minutes(70), Some(200))]).await;
        deliveries(&client, &hook, 1, now, &[(now, None)]).await;
        // Made 12 h before the window, retried inside it: counted.
        deliveries(&client, &hook, 1, minutes(-720), &[(minutes(-719), Some(503)), (minutes(125), Some(429))]).await;
        // Before the window, and made too long before it: not counted.
        deliveries(&client, &hook, 1, minutes(-30), &[(minutes(-29), Some(200))]).await;
        deliveries(&client, &hook, 1, minutes(-3000), &[(minutes(130), Some(200))]).await;
        client.batch_execute("ANALYZE deliveries; ANALYZE attempts").await.expect("analyze");

        let chart = store.hourly_attempts(&hook, now).await.expect("counts");
        assert_eq!(chart.counted_since, None);
        let counts: Vec<(i64, i64)> = chart.hours.iter().map(|h| (h.delivered, h.failed)).collect();
        let mut expected = vec![(0, 0); HOURS];
        expected[0] = (3, 2);
        expected[1] = (2, 0);
        expected[2].1 += 1;
        expected[HOURS - 1].1 += 1;
        assert_eq!(counts, expected);

        // A suspension that began long ago: its probe delivery is counted.
        let suspended_at = now - Duration::days(5);
        let probe =
            DeliveryId::derive(&hook.tenant, &probe_event_id(hook.id, suspended_at), hook.id, unix_ms(suspended_at));
        client
            .execute(
                "WITH ev AS (INSERT INTO events (tenant, id, event_type, body, triggered_at, received_at)
                             VALUES ('default', $2, 'hookline.probe', '\\x00', $3, $3) RETURNING id),
                      d AS (INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, created_at, updated_at)
                            SELECT $1, 'default', ev.id, $4, 'hookline.probe', 'failed', $3, $3 FROM ev RETURNING id)
                 INSERT INTO attempts (id, delivery_id, attempt_no, sent_at, duration_ms, status_code, trigger)
                 SELECT gen_random_uuid(), d.id, 1, $5, 5, 503, 'probe' FROM d",
                &[
                    &probe.as_uuid(),
                    &probe_event_id(hook.id, suspended_at).as_str(),
                    &suspended_at,
                    &hook.id.as_uuid(),
                    &minutes(200),
                ],
            )
            .await
            .expect("a probe");
        let suspended = Webhook { suspended_at: Some(suspended_at), ..hook.clone() };
        let chart = store.hourly_attempts(&suspended, now).await.expect("counts");
        assert_eq!((chart.hours[3].delivered, chart.hours[3].failed), (0, 1), "the probe");
        assert_eq!(store.hourly_attempts(&hook, now).await.expect("counts").hours[3].failed, 0);

        let from = first;
        let until = first + Duration::hours(HOURS as i64);
        let plan: Vec<String> = client
            .query(
                &format!("EXPLAIN {HOURLY}"),
                &[
                    &hook.id.as_uuid(),
                    &uuid_v7_floor(from - LOOKBACK),
                    &from,
                    &until,
                    &MAX_DELIVERIES,
                    &probe.as_uuid(),
                ],
            )
            .await
            .expect("a plan")
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        let plan = plan.join("\n");
        // Per day partition (V0014): the day holding the rows is read
        // through its indexes; a partition of a row or two (or none) may
        // be scanned, which costs no more.
        assert!(plan.contains("_webhook_id_id_idx on deliveries_p"), "{plan}");
        assert!(plan.contains("_pkey on attempts_p"), "{plan}");
        for scan in plan.lines().filter(|l| l.contains("Seq Scan")) {
            let rows: u64 = scan
                .split("rows=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|r| r.parse().ok())
                .expect("an estimate");
            assert!(rows <= 10, "a scan of a table that is not tiny: {scan}\n{plan}");
        }
    }
}
