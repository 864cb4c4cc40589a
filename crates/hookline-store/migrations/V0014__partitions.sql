-- Retention by time partitions (issue 19): removing a day of deliveries and
-- attempts is dropping two tables, with no row deleted and nothing left for
-- vacuum, where deleting them row by row (V0012) slowed the deliveries
-- beside it by 8-19 % (docs/BENCHMARKS.md, retention).
--
-- `deliveries` is range-partitioned by `id`: a delivery's id is a UUIDv7
-- stamped with its event's acceptance time (`DeliveryId::derive`), so one
-- partition per UTC day holds the deliveries of that day's events.
-- `attempts` is partitioned by `delivery_id` on the same bounds, so an
-- attempt lives beside its delivery and goes with it, however late it was
-- made. A partition is named by its day (`deliveries_p20261207`); rows
-- outside every day partition (a day not made yet, a recovery probe of a
-- suspension older than the oldest day kept) go to the `_default`
-- partitions, where retention deletes them row by row (a handful).
--
-- What this changes in the keys:
-- - A delivery is unique by its id alone. Every copy of an event message
--   carries the acceptance time, so every copy derives the same ids, and
--   the primary key makes a copy a duplicate. `UNIQUE (tenant, event_id,
--   webhook_id)` (which Postgres could not enforce across partitions) goes;
--   the same columns keep a plain index for the event's lookups.
-- - The cascading keys from attempts to deliveries and from deliveries to
--   events go: a partition referenced by a key cannot be dropped without
--   checking every referencing row. Events stay one table (their key
--   `(tenant, id)` deduplicates ingest across any time), deleted row by
--   row by `received_at`, now without cascading into two more tables.
--   Deleting a webhook or a tenant deletes its attempts itself.
--
-- Existing rows are copied into the partitioned tables (a rewrite: on an
-- install with many rows this migration takes as long as writing them
-- again, about 10 s per million deliveries on the benchmark machine).

ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_delivery_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_tenant_event_id_fkey;
ALTER TABLE deliveries RENAME TO deliveries_v13;
ALTER TABLE attempts RENAME TO attempts_v13;

CREATE TABLE deliveries (
    id              uuid        NOT NULL,
    tenant          text        NOT NULL,
    event_id        text        NOT NULL,
    webhook_id      uuid        NOT NULL,
    event_type      text        NOT NULL,
    state           text        NOT NULL,
    attempt_count   integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    claimed_until   timestamptz,
    next_trigger    text,
    awaits_probe    boolean     NOT NULL DEFAULT false,
    rate_queued     boolean     NOT NULL DEFAULT false,
    CONSTRAINT deliveries_state_check
        CHECK (state IN ('pending', 'delivered', 'retrying', 'failed', 'suspended', 'skipped')),
    CONSTRAINT deliveries_next_trigger_check CHECK (next_trigger IN ('manual', 'recover'))
) PARTITION BY RANGE (id);

CREATE TABLE attempts (
    id               uuid        NOT NULL,
    delivery_id      uuid        NOT NULL,
    attempt_no       integer     NOT NULL,
    sent_at          timestamptz NOT NULL,
    received_at      timestamptz,
    duration_ms      integer     NOT NULL,
    status_code      integer,
    error_kind       text,
    error_message    text,
    response_excerpt text,
    retry_reason     text,
    next_attempt_at  timestamptz,
    trigger          text        NOT NULL DEFAULT 'scheduled',
    recorded_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    failure_count    integer,
    trace_id         text,
    CONSTRAINT attempts_trigger_check CHECK (trigger IN ('scheduled', 'manual', 'recover', 'probe'))
) PARTITION BY RANGE (delivery_id);

CREATE TABLE deliveries_default PARTITION OF deliveries DEFAULT WITH (fillfactor = 80);
CREATE TABLE attempts_default PARTITION OF attempts DEFAULT;

-- The lowest UUIDv7 of a UTC day: its first millisecond, every other bit
-- zero (below any id stamped in that millisecond, whose version bits are 7).
CREATE FUNCTION hookline_day_bound(day date) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-0000-0000-000000000000')::uuid
    FROM (SELECT lpad(to_hex((extract(epoch FROM day::timestamp) * 1000)::bigint), 12, '0') AS h) AS hex
$$;

