-- An unhealthy webhook gets one request at a time across all workers (a
-- probe), so it is suspended after exactly the threshold of failures: the
-- worker sending it holds this lease until its outcome is recorded (or the
-- lease runs out, if that worker died).
ALTER TABLE webhooks ADD COLUMN probe_until timestamptz;

-- A delivery whose webhook's probe was in flight waits its turn here, not on
-- the broker: when the probe's outcome is recorded, the worker hands the
-- turn to the oldest waiting delivery (or, on a success, to all of them).
-- Its due time is the reconciler's fallback should the turn never come.
ALTER TABLE deliveries ADD COLUMN awaits_probe boolean NOT NULL DEFAULT false;
-- Only waiting deliveries are in it; a first attempt's success writes
-- `false` over `false`, which keeps that update HOT (see V0006).
CREATE INDEX deliveries_probe_queue_idx ON deliveries (webhook_id, next_attempt_at) WHERE awaits_probe;
