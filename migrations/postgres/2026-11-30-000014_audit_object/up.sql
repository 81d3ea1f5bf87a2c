-- "Who opened this patient's record, and when?" is the question a patient, a family or a
-- data-protection officer asks of the audit log, and the viewer's object filter answers it.
-- Without an index it read the whole log backwards for every page: a log grows by every read
-- of every clinician, so that was seconds a page within a year. Entries without an object
-- (sign-ins, searches, lists) are left out of the index: nothing looks them up by object, and
-- they cost no extra write.
CREATE INDEX audit_log_object ON audit_log(object_id, object_type, seq)
    WHERE object_id IS NOT NULL;
