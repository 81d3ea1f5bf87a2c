DROP INDEX patients_institution_registered;
CREATE INDEX patients_institution_registered ON patients(institution_id, registered_on);
DROP INDEX prescriptions_institution_date;
CREATE INDEX prescriptions_institution_date ON prescriptions(institution_id, prescribed_on, id);
