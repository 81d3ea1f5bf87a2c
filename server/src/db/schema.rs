//! Diesel table definitions, shared by both dialects (see `migrations/`).

diesel::table! {
    districts (id) {
        id -> BigInt,
        code -> Text,
        name -> Text,
        name_ru -> Nullable<Text>,
        active -> Bool,
    }
}

diesel::table! {
    institutions (id) {
        id -> BigInt,
        code -> Text,
        name -> Text,
        name_ru -> Nullable<Text>,
        district_id -> Nullable<BigInt>,
        active -> Bool,
    }
}

diesel::table! {
    diagnoses (id) {
        id -> BigInt,
        code -> Text,
        name -> Text,
        name_ru -> Nullable<Text>,
        block -> Text,
        active -> Bool,
    }
}

diesel::table! {
    medicaments (id) {
        id -> BigInt,
        code -> Text,
        name -> Text,
        name_ru -> Nullable<Text>,
        inn -> Text,
        atc -> Text,
        dosage_form -> Text,
        strength -> Text,
        unit -> Text,
        controlled -> Bool,
        active -> Bool,
    }
}

diesel::table! {
    care_forms (id) {
        id -> BigInt,
        code -> Text,
        name -> Text,
        name_ru -> Nullable<Text>,
        active -> Bool,
    }
}

diesel::table! {
    patient_statuses (id) {
        id -> BigInt,
        code -> Text,
        name -> Text,
        name_ru -> Nullable<Text>,
        active -> Bool,
    }
}

diesel::table! {
    needs (id) {
        id -> BigInt,
        code -> Text,
        name -> Text,
        name_ru -> Nullable<Text>,
        kind -> Text,
        active -> Bool,
    }
}

diesel::table! {
    permissions (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
    }
}

diesel::table! {
    roles (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
        require_totp -> Bool,
    }
}

