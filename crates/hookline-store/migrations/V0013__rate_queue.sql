-- A delivery of a rate-limited webhook that cannot go now waits here, in
-- Postgres, instead of hopping through the broker's delay tiers: it is
-- marked `rate_queued` with no due time (its time is the limiter's to
-- give), its message acked. Every worker's rate pump hands the queued ones
-- out in delivery order from the webhook's `webhook_rate` row, a tick's
-- worth at a time (`hookline_core::rate::release`): each gets its due time
-- and one message. The pump is the way forward; reconciliation and the
-- unstarted scan leave queued deliveries alone (no due time, and
-- excluded by name where they look for pending deliveries without one).
ALTER TABLE deliveries ADD COLUMN rate_queued boolean NOT NULL DEFAULT false;
-- Only queued deliveries are in it, in the pump's order. Every other
-- update writes `false` over `false`, which keeps it HOT (see V0006).
CREATE INDEX deliveries_rate_queue_idx ON deliveries (webhook_id, id) WHERE rate_queued;
