-- Durable retries and webhook health.

-- Delivery states of the retry model: `succeeded` is now `delivered`, and
-- `retrying` marks a delivery whose next attempt waits in a broker tier.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
UPDATE deliveries SET state = 'delivered' WHERE state = 'succeeded';
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('pending', 'delivered', 'retrying', 'failed', 'suspended', 'skipped'));

-- What the API shows of a webhook's health history.
ALTER TABLE webhooks
    ADD COLUMN last_success_at timestamptz,
    ADD COLUMN last_failure_at timestamptz,
    ADD COLUMN suspended_at    timestamptz;

ALTER TABLE attempts
    -- What caused the attempt.
    ADD COLUMN trigger       text        NOT NULL DEFAULT 'scheduled'
                                         CHECK (trigger IN ('scheduled', 'manual', 'recover')),
    -- When the attempt was committed (clock time, after the webhook row lock
    -- of a failure was taken, so failures of one webhook are ordered).
    ADD COLUMN recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- For a failed attempt: the webhook's consecutive failures after it.
    ADD COLUMN failure_count integer;

-- `recover` finds a webhook's failed and suspended deliveries by time.
CREATE INDEX deliveries_recoverable_idx ON deliveries (webhook_id, created_at)
    WHERE state IN ('failed', 'suspended');
