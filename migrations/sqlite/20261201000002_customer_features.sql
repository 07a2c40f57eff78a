-- The newest Stripe Entitlements summary per customer (worker writes; the tier file's
-- `source = "stripe_entitlements"` or `"both"` turns its features into grants). Stripe sends
-- the whole list each time, so the newest summary wins: ordered by the event's `created`
-- second, then its id.
CREATE TABLE subsync_customer_features (
    customer_id   TEXT PRIMARY KEY,
    lookup_keys   TEXT NOT NULL,                  -- JSON array of active feature lookup keys
    event_created BIGINT NOT NULL,
    event_id      TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,                -- unix milliseconds
    CHECK (event_created >= 0)
) WITHOUT ROWID;
