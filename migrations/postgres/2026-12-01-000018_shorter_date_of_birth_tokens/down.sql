-- The dates' full-length tokens cannot be made again without the institutions' keys: only a
-- client that opens the passports could. Nothing to undo.
SELECT 1;
