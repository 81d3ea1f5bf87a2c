-- The index on the actor's id served no query: the audit viewer filters by the actor's login
-- (which also names the unknown logins of refused sign-ins). It is replaced by one on the login,
-- so that "what did this account do" no longer scans the whole log. (SQLite's side of this
-- migration also makes the sequence number the table's rowid; PostgreSQL has no rowid.)
DROP INDEX audit_log_actor;
CREATE INDEX audit_log_actor_login ON audit_log(actor_login, seq);
