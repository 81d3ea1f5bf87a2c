DROP TABLE user_totp_recovery;