diesel::table! {
    role_permissions (role_id, permission_id) {
        role_id -> BigInt,
        permission_id -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        login -> Text,
        full_name -> Text,
        password_hash -> Text,
        institution_id -> Nullable<BigInt>,
        active -> Bool,
        failed_logins -> Integer,
        locked_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        public_key -> Nullable<Text>,
        public_key_fingerprint -> Nullable<Text>,
        public_key_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    user_roles (user_id, role_id) {
        user_id -> BigInt,
        role_id -> BigInt,
    }
}

diesel::table! {
    user_totp (user_id) {
        user_id -> BigInt,
        sealed_secret -> Text,
        created_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        last_step -> BigInt,
    }
}

diesel::table! {
    user_totp_recovery (user_id, code_hash) {
        user_id -> BigInt,
        code_hash -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> BigInt,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at -> Timestamp,
        actor_id -> Nullable<BigInt>,
        actor_login -> Nullable<Text>,
        action -> Text,
        object_type -> Text,
        object_id -> Nullable<Text>,
        outcome -> Text,
        client_addr -> Nullable<Text>,
        details -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
        institution_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_head (id) {
        id -> BigInt,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    auth_epoch (id) {
        id -> BigInt,
        value -> BigInt,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    institution_keys (institution_id, version) {
        institution_id -> BigInt,
        version -> Integer,
        created_by -> BigInt,
        created_at -> Timestamp,
        link -> Nullable<Text>,
    }
}

diesel::table! {
    key_envelopes (id) {
        id -> BigInt,
        institution_id -> BigInt,
        key_version -> Integer,
        recipient_id -> BigInt,
        envelope -> Text,
        granted_by -> BigInt,
        granted_at -> Timestamp,
    }
}

diesel::table! {
    patients (id) {
        id -> BigInt,
        pseudonym -> Text,
        institution_id -> BigInt,
        passport -> Text,
        passport_key_version -> Integer,
        sex -> Text,
        birth_year -> Integer,
        district_id -> Nullable<BigInt>,
        diagnosis_id -> BigInt,
        care_form_id -> Nullable<BigInt>,
        status_id -> BigInt,
        registered_on -> Date,
        discharged_on -> Nullable<Date>,
        deceased_on -> Nullable<Date>,
        version -> Integer,
        created_by -> BigInt,
        created_at -> Timestamp,
        updated_by -> BigInt,
        updated_at -> Timestamp,
        needs -> Text,
    }
}

diesel::table! {
    patient_needs (patient_id, need_id) {
        patient_id -> BigInt,
        need_id -> BigInt,
    }
}

diesel::table! {
    patient_blind_indexes (patient_id, token) {
        patient_id -> BigInt,
        institution_id -> BigInt,
        token -> Text,
        birth_year -> Integer,
    }
}

diesel::table! {
    patient_versions (patient_id, version) {
        patient_id -> BigInt,
        version -> Integer,
        changed_by -> BigInt,
        changed_at -> Timestamp,
        change -> Text,
        snapshot -> Text,
    }
}

diesel::table! {
    observations (id) {
        id -> BigInt,
        patient_id -> BigInt,
        institution_id -> BigInt,
        observed_on -> Date,
        pain_score -> Nullable<Integer>,
        ecog -> Nullable<Integer>,
        needs_added -> Text,
        needs_removed -> Text,
        note_ref -> Nullable<Text>,
        note -> Nullable<Text>,
        note_key_version -> Nullable<Integer>,
        created_by -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    prescriptions (id) {
        id -> BigInt,
        number -> Text,
        institution_id -> BigInt,
        patient_id -> BigInt,
        prescribed_on -> Date,
        medicament_id -> BigInt,
        dose -> Double,
        dose_unit -> Text,
        route -> Text,
        frequency -> Text,
        quantity -> Double,
        start_on -> Date,
        end_on -> Nullable<Date>,
        prescriber_id -> BigInt,
        status -> Text,
        cancel_reason -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_by -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    prescription_versions (prescription_id, version) {
        prescription_id -> BigInt,
        version -> Integer,
        changed_by -> BigInt,
        changed_at -> Timestamp,
        change -> Text,
        snapshot -> Text,
    }
}

diesel::table! {
    issued_reports (sha256) {
        sha256 -> Text,
        kind -> Text,
        signature -> Text,
        parameters -> Text,
        created_by -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sign_in_windows (client_key) {
        client_key -> Text,
        started_at -> Timestamp,
        attempts -> Integer,
    }
}

diesel::joinable!(institutions -> districts (district_id));
diesel::joinable!(patients -> care_forms (care_form_id));
diesel::joinable!(key_envelopes -> users (recipient_id));
diesel::joinable!(patient_needs -> patients (patient_id));
diesel::joinable!(patient_needs -> needs (need_id));
diesel::joinable!(patient_blind_indexes -> patients (patient_id));
diesel::joinable!(patients -> diagnoses (diagnosis_id));
diesel::joinable!(patients -> patient_statuses (status_id));
diesel::joinable!(prescriptions -> medicaments (medicament_id));
diesel::joinable!(prescriptions -> patients (patient_id));
diesel::joinable!(observations -> patients (patient_id));
diesel::joinable!(users -> institutions (institution_id));
diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(user_roles -> roles (role_id));
diesel::joinable!(role_permissions -> roles (role_id));
diesel::joinable!(role_permissions -> permissions (permission_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(user_totp -> users (user_id));
diesel::joinable!(user_totp_recovery -> user_totp (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    districts,
    institutions,
    diagnoses,
    medicaments,
    care_forms,
    patient_statuses,
    needs,
    permissions,
    roles,
    role_permissions,
    users,
    user_roles,
    user_totp,
    user_totp_recovery,
    sessions,
    audit_log,
    audit_head,
    auth_epoch,
    settings,
    institution_keys,
    key_envelopes,
    patients,
    patient_needs,
    patient_blind_indexes,
    patient_versions,
    observations,
    prescriptions,
    prescription_versions,
    issued_reports,
    sign_in_windows,
);

diesel::allow_columns_to_appear_in_same_group_by_clause!(
    patients::institution_id,
    diagnoses::block,
    patient_needs::need_id,
);
diesel::allow_columns_to_appear_in_same_group_by_clause!(
    prescriptions::institution_id,
    medicaments::name,
    medicaments::name_ru,
    medicaments::unit,
    medicaments::controlled,
);
