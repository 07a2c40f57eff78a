-- Prices the tier file does not map, one row per event that carried one (worker writes, in
-- the sync's transaction; `subsync tiers unmapped` reads). Keyed by event so a re-run of
-- the same event counts once.
CREATE TABLE subsync_unmapped_prices (
    event_id        TEXT NOT NULL,
    price_id        TEXT NOT NULL,
    lookup_key      TEXT,
    subscription_id TEXT NOT NULL,
    -- 'ignored': beside a mapped plan (access unaffected); 'dead': no price of the
    -- subscription maps, its job waits for an operator; 'free': as 'dead' but the tier file
    -- says `unmapped = "free"`.
    effect          TEXT NOT NULL CHECK (effect IN ('ignored', 'dead', 'free')),
    at              INTEGER NOT NULL,                 -- unix milliseconds
    PRIMARY KEY (event_id, price_id)
) WITHOUT ROWID;
CREATE INDEX subsync_unmapped_prices_price ON subsync_unmapped_prices (price_id, at);
