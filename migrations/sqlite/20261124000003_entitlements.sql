-- Subscription sync (worker writes, CLI/admin read). Times are INTEGER milliseconds since the
-- Unix epoch (UTC). Forward-only: never edit an applied migration, add a new one.

-- One row per Stripe subscription: the domain's order-independent state (serialized
-- subsync_domain::SubscriptionState) plus the columns the worker looks rows up by.
CREATE TABLE subsync_subscriptions (
    subscription_id TEXT PRIMARY KEY,
    state           TEXT NOT NULL,                 -- JSON SubscriptionState
    user_id         TEXT,                          -- resolved user; NULL while only payments are known
    customer_id     TEXT,
    status          TEXT,                          -- Stripe status of the newest snapshot
    updated_at      INTEGER NOT NULL,
    last_event_id   TEXT NOT NULL                  -- the event that last changed the state
) WITHOUT ROWID;
-- A user's entitlement is recomputed from all of that user's subscriptions.
CREATE INDEX subsync_subscriptions_user ON subsync_subscriptions (user_id) WHERE user_id IS NOT NULL;

-- The current answer for the app: what may this user do. Evaluated when an event changes one
-- of the user's subscriptions; `tier`/`features` hold until `access_until` (exclusive), after
-- which readers fall back to `lapse_tier`/`lapse_features` (see subsync_worker::entitlements).
CREATE TABLE subsync_entitlements (
    user_id          TEXT PRIMARY KEY,
    user_source      TEXT NOT NULL,                -- customer_id | client_reference_id | link_metadata | subscription_metadata
    tier             TEXT NOT NULL,
    features         TEXT NOT NULL,                -- JSON Features of `tier`
    lapse_tier       TEXT NOT NULL,                -- tier once access_until passes (free)
    lapse_features   TEXT NOT NULL,                -- JSON Features of `lapse_tier`
    subscription_id  TEXT NOT NULL,                -- the subscription that grants `tier`
    status           TEXT,                         -- its Stripe status
    reason           TEXT NOT NULL,                -- subsync_domain::AccessReason
    plan_tier        TEXT,                         -- the tier its prices map to (what is paid for)
    access_until     INTEGER,                      -- NULL: until the next status change
    period_end       INTEGER,
    updated_at       INTEGER NOT NULL,
    evaluated_at     INTEGER NOT NULL,             -- the instant `tier` was decided for
    last_event_id    TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX subsync_entitlements_updated ON subsync_entitlements (updated_at DESC, user_id);
-- For a future sweep that re-evaluates grants as they lapse.
CREATE INDEX subsync_entitlements_access_until ON subsync_entitlements (access_until)
    WHERE access_until IS NOT NULL;

-- Audit: every change of a user's tier, with its cause.
CREATE TABLE subsync_entitlement_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    from_tier       TEXT NOT NULL,
    to_tier         TEXT NOT NULL,
    cause_event_id  TEXT NOT NULL,
    job_id          TEXT,
    at              INTEGER NOT NULL
);
CREATE INDEX subsync_entitlement_history_user ON subsync_entitlement_history (user_id, id);
-- One event changes a user's tier at most once: a re-run can never duplicate history.
CREATE UNIQUE INDEX subsync_entitlement_history_cause ON subsync_entitlement_history (cause_event_id, user_id);

-- What the worker did with each event: stale and ignored events are visible as skipped,
-- not as errors. The first successful run's outcome is kept (re-runs do not overwrite it).
CREATE TABLE subsync_event_outcomes (
    event_id        TEXT PRIMARY KEY,
    job_id          TEXT,
    subscription_id TEXT,
    outcome         TEXT NOT NULL CHECK (outcome IN ('applied', 'stale', 'unchanged', 'ignored')),
    reason          TEXT,
    at              INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX subsync_event_outcomes_outcome ON subsync_event_outcomes (outcome, at);
CREATE INDEX subsync_event_outcomes_subscription ON subsync_event_outcomes (subscription_id, at);