-- Makes the day partitions of `deliveries` and `attempts` from `first_day`
-- to `last_day` (UTC days, both included) that do not exist yet; returns
-- how many days it made. Every worker calls it, at start and then hourly,
-- for the days ahead (see the store's `retention.rs`); the benchmark and
-- the tests call it for the days they backdate rows into.
--
-- A partition is made as a table of its own and then attached, which
-- locks the parent only against other schema changes (SHARE UPDATE
-- EXCLUSIVE), not against reads and writes. Rows of that day already in a
-- default partition (written before the day was made) move into it first.
CREATE FUNCTION hookline_make_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day  date;
    lo   uuid;
    hi   uuid;
    name text;
    made integer := 0;
BEGIN
    -- One maker at a time ("hlpart"): two workers starting together.
    PERFORM pg_advisory_xact_lock(x'0000686c70617274'::bigint);
    FOR day IN SELECT generate_series(first_day, last_day, interval '1 day')::date LOOP
        name := to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass('deliveries_p' || name) IS NOT NULL;
        lo := hookline_day_bound(day);
        hi := hookline_day_bound(day + 1);
        EXECUTE format('CREATE TABLE %I (LIKE deliveries INCLUDING DEFAULTS INCLUDING CONSTRAINTS) WITH (fillfactor = 80)',
                       'deliveries_p' || name);
        EXECUTE format('CREATE TABLE %I (LIKE attempts INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', 'attempts_p' || name);
        -- The rows the defaults hold for this day, moved (rare: a day made
        -- late). Deleted from the default before attaching, since attaching
        -- checks that the default holds none of the day's range.
        EXECUTE format('WITH m AS (DELETE FROM deliveries_default WHERE id >= %L AND id < %L RETURNING *)
                        INSERT INTO %I SELECT * FROM m', lo, hi, 'deliveries_p' || name);
        EXECUTE format('WITH m AS (DELETE FROM attempts_default WHERE delivery_id >= %L AND delivery_id < %L RETURNING *)
                        INSERT INTO %I SELECT * FROM m', lo, hi, 'attempts_p' || name);
        EXECUTE format('ALTER TABLE deliveries ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       'deliveries_p' || name, lo, hi);
        EXECUTE format('ALTER TABLE attempts ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       'attempts_p' || name, lo, hi);
        made := made + 1;
    END LOOP;
    RETURN made;
END
$$;

-- The days the existing rows of the last 35 need, and the next week's.
-- Older rows (and ids that are not UUIDv7 of a sane time) go to the default
-- partitions: a partition per day of a long history would take more locks
-- than one transaction may hold, and at the default window of 30 days
-- retention deletes them at its first run anyway.
DO $$
DECLARE
    first_day date;
BEGIN
    SELECT to_timestamp(('x' || lpad(substr(replace(id::text, '-', ''), 1, 12), 16, '0'))::bit(64)::bigint / 1000.0)::date
    INTO first_day
    FROM deliveries_v13 WHERE id >= hookline_day_bound(date '2020-01-01') ORDER BY id LIMIT 1;
    first_day := GREATEST(COALESCE(first_day, current_date), current_date - 35);
    PERFORM hookline_make_partitions(LEAST(first_day, current_date - 1), current_date + 7);
END
$$;

INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, attempt_count, next_attempt_at,
                        created_at, updated_at, claimed_until, next_trigger, awaits_probe, rate_queued)
SELECT id, tenant, event_id, webhook_id, event_type, state, attempt_count, next_attempt_at,
       created_at, updated_at, claimed_until, next_trigger, awaits_probe, rate_queued
FROM deliveries_v13;
INSERT INTO attempts (id, delivery_id, attempt_no, sent_at, received_at, duration_ms, status_code, error_kind,
                      error_message, response_excerpt, retry_reason, next_attempt_at, trigger, recorded_at,
                      failure_count, trace_id)
SELECT id, delivery_id, attempt_no, sent_at, received_at, duration_ms, status_code, error_kind,
       error_message, response_excerpt, retry_reason, next_attempt_at, trigger, recorded_at,
       failure_count, trace_id
FROM attempts_v13;
DROP TABLE attempts_v13;
DROP TABLE deliveries_v13;

-- Keys and indexes, made on every partition (and on each one made later).
ALTER TABLE deliveries ADD PRIMARY KEY (id);
ALTER TABLE deliveries ADD CONSTRAINT deliveries_webhook_id_fkey
    FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE;
ALTER TABLE attempts ADD PRIMARY KEY (delivery_id, attempt_no);
-- An event's deliveries (the careful path's redelivery, recover's replay).
CREATE INDEX deliveries_event_idx ON deliveries (tenant, event_id, webhook_id);
CREATE INDEX deliveries_webhook_idx ON deliveries (webhook_id, id DESC);
CREATE INDEX deliveries_tenant_idx ON deliveries (tenant, id DESC);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_probe_queue_idx ON deliveries (webhook_id, next_attempt_at) WHERE awaits_probe;
CREATE INDEX deliveries_rate_queue_idx ON deliveries (webhook_id, id) WHERE rate_queued;
