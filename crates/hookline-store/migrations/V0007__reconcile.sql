-- Postgres is the record. Every delivery that waits for an automatic step
-- (`pending` or `retrying`) says in `next_attempt_at` when that step is due,
-- and every delivery message carries that time as its fence: a message whose
-- time no longer matches does nothing. Workers reconcile: a step overdue by
-- more than a grace is published again, whether or not its message still
-- exists. (A pending delivery with no due time is being attempted straight
-- from its event message, which stays unacked until it is recorded.)
ALTER TABLE deliveries
    -- Set while a worker attempts the delivery from a delivery message, so a
    -- second copy of the message cannot attempt it at the same time; it
    -- expires (a killed worker), after which the step may be taken again.
    ADD COLUMN claimed_until timestamptz,
    -- What the due step is when it is not the automatic schedule: `recover`
    -- for a queued replay, `manual` for a test send.
    ADD COLUMN next_trigger  text CHECK (next_trigger IN ('manual', 'recover'));

-- Only waiting deliveries have a due time.
UPDATE deliveries SET next_attempt_at = NULL
WHERE state NOT IN ('pending', 'retrying') AND next_attempt_at IS NOT NULL;
-- Waiting deliveries from before have a due time now, so the reconciler
-- looks at each once (a copy of a message still queued is then fenced off).
UPDATE deliveries SET next_attempt_at = date_trunc('milliseconds', now())
WHERE state IN ('pending', 'retrying') AND next_attempt_at IS NULL;
UPDATE deliveries SET next_attempt_at = date_trunc('milliseconds', next_attempt_at)
WHERE next_attempt_at IS NOT NULL;

-- The reconciler's index: waiting deliveries by due time. Its key and
-- predicate read only `next_attempt_at`, which a first attempt's success
-- leaves NULL, so that update stays HOT (see V0006).
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
