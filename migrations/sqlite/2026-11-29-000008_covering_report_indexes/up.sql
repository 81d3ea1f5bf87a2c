-- The ministry's summary report counts every patient of the chosen institutions by the dates
-- of the register movement and by the record's breakdown columns, and sums the prescriptions
-- of the period by medicament. Through the narrow indexes below it then read each row of the
-- table at a random place (a patient row is ~900 bytes with its passport): 80 s at 1M
-- patients / 5M prescriptions (bench/README.md, "The summary report"). The same indexes,
-- widened with the columns the report reads, let it read only the index. They keep their
-- leading columns, so the searches and lists that used them still do, and a new patient or
-- prescription is still one entry in each.
--
-- The prescriptions' index is the one in the order of the aggregate's groups (institution,
-- medicament): SQLite steps through it group by group, each group's period found by a seek.
-- The report's statement names it (`INDEXED BY`, see `medicament_sums_sqlite`). Widening the
-- date index instead spares the seeks but makes SQLite sort the period's prescriptions into
-- groups, which spills to temporary files past the page cache: 15 s at 5M prescriptions.
DROP INDEX patients_institution_registered;
CREATE INDEX patients_institution_registered ON patients(
    institution_id, registered_on, discharged_on, deceased_on,
    diagnosis_id, birth_year, sex, care_form_id
);
DROP INDEX prescriptions_institution_medicament;
CREATE INDEX prescriptions_institution_medicament ON prescriptions(
    institution_id, medicament_id, prescribed_on, status, patient_id, quantity
);
-- Statistics for the new indexes: without them the planner keeps to the indexes it has figures
-- for (the date index, reading every prescription row again). A database that has never been
-- analyzed gets its statistics when the server starts (`db::refresh_statistics`).
ANALYZE patients_institution_registered;
ANALYZE prescriptions_institution_medicament;
