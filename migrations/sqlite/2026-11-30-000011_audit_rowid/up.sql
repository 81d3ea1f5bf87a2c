-- The audit log's sequence number becomes the table's rowid. Declared `BIGINT PRIMARY KEY`,
-- it was not the rowid (only a column declared exactly `INTEGER PRIMARY KEY` is): SQLite kept
-- the log twice, once by a hidden rowid and once in the primary key's own index, and every
-- appended entry wrote both. As `INTEGER PRIMARY KEY` the log is kept once, in sequence order.
-- It still holds 64-bit integers: in SQLite every INTEGER does.
--
-- The index on the actor's id served no query: the audit viewer filters by the actor's login
-- (which also names the unknown logins of refused sign-ins). It is replaced by one on the login,
-- so that "what did this account do" no longer scans the whole log.
CREATE TABLE audit_log_rowid (
    seq INTEGER PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    actor_id BIGINT,
    actor_login TEXT,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT,
    outcome TEXT NOT NULL,
    client_addr TEXT,
    details TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_log_rowid (seq, at, actor_id, actor_login, action, object_type, object_id,
                             outcome, client_addr, details, prev_hash, hash)
SELECT seq, at, actor_id, actor_login, action, object_type, object_id,
       outcome, client_addr, details, prev_hash, hash
FROM audit_log ORDER BY seq;
DROP TABLE audit_log;
ALTER TABLE audit_log_rowid RENAME TO audit_log;
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_actor_login ON audit_log(actor_login, seq);
CREATE INDEX audit_log_action ON audit_log(action, seq);
