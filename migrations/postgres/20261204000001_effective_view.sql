-- The application's contract (docs/integrating.md): a per-user `version` that only grows, and
-- the view `subsync_effective_entitlements`, which applies the lapse rule at read time so an
-- application sharing the database never re-implements it. Forward-only.

-- Raised by the worker (in the upsert itself) whenever the stored decision changes: at least
-- old + 1, and at least the write's Unix time in milliseconds, so it keeps growing even when
-- the row is removed and later created again. 0: never written since this migration.
ALTER TABLE subsync_entitlements ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- What each known user may do now. Must agree with subsync_worker::entitlements (a test on
-- both backends holds them together). `now()` is the start of the reading transaction.
-- A user without a row has the `free` tier of the tier file.
CREATE VIEW subsync_effective_entitlements AS
SELECT
    e.user_id AS user_id,
    CASE WHEN l.lapsed THEN e.lapse_tier ELSE e.tier END AS tier,
    CASE WHEN l.lapsed THEN e.lapse_features ELSE e.features END AS features,
    e.status AS status,
    CASE
        WHEN NOT l.lapsed THEN e.reason
        WHEN e.reason = 'cancels_at_period_end' THEN 'period_ended'
        WHEN e.reason = 'past_due_grace' AND e.access_until = e.period_end THEN 'period_ended'
        WHEN e.reason = 'past_due_grace' THEN 'grace_expired'
        ELSE e.reason
    END AS reason,
    e.access_until AS access_until,
    e.period_end AS period_end,
    e.version AS version,
    e.evaluated_at AS evaluated_at,
    l.lapsed AS lapsed
FROM subsync_entitlements e
CROSS JOIN LATERAL (SELECT COALESCE(e.access_until <= now(), false) AS lapsed) l;
