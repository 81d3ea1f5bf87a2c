DROP TRIGGER auth_epoch_user_totp_delete;
DROP TRIGGER auth_epoch_user_totp_update;
DROP TRIGGER auth_epoch_user_totp_insert;
ALTER TABLE roles DROP COLUMN require_totp;
DROP TABLE user_totp;
