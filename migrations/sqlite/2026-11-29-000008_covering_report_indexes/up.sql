-- The ministry's summary report counts every patient of the chosen institutions by the dates
-- of the register movement and by the record's breakdown columns, and sums the prescriptions
-- of the period by medicament. Through the narrow indexes below it then read each row of the
-- table at a random place (a patient row is ~900 bytes with its passport): 80 s at 1M
-- patients / 5M prescriptions (bench/README.md, "The summary report"). The same indexes,
-- widened with the columns the report reads, let it read only the index. They keep their
-- leading columns, so the searches and lists that used them still do, and a new patient or
-- prescription is still one entry in each.
--
-- For the prescriptions it is the date index that is widened, not the medicament index the
-- aggregate is grouped in: the period is the only range the query has, so the planner takes
-- the date index with or without statistics (a fresh database has none), and a covering
-- medicament index would be used only once `ANALYZE` has run.
DROP INDEX patients_institution_registered;
CREATE INDEX patients_institution_registered ON patients(
    institution_id, registered_on, discharged_on, deceased_on,
    diagnosis_id, birth_year, sex, care_form_id
);
DROP INDEX prescriptions_institution_date;
CREATE INDEX prescriptions_institution_date ON prescriptions(
    institution_id, prescribed_on, id, medicament_id, status, patient_id, quantity
);
