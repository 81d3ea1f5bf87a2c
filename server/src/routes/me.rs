//! The signed-in user: who am I, change my password.

use actix_web::{HttpResponse, get, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::db::models::{self, refs::institution, sessions, users};
use crate::domain::NewPassword;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::password;
use crate::routes::totp::TotpStatus;
use crate::routes::{audited, db};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct InstitutionSummary {
    pub id: i64,
    pub code: String,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub id: i64,
    pub login: String,
    pub full_name: String,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    /// `null` for region-wide users (the ministry).
    pub institution: Option<InstitutionSummary>,
    /// The second factor: on or not, required by a role or not, recovery codes left.
    pub totp: TotpStatus,
    /// A role requires a second factor this account has not enrolled yet: until it does,
    /// every request that needs a permission is refused (403 `totp_enrolment_required`).
    pub totp_enrolment_required: bool,
}

/// Who is signed in: roles, permissions and institution.
#[utoipa::path(tag = "me", responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody)))]
#[get("/api/v1/me")]
pub async fn me(
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<web::Json<MeResponse>> {
    let response = db(&state, move |conn| {
        let roles = users::role_names(conn, &[principal.user_id])?
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        let institution = match principal.institution_id {
            Some(id) => {
                let inst = institution::find(conn, id)?;
                Some(InstitutionSummary {
                    id: inst.id,
                    code: inst.code,
                    name: inst.name,
                })
            }
            None => None,
        };
        // As the session check read it, with the permissions; the recovery codes left are
        // counted here, not in the session check.
        let second_factor = principal.second_factor;
        Ok(MeResponse {
            totp: TotpStatus::of(conn, principal.user_id, second_factor)?,
            totp_enrolment_required: second_factor.enrolment_required(),
            id: principal.user_id,
            login: principal.login,
            full_name: principal.full_name,
            roles,
            permissions: principal.permissions,
            institution,
        })
    })
    .await?;
    Ok(web::Json(response))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the caller's password. Every session of the user, this one included, ends at once:
/// sign in again with the new password.
#[utoipa::path(
    tag = "me",
    request_body = ChangePasswordRequest,
    responses(
        (status = 204),
        (status = 400, description = "Weak new password", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Wrong current password", body = ErrorBody),
        (status = 409, description = "The password was changed meanwhile (`password_changed`)", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords: the account is locked for a while", body = ErrorBody),
    )
)]
#[put("/api/v1/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<ChangePasswordRequest>,
) -> ApiResult<HttpResponse> {
    let ChangePasswordRequest {
        current_password,
        new_password,
    } = body.into_inner();
    let new_password = NewPassword::parse(&new_password)?;
    let user_id = principal.user_id;
    let entry = principal.audit("me.password", "user", Some(user_id.to_string()));
    // A session is not a licence to guess the password: each try counts toward the lockout,
    // as at sign-in, and a locked account changes nothing.
    let locks = crate::routes::auth::count_attempt(&state, &entry, user_id, models::now()).await?;
    let stored = db(&state, move |conn| {
        Ok(users::find(conn, user_id)?.password_hash)
    })
    .await?;
    let checked = stored.clone();
    let new_hash = web::block(move || {
        if !password::verify(&stored, &current_password) {
            return Ok(None);
        }
        password::hash(new_password.expose()).map(Some)
    })
    .await?
    .map_err(ApiError::internal)?;
    let Some(new_hash) = new_hash else {
        let refused = crate::db::models::audit::NewEntry {
            outcome: "wrong_password".into(),
            ..entry
        };
        crate::routes::auth::refuse_attempt(&state, refused, user_id, locks).await?;
        return Err(ApiError::Forbidden {
            code: "wrong_password",
            message: "the current password is wrong".into(),
        });
    };
    audited(&state, entry, move |conn, _| {
        // Checked against the password of a moment ago: if it has changed since (an
        // administrator's reset of a stolen account), this change must not undo that one.
        if users::find(conn, user_id)?.password_hash != checked {
            return Err(ApiError::conflict(
                "password_changed",
                "the password was changed meanwhile; sign in again",
            ));
        }
        let now = models::now();
        users::update(
            conn,
            user_id,
            &users::UserChanges {
                password_hash: Some(new_hash),
                failed_logins: Some(0),
                updated_at: Some(now),
                ..Default::default()
            },
        )?;
        sessions::revoke_all_of(conn, user_id, None, now)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
