-- Each blind-index token carries its patient's year of birth (as the patient's record, in
-- clear), and the lookup index sorts by it after the token. A search by surname and year of
-- birth (the surname's token and the birth_year filter, since the compound index was retired
-- in 000016), or by a token and an age band, then reads only the tokens of that year: a
-- common surname's token matches hundreds of patients, and checking each one's year in the
-- patients table read hundreds of rows where the compound token read a dozen (bench/README.md,
-- twenty-second session). The server keeps the copy equal to the record's year.
ALTER TABLE patient_blind_indexes ADD COLUMN birth_year INTEGER NOT NULL DEFAULT 0;
UPDATE patient_blind_indexes SET birth_year = (
    SELECT patients.birth_year FROM patients WHERE patients.id = patient_blind_indexes.patient_id
);
DROP INDEX patient_blind_indexes_lookup;
CREATE INDEX patient_blind_indexes_lookup
    ON patient_blind_indexes(institution_id, token, birth_year, patient_id);
