-- A patient's needs, copied into its row: the ids of its patient_needs rows, ascending and
-- comma-separated ('' for none). Reading a patient by id, the register's most frequent read,
-- searched a second b-tree for them (patient_needs has no rowid: its primary key is the table)
-- and returned the row once per need; now it is the row alone. patient_needs stays what the
-- searches and the summary reports look needs up by; the server writes both in the same
-- transaction (db::models::patients::insert_many and set_needs).
ALTER TABLE patients ADD COLUMN needs TEXT NOT NULL DEFAULT '';
UPDATE patients
SET needs = (
    SELECT group_concat(need_id, ',' ORDER BY need_id)
    FROM patient_needs
    WHERE patient_needs.patient_id = patients.id
)
WHERE id IN (SELECT patient_id FROM patient_needs);
