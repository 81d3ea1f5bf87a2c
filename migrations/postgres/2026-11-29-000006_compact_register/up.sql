-- A patient's history keeps its record, not its passport envelope. The history never showed
-- the passport (a version says "passport" when it changed); an envelope kept there would stay
-- sealed under the key version of its day after the institution's key is rotated, readable
-- with a key the rotation was meant to retire. (The SQLite migration of the same name also
-- drops the rowids of two tables; PostgreSQL tables have none.)
UPDATE patient_versions
SET snapshot = ((snapshot::jsonb) #- '{record,passport}')::text
WHERE (snapshot::jsonb) #> '{record,passport}' IS NOT NULL;
