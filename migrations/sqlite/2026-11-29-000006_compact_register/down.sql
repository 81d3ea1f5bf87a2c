-- The rowid tables again. The passports taken out of the history's snapshots do not come back.
CREATE TABLE patient_blind_indexes_rowid (
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    institution_id BIGINT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (patient_id, token)
);
INSERT INTO patient_blind_indexes_rowid (patient_id, institution_id, token)
SELECT patient_id, institution_id, token FROM patient_blind_indexes;
DROP TABLE patient_blind_indexes;
ALTER TABLE patient_blind_indexes_rowid RENAME TO patient_blind_indexes;
CREATE INDEX patient_blind_indexes_lookup ON patient_blind_indexes(institution_id, token, patient_id);

CREATE TABLE patient_needs_rowid (
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    need_id BIGINT NOT NULL REFERENCES needs(id),
    PRIMARY KEY (patient_id, need_id)
);
INSERT INTO patient_needs_rowid (patient_id, need_id) SELECT patient_id, need_id FROM patient_needs;
DROP TABLE patient_needs;
ALTER TABLE patient_needs_rowid RENAME TO patient_needs;
CREATE INDEX patient_needs_need ON patient_needs(need_id);
