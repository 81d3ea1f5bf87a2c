-- One number that moves on whenever anything a session check reads changes: a session
-- (revoked, expired by hand, deleted), an account (login, name, institution, active, password),
-- the roles of an account, a role's permissions. The server keeps who a session is in memory
-- and trusts it only while this number stays the same (server/src/session_cache.rs), so a
-- logout, a password change, a de-registration or a change of roles takes effect at once on
-- every replica, and so does a change made by hand in SQL. Sign-ins (new sessions) and the
-- failed-login counters do not move it. The SQLite migration of the same name does the same.
CREATE TABLE auth_epoch (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO auth_epoch (id, value) VALUES (1, 0);

CREATE FUNCTION auth_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE auth_epoch SET value = value + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER auth_epoch_sessions AFTER UPDATE OR DELETE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION auth_epoch_bump();
CREATE TRIGGER auth_epoch_users
    AFTER UPDATE OF id, login, full_name, password_hash, institution_id, active OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION auth_epoch_bump();
CREATE TRIGGER auth_epoch_user_roles AFTER INSERT OR UPDATE OR DELETE ON user_roles
    FOR EACH STATEMENT EXECUTE FUNCTION auth_epoch_bump();
CREATE TRIGGER auth_epoch_roles AFTER UPDATE OR DELETE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION auth_epoch_bump();
CREATE TRIGGER auth_epoch_role_permissions AFTER INSERT OR UPDATE OR DELETE ON role_permissions
    FOR EACH STATEMENT EXECUTE FUNCTION auth_epoch_bump();
CREATE TRIGGER auth_epoch_permissions AFTER UPDATE OR DELETE ON permissions
    FOR EACH STATEMENT EXECUTE FUNCTION auth_epoch_bump();
