ALTER TABLE institution_keys DROP COLUMN link;
