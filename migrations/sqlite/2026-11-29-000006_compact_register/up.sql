-- A patient's history keeps its record, not its passport envelope. The history never showed
-- the passport (a version says "passport" when it changed); an envelope kept there would stay
-- sealed under the key version of its day after the institution's key is rotated, readable
-- with a key the rotation was meant to retire. It was also a quarter of the database file.
UPDATE patient_versions
SET snapshot = json_remove(snapshot, '$.record.passport')
WHERE json_type(snapshot, '$.record.passport') IS NOT NULL;

-- The blind-index tokens and the needs of a patient are rows of two or three small columns
-- under a composite primary key. As rowid tables, each was kept twice (the table by rowid and
-- its primary key's index) besides its lookup index; without a rowid, the primary key is the
-- table, and an import writes two b-trees per token instead of three.
CREATE TABLE patient_blind_indexes_compact (
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    institution_id BIGINT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (patient_id, token)
) WITHOUT ROWID;
INSERT INTO patient_blind_indexes_compact (patient_id, institution_id, token)
SELECT patient_id, institution_id, token FROM patient_blind_indexes ORDER BY patient_id, token;
DROP TABLE patient_blind_indexes;
ALTER TABLE patient_blind_indexes_compact RENAME TO patient_blind_indexes;
CREATE INDEX patient_blind_indexes_lookup ON patient_blind_indexes(institution_id, token, patient_id);

CREATE TABLE patient_needs_compact (
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    need_id BIGINT NOT NULL REFERENCES needs(id),
    PRIMARY KEY (patient_id, need_id)
) WITHOUT ROWID;
INSERT INTO patient_needs_compact (patient_id, need_id)
SELECT patient_id, need_id FROM patient_needs ORDER BY patient_id, need_id;
DROP TABLE patient_needs;
ALTER TABLE patient_needs_compact RENAME TO patient_needs;
CREATE INDEX patient_needs_need ON patient_needs(need_id);
