-- Scheduled duties (reconcile with Stripe's API, prune past retention), owned by
-- subsync-duties. One row per duty: who holds its lease (one runner at a time across every
-- process and machine), where it got to (`checkpoint`, e.g. reconcile's high-water mark in
-- unix seconds; it only moves forward), and how its last run went, for operators.
CREATE TABLE subsync_duties (
    name             TEXT PRIMARY KEY,
    leader           TEXT,                       -- the process holding the lease, if any
    lease_until      INTEGER,                    -- unix milliseconds; a lease past it is free
    checkpoint       BIGINT,
    last_started_at  INTEGER,                    -- unix milliseconds
    last_finished_at INTEGER,
    last_success_at  INTEGER,                     -- the last run that succeeded
    last_ok          INTEGER,                    -- 1 ok, 0 failed
    last_result      TEXT,                       -- JSON: what the run did
    last_error       TEXT,
    last_runner      TEXT,
    runs             BIGINT NOT NULL DEFAULT 0,
    failures         BIGINT NOT NULL DEFAULT 0
) WITHOUT ROWID;
