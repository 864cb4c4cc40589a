-- Retention (HOOKLINE_RETENTION, default 30 days): a worker removes events
-- received before the window, oldest first, in small batches; their
-- deliveries and attempts go with them through the ON DELETE CASCADE keys
-- of V0001 (deliveries -> events, attempts -> deliveries, each served by the
-- index of a UNIQUE constraint that leads with the referencing columns).
-- Not time partitions: events' primary key (tenant, id) and deliveries'
-- UNIQUE (tenant, event_id, webhook_id) deduplicate redelivered events, and
-- a partitioned table can only enforce uniqueness that includes the
-- partition key.

-- The batches' only read: the oldest events first. Events are written once
-- with their received time and it never changes, so the dispatched mark
-- stays a HOT update. (Built in the migration's transaction: on an install
-- that already holds many events, this blocks event writes for as long as
-- the build takes: about a second per million events on the benchmark
-- machine.)
CREATE INDEX events_received_idx ON events (received_at);

-- Space freed by the batches is reusable once vacuum has passed. At the
-- default scale factor (20 % of the table) a table would grow by a fifth
-- of the window before autovacuum came; at 2 % it stays within a fiftieth
-- of its steady size. Vacuum visits only the pages that changed (the
-- visibility map skips the rest).
ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE attempts SET (autovacuum_vacuum_scale_factor = 0.02);

-- The latest cutoff a retention run applied: everything received before it
-- is removed (or being removed). `recover` reads it to say which part of a
-- window is past retention. One row at most.
CREATE TABLE retention (
    only_row       boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    removed_before timestamptz NOT NULL,
    run_at         timestamptz NOT NULL
);
