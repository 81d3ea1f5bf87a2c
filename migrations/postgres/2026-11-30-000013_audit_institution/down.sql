ALTER TABLE audit_log DROP COLUMN institution_id;
