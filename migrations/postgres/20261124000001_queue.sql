-- subsync queue schema (PostgreSQL). Forward-only: never edit an applied migration, add a new one.

-- One row per job. The unique key stays here until the job is pruned (retention window).
CREATE TABLE subsync_jobs (
    id               UUID PRIMARY KEY,                      -- UUID v7
    seq              BIGINT GENERATED ALWAYS AS IDENTITY,   -- enqueue order, for FIFO per group
    queue            TEXT NOT NULL,
    unique_key       TEXT,                                  -- e.g. Stripe event id
    group_key        TEXT NOT NULL,                         -- e.g. Stripe subscription id
    payload          JSONB NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'succeeded', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at           TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    lease_owner      TEXT,
    lease_token      UUID,
    lease_expires_at TIMESTAMPTZ,
    last_error       TEXT,
    CONSTRAINT subsync_jobs_unique_key UNIQUE (queue, unique_key),
    CONSTRAINT subsync_jobs_running_has_lease
        CHECK (state <> 'running' OR (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- The invariant itself, enforced by the database: never two running jobs of one group.
CREATE UNIQUE INDEX subsync_jobs_one_running_per_group
    ON subsync_jobs (queue, group_key) WHERE state = 'running';
-- A group's head (oldest due pending job) and operator listings by group.
CREATE INDEX subsync_jobs_group ON subsync_jobs (queue, group_key, state, seq);
-- Lease rescue scans only running jobs.
CREATE INDEX subsync_jobs_lease ON subsync_jobs (lease_expires_at) WHERE state = 'running';
-- Operator listings and pruning by state and age.
CREATE INDEX subsync_jobs_state_created ON subsync_jobs (state, created_at);
CREATE INDEX subsync_jobs_created ON subsync_jobs (created_at);

-- One small row per group: which job runs now, and a lower bound of when the next one is due.
-- A claim locks only the group rows it takes (FOR UPDATE SKIP LOCKED), so the cost of a claim
-- does not grow with the number of groups or of waiting jobs.
CREATE TABLE subsync_groups (
    queue          TEXT NOT NULL,
    group_key      TEXT NOT NULL,
    running_job_id UUID,
    next_run_at    TIMESTAMPTZ,
    PRIMARY KEY (queue, group_key)
);
CREATE INDEX subsync_groups_ready ON subsync_groups (queue, next_run_at)
    WHERE running_job_id IS NULL AND next_run_at IS NOT NULL;
