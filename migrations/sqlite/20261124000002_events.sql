-- Stripe events as received (intake writes, worker reads). Raw body kept byte for byte.
CREATE TABLE subsync_events (
    event_id     TEXT PRIMARY KEY,
    event_type   TEXT NOT NULL,
    created      INTEGER,
    livemode     INTEGER NOT NULL,                 -- 0/1
    api_version  TEXT,
    object_kind  TEXT NOT NULL,
    group_key    TEXT NOT NULL,
    disposition  TEXT NOT NULL CHECK (disposition IN ('handled', 'ignored', 'unsupported')),
    payload      TEXT NOT NULL,
    received_at  INTEGER NOT NULL,                 -- unix milliseconds
    job_id       TEXT
) WITHOUT ROWID;
CREATE INDEX subsync_events_group ON subsync_events (group_key, created);
CREATE INDEX subsync_events_received ON subsync_events (received_at);
