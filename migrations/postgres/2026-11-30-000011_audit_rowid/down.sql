DROP INDEX audit_log_actor_login;
CREATE INDEX audit_log_actor ON audit_log(actor_id, seq);
