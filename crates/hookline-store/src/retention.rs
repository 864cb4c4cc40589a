//! Retention: what is older than the window is removed without deleting
//! it row by row where it is large.
//!
//! Deliveries and attempts are time-partitioned (V0014): one partition of
//! each per UTC day, by the delivery's UUIDv7 id, which carries its event's
//! acceptance time. A day whose partitions lie wholly before the cutoff is
//! removed by dropping its two tables ([`RetentionRun::drop_expired`]): no
//! row is deleted, nothing is left for vacuum, and the space goes back to
//! the disk at once. The few rows outside every day partition (in the
//! `_default` partitions) and the waiting deliveries before the cutoff in
//! the day that straddles it are deleted row by row, so no delivery past
//! the window is ever attempted.
//!
//! Events stay one table: their primary key `(tenant, id)` deduplicates an
//! event id however far apart its copies arrive, and Postgres can enforce
//! uniqueness on a partitioned table only over keys that include the
//! partition key. They are deleted exactly, in small paced batches, oldest
//! first by `received_at` ([`RetentionRun::remove`]), with nothing cascading
//! from them any more. An event is the authority for what is kept: a read
//! shows a delivery only with its event, so a delivery whose event is gone
//! is gone for every reader (`GET` answers `404`) the moment the event is,
//! even while its row waits for its day's partition to be dropped.
//!
//! Partitions are made ahead ([`Store::make_partitions`]): by the migration
//! for the next week, and by every worker at start and every run after.
//!
//! One worker removes at a time: a run holds a session advisory lock on a
//! connection of its own ([`Store::retention_run`]), which is closed when the
//! run ends, so a run cut short (a crash, a stop, a lost connection) can
//! never leave the lock behind in the pool.
//!
//! Each run first records its cutoff in the one-row `retention` table
//! ([`Store::expired_before`]): `recover` tells from it which part of a
//! window is past retention, whatever the producer's own settings say.

use time::OffsetDateTime;

use crate::{Result, Store};

/// The advisory lock that one retention run at a time holds ("hlretent").
const RETENTION_LOCK: i64 = 0x686c_7265_7465_6e74;

/// A retention run: this worker holds the lock until it is dropped.
pub struct RetentionRun {
    /// A connection taken out of the pool: closing it releases the lock.
    client: deadpool_postgres::ClientWrapper,
}

impl std::fmt::Debug for RetentionRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionRun").finish_non_exhaustive()
    }
}

/// What dropping the expired days removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Days whose delivery and attempt partitions were dropped.
    pub days: u64,
    /// Rows deleted one by one: deliveries (with their attempts) before
    /// the cutoff in the default partitions, or still waiting for a step in
    /// the day that straddles it.
    pub stragglers: u64,
    /// Days that could not be dropped now: a lock was not granted within
    /// [`DROP_LOCK_TIMEOUT`] (the next run tries again).
    pub deferred: u64,
}

/// How long dropping a day's partition waits for its lock. Dropping a
/// partition locks its parent exclusively for a moment (with a default
/// partition, Postgres cannot detach concurrently), and while the drop
/// waits, every statement on the table queues behind it: so it gives up
/// soon and tries again at the next run.
pub const DROP_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

/// What one batch removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removed {
    /// Events removed.
    pub events: u64,
    /// The latest `received_at` among them: the next batch starts there.
    pub through: Option<OffsetDateTime>,
}

impl Store {
    /// Starts a retention run: takes a connection of its own and the run's
    /// lock. `None` when another run (another worker's) holds it.
    pub async fn retention_run(&self) -> Result<Option<RetentionRun>> {
        // Out of the pool: the connection, and with it the session lock,
        // ends with the run whichever way the run ends.
        let client = deadpool_postgres::Object::take(self.pool.get().await?);
        let locked: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&RETENTION_LOCK]).await?.try_get(0)?;
        Ok(locked.then_some(RetentionRun { client }))
    }

    /// Makes the day partitions of deliveries and attempts from the UTC day
    /// of `from` to that of `to`, both included, that do not exist yet
    /// (V0014's `hookline_make_partitions`); returns how many days it made.
    pub async fn make_partitions(&self, from: OffsetDateTime, to: OffsetDateTime) -> Result<u64> {
        let client = self.pool.get().await?;
        let (from, to) = (from.to_offset(time::UtcOffset::UTC).date(), to.to_offset(time::UtcOffset::UTC).date());
        let made: i32 = client.query_one("SELECT hookline_make_partitions($1, $2)", &[&from, &to]).await?.try_get(0)?;
        Ok(u64::try_from(made).unwrap_or(0))
    }

    /// Everything received before this instant has been removed, or is
    /// being removed, by retention (the latest cutoff any run applied);
    /// `None` when no run has removed anything yet.
    pub async fn expired_before(&self) -> Result<Option<OffsetDateTime>> {
        let client = self.pool.get().await?;
        let row = client.query_opt("SELECT removed_before FROM retention", &[]).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}

