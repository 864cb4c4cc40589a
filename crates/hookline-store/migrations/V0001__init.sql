-- Hookline's initial schema: webhooks, events, deliveries and their attempts.
-- Every table carries the tenant (account) it belongs to; `default` when the
-- producer of an event names none.

CREATE TABLE webhooks (
    id                   uuid        PRIMARY KEY,
    tenant               text        NOT NULL DEFAULT 'default',
    name                 text        NOT NULL,
    url                  text        NOT NULL,
    token                text        NOT NULL,
    events               text[]      NOT NULL,
    active               boolean     NOT NULL DEFAULT true,
    status               text        NOT NULL DEFAULT 'healthy'
                                     CHECK (status IN ('healthy', 'unhealthy', 'suspended')),
    consecutive_failures integer     NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
-- Fan-out reads the active webhooks of one tenant for every event.
CREATE INDEX webhooks_tenant_active_idx ON webhooks (tenant, id) WHERE active;

CREATE TABLE events (
    tenant        text        NOT NULL,
    id            text        NOT NULL,
    event_type    text        NOT NULL,
    -- The exact bytes POSTed to receivers and signed: never re-serialised.
    body          bytea       NOT NULL,
    triggered_at  timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    -- Set once every delivery message of the event is confirmed by the broker;
    -- a redelivered event message with this set is a duplicate.
    dispatched_at timestamptz,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE deliveries (
    id              uuid        PRIMARY KEY,
    tenant          text        NOT NULL,
    event_id        text        NOT NULL,
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type      text        NOT NULL,
    state           text        NOT NULL
                                CHECK (state IN ('pending', 'succeeded', 'failed', 'suspended', 'skipped')),
    attempt_count   integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    FOREIGN KEY (tenant, event_id) REFERENCES events (tenant, id) ON DELETE CASCADE,
    -- One delivery per (event, webhook), however often the event arrives.
    UNIQUE (tenant, event_id, webhook_id)
);
-- The event log of a webhook, newest first (ids are UUIDv7, so time-ordered).
CREATE INDEX deliveries_webhook_idx ON deliveries (webhook_id, id DESC);

CREATE TABLE attempts (
    id               uuid        PRIMARY KEY,
    delivery_id      uuid        NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
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
    UNIQUE (delivery_id, attempt_no)
);
