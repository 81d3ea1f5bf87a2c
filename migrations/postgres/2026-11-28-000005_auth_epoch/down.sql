DROP TRIGGER auth_epoch_permissions ON permissions;
DROP TRIGGER auth_epoch_role_permissions ON role_permissions;
DROP TRIGGER auth_epoch_roles ON roles;
DROP TRIGGER auth_epoch_user_roles ON user_roles;
DROP TRIGGER auth_epoch_users ON users;
DROP TRIGGER auth_epoch_sessions ON sessions;
DROP FUNCTION auth_epoch_bump();
DROP TABLE auth_epoch;
