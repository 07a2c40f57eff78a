-- Change notifications to the application (owned by subsync-outbox): one row per change of a
-- user's entitlement, written in the same transaction as the change, with its delivery job on
-- queue `notify` (grouped by user). `body` is the exact JSON that is signed and POSTed, so a
-- redelivery sends the same bytes under the same `webhook-id` (`change_id`). Forward-only.
CREATE TABLE subsync_outbox (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- order of changes
    change_id       TEXT NOT NULL UNIQUE,          -- chg_…: the notification's webhook-id
    user_id         TEXT NOT NULL,
    version         BIGINT NOT NULL,               -- the entitlement's version after the change
    body            TEXT NOT NULL,                 -- the notification, as signed and sent
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,                   -- NULL until a 2xx answer
    attempts        INTEGER NOT NULL DEFAULT 0,    -- POSTs tried
    last_attempt_at TIMESTAMPTZ,
    last_error      TEXT                           -- why the last POST failed
);
-- A delivery sends its user's oldest undelivered change first.
CREATE INDEX subsync_outbox_user_undelivered ON subsync_outbox (user_id, seq) WHERE delivered_at IS NULL;
-- Lag (the oldest undelivered change) and pruning.
CREATE INDEX subsync_outbox_undelivered ON subsync_outbox (created_at) WHERE delivered_at IS NULL;
CREATE INDEX subsync_outbox_delivered ON subsync_outbox (delivered_at) WHERE delivered_at IS NOT NULL;

-- What caused a history line: a Stripe event (`cause_event_id` is its id), a timed lapse
-- (`cause_event_id` is `lapse:<ms>`), or an operator.
ALTER TABLE subsync_entitlement_history
    ADD COLUMN cause TEXT NOT NULL DEFAULT 'event' CHECK (cause IN ('event', 'lapse', 'operator'));
