-- Operational events: a webhook becoming unhealthy, suspended or healthy
-- again, or being disabled, is recorded here by a trigger, in the very
-- transaction that makes the change, whichever code path that is (an
-- attempt recorded, a resume, a PATCH). Every worker's relay publishes the
-- rows as events of the webhook's tenant (`hookline.webhook.<kind>`, event
-- id `hookline-change-<id>`) and marks them published: Postgres is the
-- record, nothing depends on a broker message still existing.

CREATE TABLE webhook_health_changes (
    id                   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id           uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    tenant               text        NOT NULL,
    kind                 text        NOT NULL
                                     CHECK (kind IN ('unhealthy', 'suspended', 'recovered', 'disabled')),
    from_status          text        NOT NULL,
    to_status            text        NOT NULL,
    -- The webhook's consecutive failures after the change.
    consecutive_failures integer     NOT NULL,
    -- Why. Set by the trigger for `recovered` and `disabled`; for a failure
    -- the relay writes the failed attempt's reason when it publishes.
    reason               text,
    at                   timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- A relay's lease while it publishes the row (a relay that dies loses
    -- it; the next one publishes the same event id again).
    claimed_until        timestamptz,
    published_at         timestamptz,
    -- The event published; NULL when none was (no webhook of the tenant
    -- subscribes to it).
    event_id             text
);
-- The relay's queue, and the trigger's look at a webhook's latest
-- unannounced change: only unpublished rows, a handful at any time.
CREATE INDEX webhook_health_changes_unpublished_idx ON webhook_health_changes (webhook_id, id)
    WHERE published_at IS NULL;
-- A webhook's recent health changes, newest first (the portal).
CREATE INDEX webhook_health_changes_recent_idx ON webhook_health_changes (webhook_id, at DESC);

-- Flapping: a receiver failing every other request makes its webhook go
-- healthy -> unhealthy -> healthy per request. A change between `healthy`
-- and `unhealthy` that undoes the webhook's latest change while that one is
-- still unannounced (not published, not claimed by a relay) cancels it: the
-- row is deleted and none is added. The relay holds such changes for a
-- settle time before publishing them (`HOOKLINE_OPERATIONAL_SETTLE_MS`), so
-- a flapping webhook adds at most one event per settle time, and a table
-- row only for a change that held.
CREATE FUNCTION webhook_health_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    latest webhook_health_changes%ROWTYPE;
BEGIN
    IF OLD.active AND NOT NEW.active THEN
        INSERT INTO webhook_health_changes
            (webhook_id, tenant, kind, from_status, to_status, consecutive_failures, reason)
        VALUES (NEW.id, NEW.tenant, 'disabled', OLD.status, NEW.status, NEW.consecutive_failures, 'disabled');
    END IF;
    IF OLD.status IS DISTINCT FROM NEW.status THEN
        IF (OLD.status = 'healthy' AND NEW.status = 'unhealthy')
           OR (OLD.status = 'unhealthy' AND NEW.status = 'healthy') THEN
            SELECT * INTO latest FROM webhook_health_changes
            WHERE webhook_id = NEW.id AND published_at IS NULL
            ORDER BY id DESC LIMIT 1;
            IF FOUND AND latest.kind IN ('unhealthy', 'recovered')
               AND latest.from_status = NEW.status AND latest.to_status = OLD.status THEN
                -- A relay's row (locked or leased) is left alone: it is
                -- being announced, so this change is announced too.
                DELETE FROM webhook_health_changes
                WHERE id = (SELECT id FROM webhook_health_changes
                            WHERE id = latest.id AND published_at IS NULL
                              AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
                            FOR UPDATE SKIP LOCKED);
                IF FOUND THEN
                    RETURN NULL;
                END IF;
            END IF;
        END IF;
        INSERT INTO webhook_health_changes
            (webhook_id, tenant, kind, from_status, to_status, consecutive_failures, reason)
        VALUES (
            NEW.id, NEW.tenant,
            CASE NEW.status WHEN 'healthy' THEN 'recovered' ELSE NEW.status END,
            OLD.status, NEW.status, NEW.consecutive_failures,
            CASE
                WHEN NEW.status <> 'healthy' THEN NULL
                -- A success writes `last_success_at`; `resume` does not.
                WHEN NEW.last_success_at IS DISTINCT FROM OLD.last_success_at THEN 'a delivery succeeded'
                ELSE 'resumed by API'
            END
        );
    END IF;
    RETURN NULL;
END
$$;

-- Fires only for a real change: the WHEN clause is checked before any
-- trigger work is queued, so the many updates that write `status` without
-- changing it (every failure of an already unhealthy webhook) cost nothing.
CREATE TRIGGER webhooks_health_change
    AFTER UPDATE OF status, active ON webhooks
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR (OLD.active AND NOT NEW.active))
    EXECUTE FUNCTION webhook_health_change();
