-- The audit log of operator actions (subsync-admin writes and reads; nothing else names it):
-- who retried, cancelled, bulk-changed or replayed what, when, from where, and with what
-- result; dashboard sign-ins and sign-outs. Append-only: the triggers below refuse every
-- UPDATE and DELETE, whoever sends it, and no retention prunes it.
CREATE TABLE subsync_audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused, so newest first = highest id
    at      INTEGER NOT NULL,                    -- unix milliseconds
    actor   TEXT NOT NULL CHECK (length(actor) BETWEEN 1 AND 100),
    via     TEXT NOT NULL CHECK (via IN ('cli', 'api', 'dashboard')),
    action  TEXT NOT NULL CHECK (action IN ('retry', 'cancel', 'bulk_retry', 'bulk_cancel', 'replay', 'login', 'logout')),
    target  TEXT NOT NULL,                       -- job id, event id, bulk filter, or '' (login)
    detail  TEXT,                                -- e.g. "matched 300", "replay job <id>"
    jobs    INTEGER NOT NULL CHECK (jobs >= 0),  -- jobs the action changed or created
    ok      INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error   TEXT,                                -- why it failed, when ok = 0
    CHECK (ok = 1 OR error IS NOT NULL)
);
CREATE INDEX subsync_audit_at ON subsync_audit (at);
CREATE INDEX subsync_audit_actor ON subsync_audit (actor, at);
CREATE TRIGGER subsync_audit_no_update BEFORE UPDATE ON subsync_audit
BEGIN
    SELECT RAISE(ABORT, 'subsync_audit is append-only');
END;
CREATE TRIGGER subsync_audit_no_delete BEFORE DELETE ON subsync_audit
BEGIN
    SELECT RAISE(ABORT, 'subsync_audit is append-only');
END;
