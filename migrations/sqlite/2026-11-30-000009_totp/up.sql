-- The optional second factor: a TOTP authenticator (RFC 6238) per account, and roles that
-- require one. The secret is sealed by the server (AES-256-GCM under `totp.key` in the data
-- directory, bound to the user id), so a stolen database file does not give it away.
-- `confirmed_at` is NULL while an enrolment waits for its first code; `last_step` is the
-- 30-second step of the last code accepted, so no code is accepted twice.
CREATE TABLE user_totp (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sealed_secret TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    last_step BIGINT NOT NULL DEFAULT 0
);

ALTER TABLE roles ADD COLUMN require_totp BOOLEAN NOT NULL DEFAULT 0;

-- A session check reads whether the account has a confirmed second factor (roles that require
-- one send it to enrolment first): confirming, removing or resetting one moves the epoch
-- (migration `auth_epoch`); accepting a code (`last_step`) does not.
CREATE TRIGGER auth_epoch_user_totp_insert AFTER INSERT ON user_totp
BEGIN UPDATE auth_epoch SET value = value + 1; END;
CREATE TRIGGER auth_epoch_user_totp_update AFTER UPDATE OF user_id, confirmed_at ON user_totp
BEGIN UPDATE auth_epoch SET value = value + 1; END;
CREATE TRIGGER auth_epoch_user_totp_delete AFTER DELETE ON user_totp
BEGIN UPDATE auth_epoch SET value = value + 1; END;
