-- Recovery probes: a suspended webhook with `recovery_probe` is sent a
-- signed `hookline.probe` on a backoff (`recovery_next_at`, the probe's due
-- time and, while a worker makes it, that worker's lease;
-- `recovery_interval_ms`, the wait that led to it), and resumed by the
-- first 2xx.

-- A probe's attempt is recorded with trigger `probe`. Rows already there
-- satisfy the narrower check they were written under, so the wider one is
-- not validated against them: no scan of the largest table under an
-- exclusive lock.
ALTER TABLE attempts DROP CONSTRAINT attempts_trigger_check;
ALTER TABLE attempts ADD CONSTRAINT attempts_trigger_check
    CHECK (trigger IN ('scheduled', 'manual', 'recover', 'probe')) NOT VALID;

-- The schedule belongs to one suspension: it is cleared whenever a webhook
-- stops being suspended, whichever statement does it (`resume`, a probe's
-- success, a manual or recover attempt's success), so the next suspension
-- starts with its first probe one first interval after it. The WHEN clause
-- is checked before any trigger work, so updates that leave no schedule
-- behind (every attempt's) cost nothing.
CREATE FUNCTION webhook_recovery_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.recovery_next_at := NULL;
    NEW.recovery_interval_ms := NULL;
    RETURN NEW;
END
$$;

CREATE TRIGGER webhooks_recovery_reset
    BEFORE UPDATE OF status ON webhooks
    FOR EACH ROW
    WHEN (NEW.status <> 'suspended'
          AND (NEW.recovery_next_at IS NOT NULL OR NEW.recovery_interval_ms IS NOT NULL))
    EXECUTE FUNCTION webhook_recovery_reset();
