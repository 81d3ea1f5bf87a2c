-- Record-filter searches (diagnosis, status, age band) and their counts without scanning an
-- institution's patients (bench/README.md, "Findings").
CREATE INDEX patients_institution_diagnosis_status_birth
    ON patients(institution_id, diagnosis_id, status_id, birth_year, id);
CREATE INDEX patients_institution_status_birth
    ON patients(institution_id, status_id, birth_year, id);
