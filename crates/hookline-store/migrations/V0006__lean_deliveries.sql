-- The hot path updates every delivery once or twice (pending → delivered,
-- retrying, …). A partial index whose predicate reads `state` makes every
-- such update a non-HOT update that writes a new entry in each of the
-- table's indexes. `recover` now narrows its scan by id range on
-- deliveries_webhook_idx (ids are UUIDv7, time-ordered) instead, so the
-- partial index goes, and pages keep room for updated row versions so they
-- stay on the same page (HOT: no index writes at all).
DROP INDEX deliveries_recoverable_idx;
ALTER TABLE deliveries SET (fillfactor = 80);
-- Events are updated once (dispatched_at), with nothing indexed changing.
ALTER TABLE events SET (fillfactor = 90);
