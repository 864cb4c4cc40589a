-- Per-webhook settings of issue 19: extra request headers, a rate limit
-- shared by every worker, and recovery probes for a suspended webhook.

-- `headers` is a JSON array of {"name", "value", "secret"}; a secret value
-- is sealed like the token (`secret.rs`), never stored in plaintext.
-- `rate_limit` is requests per second across all workers (NULL: none).
-- `recovery_probe`: while suspended, send a signed `hookline.probe` on a
-- backoff and resume on the first 2xx; `recovery_replay`: also recover what
-- was held while suspended. `recovery_next_at` / `recovery_interval_ms` are
-- the probe's schedule (NULL while the webhook is not suspended).
ALTER TABLE webhooks
    ADD COLUMN headers              jsonb   NOT NULL DEFAULT '[]',
    ADD COLUMN rate_limit           integer CHECK (rate_limit IS NULL OR rate_limit > 0),
    ADD COLUMN recovery_probe       boolean NOT NULL DEFAULT false,
    ADD COLUMN recovery_replay      boolean NOT NULL DEFAULT false,
    ADD COLUMN recovery_next_at     timestamptz,
    ADD COLUMN recovery_interval_ms integer;

-- Suspended webhooks whose probe is due: the probe loop's only read.
CREATE INDEX webhooks_recovery_due_idx ON webhooks (recovery_next_at)
    WHERE recovery_probe AND status = 'suspended';

-- The shared rate limiter (`hookline_core::rate`): one row per
-- rate-limited webhook with the requests sent in the current second (a hard
-- count, never above the cap) and the end of its queue (when the next
-- request that must wait is told to come back). Read and written under the
-- row's lock on the database's clock, one clock for every worker. No
-- indexed column changes, so updates stay HOT in the half-empty pages.
CREATE TABLE webhook_rate (
    webhook_id uuid        PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    second     bigint      NOT NULL DEFAULT 0,
    used       integer     NOT NULL DEFAULT 0,
    next_free  timestamptz NOT NULL DEFAULT 'epoch'
) WITH (fillfactor = 50);
