DROP INDEX patients_institution_registered;
CREATE INDEX patients_institution_registered ON patients(institution_id, registered_on);
DROP INDEX prescriptions_institution_medicament;
CREATE INDEX prescriptions_institution_medicament ON prescriptions(institution_id, medicament_id, prescribed_on);
