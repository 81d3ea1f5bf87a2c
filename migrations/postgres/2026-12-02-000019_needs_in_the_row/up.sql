-- A patient's needs, copied into its row: the ids of its patient_needs rows, ascending and
-- comma-separated ('' for none). Reading a patient by id, the register's most frequent read,
-- joined patient_needs and returned the row once per need; now it is the row alone.
-- patient_needs stays what the searches and the summary reports look needs up by; the server
-- writes both in the same transaction (db::models::patients::insert_many and set_needs).
ALTER TABLE patients ADD COLUMN needs TEXT NOT NULL DEFAULT '';
UPDATE patients
SET needs = listed.ids
FROM (
    SELECT patient_id, string_agg(need_id::text, ',' ORDER BY need_id) AS ids
    FROM patient_needs
    GROUP BY patient_id
) AS listed
WHERE listed.patient_id = patients.id;
