-- subsync queue schema (SQLite). Times are INTEGER milliseconds since the Unix epoch (UTC).
-- Forward-only: never edit an applied migration, add a new one.

CREATE TABLE subsync_jobs (
    seq              INTEGER PRIMARY KEY,                   -- enqueue order, for FIFO per group
    id               TEXT NOT NULL UNIQUE,                  -- UUID v7, hyphenated
    queue            TEXT NOT NULL,
    unique_key       TEXT,
    group_key        TEXT NOT NULL,
    payload          TEXT NOT NULL,                         -- JSON
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'succeeded', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    UNIQUE (queue, unique_key),
    CHECK (state <> 'running' OR (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL))
);

CREATE UNIQUE INDEX subsync_jobs_one_running_per_group
    ON subsync_jobs (queue, group_key) WHERE state = 'running';
CREATE INDEX subsync_jobs_group ON subsync_jobs (queue, group_key, state, seq);
CREATE INDEX subsync_jobs_lease ON subsync_jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX subsync_jobs_state_created ON subsync_jobs (state, created_at);
CREATE INDEX subsync_jobs_created ON subsync_jobs (created_at);

CREATE TABLE subsync_groups (
    queue          TEXT NOT NULL,
    group_key      TEXT NOT NULL,
    running_job_id TEXT,
    next_run_at    INTEGER,
    PRIMARY KEY (queue, group_key)
) WITHOUT ROWID;
CREATE INDEX subsync_groups_ready ON subsync_groups (queue, next_run_at)
    WHERE running_job_id IS NULL AND next_run_at IS NOT NULL;
