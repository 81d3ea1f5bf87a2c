-- One number that moves on whenever anything a session check reads changes: a session
-- (revoked, expired by hand, deleted), an account (login, name, institution, active, password),
-- the roles of an account, a role's permissions. The server keeps who a session is in memory
-- and trusts it only while this number stays the same (server/src/session_cache.rs), so a
-- logout, a password change, a de-registration or a change of roles takes effect at once on
-- every replica, and so does a change made by hand in SQL. Sign-ins (new sessions) and the
-- failed-login counters do not move it.
CREATE TABLE auth_epoch (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO auth_epoch (id, value) VALUES (1, 0);

CREATE TRIGGER auth_epoch_sessions_update AFTER UPDATE ON sessions
BEGIN UPDATE auth_epoch SET value = value + 1; END;
CREATE TRIGGER auth_epoch_sessions_delete AFTER DELETE ON sessions
BEGIN UPDATE auth_epoch SET value = value + 1; END;

CREATE TRIGGER auth_epoch_users_update
AFTER UPDATE OF id, login, full_name, password_hash, institution_id, active ON users
BEGIN UPDATE auth_epoch SET value = value + 1; END;
CREATE TRIGGER auth_epoch_users_delete AFTER DELETE ON users
BEGIN UPDATE auth_epoch SET value = value + 1; END;

CREATE TRIGGER auth_epoch_user_roles_insert AFTER INSERT ON user_roles
BEGIN UPDATE auth_epoch SET value = value + 1; END;
CREATE TRIGGER auth_epoch_user_roles_update AFTER UPDATE ON user_roles
BEGIN UPDATE auth_epoch SET value = value + 1; END;
CREATE TRIGGER auth_epoch_user_roles_delete AFTER DELETE ON user_roles
BEGIN UPDATE auth_epoch SET value = value + 1; END;

CREATE TRIGGER auth_epoch_roles_update AFTER UPDATE ON roles
BEGIN UPDATE auth_epoch SET value = value + 1; END;
CREATE TRIGGER auth_epoch_roles_delete AFTER DELETE ON roles
BEGIN UPDATE auth_epoch SET value = value + 1; END;

CREATE TRIGGER auth_epoch_role_permissions_insert AFTER INSERT ON role_permissions
BEGIN UPDATE auth_epoch SET value = value + 1; END;
CREATE TRIGGER auth_epoch_role_permissions_update AFTER UPDATE ON role_permissions
BEGIN UPDATE auth_epoch SET value = value + 1; END;
CREATE TRIGGER auth_epoch_role_permissions_delete AFTER DELETE ON role_permissions
BEGIN UPDATE auth_epoch SET value = value + 1; END;

CREATE TRIGGER auth_epoch_permissions_update AFTER UPDATE ON permissions
BEGIN UPDATE auth_epoch SET value = value + 1; END;
CREATE TRIGGER auth_epoch_permissions_delete AFTER DELETE ON permissions
BEGIN UPDATE auth_epoch SET value = value + 1; END;
