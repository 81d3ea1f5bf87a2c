ALTER TABLE patients DROP COLUMN needs;
