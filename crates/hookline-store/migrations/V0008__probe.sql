-- An unhealthy webhook gets fewer requests at a time across all workers
-- (probes) the closer it is to suspension: at most half of the failures it
-- has left, one at the end, so it is suspended after exactly the threshold
-- of failures. `probes` counts those in flight; `probe_until` is the lease
-- of the group, renewed by each probe taken: should a worker die holding
-- one, the count starts afresh once the lease runs out.
ALTER TABLE webhooks
    ADD COLUMN probe_until timestamptz,
    ADD COLUMN probes      integer NOT NULL DEFAULT 0;

-- A delivery whose webhook's probe was in flight waits its turn here, not on
-- the broker: when the probe's outcome is recorded, the worker hands the
-- turn to the oldest waiting delivery (or, on a success, to all of them).
-- Its due time is the reconciler's fallback should the turn never come.
ALTER TABLE deliveries ADD COLUMN awaits_probe boolean NOT NULL DEFAULT false;
-- Only waiting deliveries are in it; a first attempt's success writes
-- `false` over `false`, which keeps that update HOT (see V0006).
CREATE INDEX deliveries_probe_queue_idx ON deliveries (webhook_id, next_attempt_at) WHERE awaits_probe;
