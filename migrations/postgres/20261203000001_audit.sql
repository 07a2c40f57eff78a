-- The audit log of operator actions (subsync-admin writes and reads; nothing else names it):
-- who retried, cancelled, bulk-changed or replayed what, when, from where, and with what
-- result; dashboard sign-ins and sign-outs. Append-only: the triggers below refuse every
-- UPDATE, DELETE and TRUNCATE, whoever sends it, and no retention prunes it.
CREATE TABLE subsync_audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor   TEXT NOT NULL CHECK (char_length(actor) BETWEEN 1 AND 100),
    via     TEXT NOT NULL CHECK (via IN ('cli', 'api', 'dashboard')),
    action  TEXT NOT NULL CHECK (action IN ('retry', 'cancel', 'bulk_retry', 'bulk_cancel', 'replay', 'login', 'logout')),
    target  TEXT NOT NULL,                       -- job id, event id, bulk filter, or '' (login)
    detail  TEXT,                                -- e.g. "matched 300", "replay job <id>"
    jobs    BIGINT NOT NULL CHECK (jobs >= 0),   -- jobs the action changed or created
    ok      BOOLEAN NOT NULL,
    error   TEXT,                                -- why it failed, when not ok
    CHECK (ok OR error IS NOT NULL)
);
CREATE INDEX subsync_audit_at ON subsync_audit (at);
CREATE INDEX subsync_audit_actor ON subsync_audit (actor, at);
CREATE FUNCTION subsync_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'subsync_audit is append-only';
END;
$$;
CREATE TRIGGER subsync_audit_no_change BEFORE UPDATE OR DELETE ON subsync_audit
    FOR EACH ROW EXECUTE FUNCTION subsync_audit_append_only();
CREATE TRIGGER subsync_audit_no_truncate BEFORE TRUNCATE ON subsync_audit
    FOR EACH STATEMENT EXECUTE FUNCTION subsync_audit_append_only();
