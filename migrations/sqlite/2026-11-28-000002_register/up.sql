-- palreg register: user keys, institution keys and envelopes, patients (pseudonymized records
-- with encrypted passports and blind indexes), observations, prescriptions (SQLite dialect).
-- The PostgreSQL migration of the same name creates the same tables.

ALTER TABLE users ADD COLUMN public_key TEXT;
ALTER TABLE users ADD COLUMN public_key_fingerprint TEXT;
ALTER TABLE users ADD COLUMN public_key_at TIMESTAMP;

-- Versions of each institution's symmetric key. The key itself never reaches the server.
CREATE TABLE institution_keys (
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    version INTEGER NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (institution_id, version)
);

-- An institution key version wrapped to one member's public key (opaque to the server).
CREATE TABLE key_envelopes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    institution_id BIGINT NOT NULL,
    key_version INTEGER NOT NULL,
    recipient_id BIGINT NOT NULL REFERENCES users(id),
    envelope TEXT NOT NULL,
    granted_by BIGINT NOT NULL REFERENCES users(id),
    granted_at TIMESTAMP NOT NULL,
    FOREIGN KEY (institution_id, key_version) REFERENCES institution_keys(institution_id, version),
    UNIQUE (recipient_id, institution_id, key_version)
);
CREATE INDEX key_envelopes_institution ON key_envelopes(institution_id, key_version);

CREATE TABLE patients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pseudonym TEXT NOT NULL UNIQUE,
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    passport TEXT NOT NULL,
    passport_key_version INTEGER NOT NULL,
    sex TEXT NOT NULL CHECK (sex IN ('M', 'F', 'U')),
    birth_year INTEGER NOT NULL,
    district_id BIGINT REFERENCES districts(id),
    diagnosis_id BIGINT NOT NULL REFERENCES diagnoses(id),
    care_form_id BIGINT REFERENCES care_forms(id),
    status_id BIGINT NOT NULL REFERENCES patient_statuses(id),
    registered_on DATE NOT NULL,
    discharged_on DATE,
    deceased_on DATE,
    version INTEGER NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    updated_by BIGINT NOT NULL REFERENCES users(id),
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX patients_institution ON patients(institution_id, id);
CREATE INDEX patients_institution_diagnosis ON patients(institution_id, diagnosis_id, id);
CREATE INDEX patients_institution_status ON patients(institution_id, status_id, id);
CREATE INDEX patients_institution_registered ON patients(institution_id, registered_on);
CREATE INDEX patients_institution_key_version ON patients(institution_id, passport_key_version);

CREATE TABLE patient_needs (
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    need_id BIGINT NOT NULL REFERENCES needs(id),
    PRIMARY KEY (patient_id, need_id)
);
CREATE INDEX patient_needs_need ON patient_needs(need_id);

-- Blind-index tokens (field, key version and truncated HMAC, see client-crypto).
CREATE TABLE patient_blind_indexes (
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    institution_id BIGINT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (patient_id, token)
);
CREATE INDEX patient_blind_indexes_lookup ON patient_blind_indexes(institution_id, token, patient_id);

-- Every version of a patient's record as it was written (JSON), for the history.
CREATE TABLE patient_versions (
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    version INTEGER NOT NULL,
    changed_by BIGINT NOT NULL REFERENCES users(id),
    changed_at TIMESTAMP NOT NULL,
    change TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    PRIMARY KEY (patient_id, version)
);

CREATE TABLE observations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    observed_on DATE NOT NULL,
    pain_score INTEGER CHECK (pain_score BETWEEN 0 AND 10),
    ecog INTEGER CHECK (ecog BETWEEN 0 AND 5),
    needs_added TEXT NOT NULL,
    needs_removed TEXT NOT NULL,
    note_ref TEXT,
    note TEXT,
    note_key_version INTEGER,
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX observations_patient ON observations(patient_id, observed_on);

CREATE TABLE prescriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    number TEXT NOT NULL,
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    prescribed_on DATE NOT NULL,
    medicament_id BIGINT NOT NULL REFERENCES medicaments(id),
    dose DOUBLE PRECISION NOT NULL,
    dose_unit TEXT NOT NULL,
    route TEXT NOT NULL,
    frequency TEXT NOT NULL,
    quantity DOUBLE PRECISION NOT NULL,
    start_on DATE NOT NULL,
    end_on DATE,
    prescriber_id BIGINT NOT NULL REFERENCES users(id),
    status TEXT NOT NULL CHECK (status IN ('active', 'completed', 'cancelled')),
    cancel_reason TEXT,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_by BIGINT NOT NULL REFERENCES users(id),
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (institution_id, number)
);
CREATE INDEX prescriptions_institution_date ON prescriptions(institution_id, prescribed_on, id);
CREATE INDEX prescriptions_institution_medicament ON prescriptions(institution_id, medicament_id, prescribed_on);
CREATE INDEX prescriptions_patient ON prescriptions(patient_id, prescribed_on);
CREATE INDEX prescriptions_prescriber ON prescriptions(institution_id, prescriber_id, prescribed_on);

CREATE TABLE prescription_versions (
    prescription_id BIGINT NOT NULL REFERENCES prescriptions(id),
    version INTEGER NOT NULL,
    changed_by BIGINT NOT NULL REFERENCES users(id),
    changed_at TIMESTAMP NOT NULL,
    change TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    PRIMARY KEY (prescription_id, version)
);
