DROP TRIGGER auth_epoch_user_totp ON user_totp;
ALTER TABLE roles DROP COLUMN require_totp;
DROP TABLE user_totp;
