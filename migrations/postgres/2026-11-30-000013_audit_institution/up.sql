-- The institution an entry was made in: the acting account's institution at the time (NULL for
-- a region-wide account, the command line, an unknown login). An institution's administrator
-- reads its institution's entries by this column, so what a colleague did there stays visible
-- after the colleague moves to another institution, and does not follow it to the new one.
-- Entries made before this migration have none; for them the viewer keeps the old rule (the
-- accounts the institution has now). When present it is part of the entry's hash.
ALTER TABLE audit_log ADD COLUMN institution_id BIGINT;
