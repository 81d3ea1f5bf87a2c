DROP INDEX patient_blind_indexes_lookup;
CREATE INDEX patient_blind_indexes_lookup ON patient_blind_indexes(institution_id, token, patient_id);
ALTER TABLE patient_blind_indexes DROP COLUMN birth_year;
