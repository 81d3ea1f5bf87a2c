//! The OpenAPI 3 document, generated from the handlers and wire types.

use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "palreg",
        description = "The encrypted register of palliative-care patients. Identifying data never reaches this API in clear.",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::health::healthz,
        routes::auth::login,
        routes::auth::logout,
        routes::me::me,
        routes::me::change_password,
        routes::totp::enrol,
        routes::totp::confirm,
        routes::totp::renew_recovery_codes,
        routes::totp::remove,
        routes::admin_users::list_users,
        routes::admin_users::create_user,
        routes::admin_users::get_user,
        routes::admin_users::update_user,
        routes::admin_users::deactivate_user,
        routes::admin_users::reset_totp,
        routes::admin_roles::list_permissions,
        routes::admin_roles::list_roles,
        routes::admin_roles::create_role,
        routes::admin_roles::update_role,
        routes::admin_roles::delete_role,
        routes::admin_audit::list_audit,
        routes::refs::list_entries,
        routes::refs::get_entry,
        routes::refs::create_entry,
        routes::refs::update_entry,
        routes::refs::delete_entry,
        routes::keys::put_public_key,
        routes::keys::my_envelopes,
        routes::keys::members,
        routes::keys::create_key_version,
        routes::keys::grant,
        routes::keys::add_link,
        routes::patients::search_patients,
        routes::patients::import_patients,
        routes::patients::create_patient,
        routes::patients::get_patient,
        routes::patients::update_patient,
        routes::patients::patient_history,
        routes::observations::create_observation,
        routes::observations::list_observations,
        routes::observations::pending_notes,
        routes::observations::reseal_note,
        routes::prescriptions::search_prescriptions,
        routes::prescriptions::create_prescription,
        routes::prescriptions::get_prescription,
        routes::prescriptions::update_prescription,
        routes::prescriptions::cancel_prescription,
        routes::prescriptions::complete_prescription,
        routes::prescriptions::prescription_history,
        routes::reports::prescription_report,
        routes::reports::summary_pdf,
        routes::reports::summary_json,
        routes::reports::summary_fhir,
        routes::reports::public_key,
        routes::reports::issued_signature,
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("cookie" = []))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    }
}

/// The document as served at `/api/v1/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
