-- Stripe events as received (intake writes, worker reads). The raw body is kept byte for byte
-- (TEXT, not JSONB: JSONB would reorder keys and lose the exact bytes that were signed).
CREATE TABLE subsync_events (
    event_id     TEXT PRIMARY KEY,                 -- Stripe event.id; also the job's unique key
    event_type   TEXT NOT NULL,
    created      BIGINT,                           -- event.created (unix seconds); NULL for thin events
    livemode     BOOLEAN NOT NULL,
    api_version  TEXT,
    object_kind  TEXT NOT NULL,                    -- 'event' or 'v2.core.event' (thin)
    group_key    TEXT NOT NULL,                    -- subscription id, else customer id, else ''
    disposition  TEXT NOT NULL CHECK (disposition IN ('handled', 'ignored', 'unsupported')),
    payload      TEXT NOT NULL,                    -- raw body
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    job_id       UUID                              -- the sync job (NULL when not handled)
);
CREATE INDEX subsync_events_group ON subsync_events (group_key, created);
CREATE INDEX subsync_events_received ON subsync_events (received_at);