impl RetentionRun {
    /// Records `cutoff` as the run's (kept when an earlier run's was later:
    /// what that run removed stays removed).
    pub async fn begin(&self, cutoff: OffsetDateTime, now: OffsetDateTime) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO retention (removed_before, run_at) VALUES ($1, $2)
                 ON CONFLICT (only_row) DO UPDATE
                 SET removed_before = GREATEST(retention.removed_before, EXCLUDED.removed_before),
                     run_at = EXCLUDED.run_at",
                &[&cutoff, &now],
            )
            .await?;
        Ok(())
    }

    /// Removes up to `limit` events received in [`from`, `cutoff`), oldest
    /// first, in one transaction (the statement's own). Nothing cascades
    /// from an event (V0014): its deliveries and attempts go with their
    /// day's partitions ([`RetentionRun::drop_expired`]), and reads stop
    /// showing them as soon as the event is gone. Rows another transaction
    /// holds locked are skipped (the next run takes them). `from` is the
    /// previous batch's [`Removed::through`], so a batch never walks over
    /// index entries of rows already removed whose space vacuum has not
    /// reclaimed yet.
    ///
    /// The events are deleted by the row addresses the lock returned (each
    /// locked by this statement, so none can move before the delete),
    /// which spares a probe of the primary key per event.
    pub async fn remove(&self, from: Option<OffsetDateTime>, cutoff: OffsetDateTime, limit: i64) -> Result<Removed> {
        let row = self
            .client
            .query_one(
                &self
                    .client
                    .prepare_cached(
                        "WITH old AS (
                            SELECT ctid FROM events
                            WHERE received_at < $2 AND received_at >= COALESCE($1::timestamptz, '-infinity')
                            ORDER BY received_at
                            LIMIT $3
                            FOR UPDATE SKIP LOCKED
                         ), gone AS (
                            DELETE FROM events WHERE ctid = ANY (ARRAY(SELECT ctid FROM old))
                            RETURNING received_at
                         )
                         SELECT count(*), max(received_at) FROM gone",
                    )
                    .await?,
                &[&from, &cutoff, &limit],
            )
            .await?;
        let events: i64 = row.try_get(0)?;
        Ok(Removed { events: u64::try_from(events).unwrap_or(0), through: row.try_get(1)? })
    }

    /// Removes the deliveries and attempts of every day wholly before
    /// `cutoff` by dropping its partitions, and deletes the rows before it
    /// that no partition drop removes: those in the default partitions, and
    /// deliveries in the straddling day still waiting for a step (their
    /// event is gone, so none may be attempted).
    pub async fn drop_expired(&self, cutoff: OffsetDateTime) -> Result<Dropped> {
        let floor = crate::delivery::uuid_v7_floor(cutoff);
        let mut dropped = Dropped::default();
        // A day partition's upper bound is the next day's first id: it is
        // wholly expired when that bound is at or before the cutoff.
        let days = self
            .client
            .query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'deliveries'::regclass AND c.relname ~ '^deliveries_p[0-9]{8}$'
                   AND hookline_day_bound(to_date(substr(c.relname, 13), 'YYYYMMDD') + 1) <= $1
                 ORDER BY c.relname",
                &[&floor],
            )
            .await?;
        let timeout = format!("SET lock_timeout = '{}ms'", DROP_LOCK_TIMEOUT.as_millis());
        self.client.batch_execute(&timeout).await?;
        for day in &days {
            let deliveries: &str = day.try_get(0)?;
            let attempts = deliveries.replacen("deliveries_", "attempts_", 1);
            // Attempts first: their day is never without its deliveries'.
            // Names come from the catalog and match the pattern above.
            match self
                .client
                .batch_execute(&format!("DROP TABLE IF EXISTS {attempts}; DROP TABLE IF EXISTS {deliveries}"))
                .await
            {
                Ok(()) => dropped.days += 1,
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                    dropped.deferred += 1
                }
                Err(e) => {
                    let _ = self.client.batch_execute("RESET lock_timeout").await;
                    return Err(e.into());
                }
            }
        }
        self.client.batch_execute("RESET lock_timeout").await?;
        let row = self
            .client
            .query_one(
                // Each by its own index: the default's primary key, and the
                // partial indexes of waiting deliveries (small, whatever
                // the day's size). A rate-queued delivery has no due time.
                "WITH d AS (
                    DELETE FROM deliveries_default WHERE id < $1 RETURNING id
                 ), w AS (
                    DELETE FROM deliveries WHERE id < $1 AND next_attempt_at IS NOT NULL RETURNING id
                 ), q AS (
                    DELETE FROM deliveries WHERE id < $1 AND rate_queued RETURNING id
                 ), a AS (
                    DELETE FROM attempts
                    WHERE delivery_id = ANY (ARRAY(SELECT id FROM w UNION ALL SELECT id FROM q))
                 ), o AS (
                    DELETE FROM attempts_default WHERE delivery_id < $1
                 )
                 -- Every statement in WITH runs to completion, read or not.
                 SELECT count(*) FROM (SELECT id FROM d UNION SELECT id FROM w UNION SELECT id FROM q) AS gone",
                &[&floor],
            )
            .await?;
        let stragglers: i64 = row.try_get(0)?;
        dropped.stragglers = u64::try_from(stragglers).unwrap_or(0);
        Ok(dropped)
    }

    /// Ends the run: releases the lock and closes the connection.
    pub async fn finish(self) {
        // Closing the connection releases the lock anyway; unlocking first
        // lets another worker start at once.
        let _ = self.client.execute("SELECT pg_advisory_unlock($1)", &[&RETENTION_LOCK]).await;
    }
}
