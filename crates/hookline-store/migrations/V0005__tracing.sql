-- Observability: each attempt's trace id (the log links to the trace), and
-- when an event was accepted by the producer (the start of its ingest →
-- delivery latency; NULL for events published straight to the exchange,
-- whose latency starts when they are dispatched).

ALTER TABLE attempts ADD COLUMN trace_id text;
ALTER TABLE events ADD COLUMN ingested_at timestamptz;
