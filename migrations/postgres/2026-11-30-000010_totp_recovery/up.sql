-- One-time recovery codes of a confirmed second factor, for the day the phone is lost: each
-- signs in once in place of the authenticator's code, and is deleted when it does. Only a keyed
-- hash of each code is kept (HMAC-SHA256 under a key derived from `totp.key`, bound to the user
-- id), never the code. They go with their enrolment: removing or resetting the second factor
-- removes them. The session check does not read them, so no `auth_epoch` trigger. The SQLite
-- migration of the same name does the same.
CREATE TABLE user_totp_recovery (
    user_id BIGINT NOT NULL REFERENCES user_totp(user_id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);
