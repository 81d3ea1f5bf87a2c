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
    }
}

diesel::table! {
    user_roles (user_id, role_id) {
        user_id -> BigInt,
        role_id -> BigInt,
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
    settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::joinable!(institutions -> districts (district_id));
diesel::joinable!(users -> institutions (institution_id));
diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(user_roles -> roles (role_id));
diesel::joinable!(role_permissions -> roles (role_id));
diesel::joinable!(role_permissions -> permissions (permission_id));
diesel::joinable!(sessions -> users (user_id));

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
    sessions,
    audit_log,
    audit_head,
    settings,
);
