-- A key rotation re-seals the observation notes still under an older key version: the Keys page
-- counts them and pages through them by id, without scanning the institution's observations.
CREATE INDEX observations_sealed_notes
    ON observations(institution_id, note_key_version, id) WHERE note IS NOT NULL;
