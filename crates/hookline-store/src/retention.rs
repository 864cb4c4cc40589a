//! Retention: events older than the window are removed, with their
//! deliveries and attempts, in small paced batches.
//!
//! Why not time partitions (dropping a day's partition costs nothing and
//! leaves no dead rows): an event's primary key `(tenant, id)` and a
//! delivery's `UNIQUE (tenant, event_id, webhook_id)` are what make a
//! redelivered event a duplicate, and a partitioned table can only enforce
//! uniqueness over keys that include the partition key. So rows are deleted,
//! in batches that are each their own short transaction, oldest first (by
//! `events.received_at`, indexed for this in V0012); an event's deliveries
//! and their attempts go with it through the `ON DELETE CASCADE` foreign
//! keys of V0001. The caller paces the batches so that autovacuum can make
//! the space reusable as fast as it is freed: the tables stay the size of
//! the window instead of growing (see V0012 for the vacuum settings).
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

/// What one batch removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removed {
    /// Events removed (their deliveries and attempts went with them).
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
    /// first, in one transaction (the statement's own), with their
    /// deliveries and attempts. Rows another transaction holds locked are
    /// skipped (the next run takes them). `from` is the previous batch's
    /// [`Removed::through`], so a batch never walks over index entries of
    /// rows already removed whose space vacuum has not reclaimed yet.
    ///
    /// The events are deleted by the row addresses the lock returned (each
    /// locked by this statement, so none can move before the delete),
    /// which spares a probe of the primary key per event. Their deliveries
    /// and attempts go through the cascade, row by row: deleting them first
    /// in the same statement (one set-based DELETE per table) was measured
    /// slower, 45–50 ms a batch of 1,000 against 30–36 ms, because the
    /// foreign keys' triggers still run once per deleted row to find
    /// nothing, and that per-row call is what the cascade costs.
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

    /// Ends the run: releases the lock and closes the connection.
    pub async fn finish(self) {
        // Closing the connection releases the lock anyway; unlocking first
        // lets another worker start at once.
        let _ = self.client.execute("SELECT pg_advisory_unlock($1)", &[&RETENTION_LOCK]).await;
    }
}
