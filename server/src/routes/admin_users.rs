//! Administration of users (`administration`). An administrator with an institution manages
//! the users of that institution only; one without (region-wide) manages everyone. Users are
//! never deleted: de-registration deactivates the account and ends its sessions at once.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Permission, Principal};
use crate::db::DbConn;
use crate::db::models::{self, rbac, refs::institution, sessions, totp, users};
use crate::domain::{FullName, Login, NewPassword};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::password;
use crate::routes::{audited, db};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub login: String,
    pub full_name: String,
    pub institution_id: Option<i64>,
    pub roles: Vec<String>,
    pub active: bool,
    /// Set while the account is locked after repeated wrong passwords.
    pub locked_until: Option<NaiveDateTime>,
    /// Signing in asks for an authenticator's code (a confirmed second factor).
    pub totp_enabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub login: String,
    pub full_name: String,
    pub password: String,
    /// Role names; at least one.
    pub roles: Vec<String>,
    /// `null` for a region-wide user (e.g. the ministry).
    #[serde(default)]
    pub institution_id: Option<i64>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub full_name: Option<String>,
    pub roles: Option<Vec<String>>,
    /// Moves the user to another institution (`null`: region-wide). Omit to keep.
    #[serde(default, with = "serde_with_null")]
    #[schema(value_type = Option<i64>)]
    pub institution_id: Option<Option<i64>>,
    /// A new password set by the administrator; ends the user's sessions and unlocks it.
    pub password: Option<String>,
    /// `true` re-registers a de-registered user (and unlocks it).
    pub active: Option<bool>,
}

/// Distinguishes an absent field from an explicit `null`.
mod serde_with_null {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

#[derive(Deserialize, IntoParams)]
pub struct UserListQuery {
    pub institution_id: Option<i64>,
    /// Only active users (default false: everyone).
    #[serde(default)]
    pub active_only: bool,
}

fn view(user: users::User, roles: Vec<String>, totp_enabled: bool) -> UserView {
    UserView {
        id: user.id,
        login: user.login,
        full_name: user.full_name,
        institution_id: user.institution_id,
        roles,
        active: user.active,
        locked_until: user.locked_until,
        totp_enabled,
        created_at: user.created_at,
        updated_at: user.updated_at,
    }
}

fn load_view(conn: &mut DbConn, user: users::User) -> ApiResult<UserView> {
    let roles = users::role_names(conn, &[user.id])?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let totp_enabled = !totp::enrolled_among(conn, &[user.id])?.is_empty();
    Ok(view(user, roles, totp_enabled))
}

/// The user, if it exists and is within the administrator's scope (404 otherwise).
fn find_in_scope(conn: &mut DbConn, admin: &Principal, id: i64) -> ApiResult<users::User> {
    let user = users::find(conn, id)?;
    match admin.institution_id {
        Some(scope) if user.institution_id != Some(scope) => Err(ApiError::NotFound),
        _ => Ok(user),
    }
}

/// Role ids for names; every name must exist and at least one is required, and the
/// administrator must hold every permission the roles grant: nobody hands out more than it has
/// (an `administration`-only account could otherwise make itself, or a colleague, `admin`).
fn resolve_roles(conn: &mut DbConn, admin: &Principal, names: &[String]) -> ApiResult<Vec<i64>> {
    if names.is_empty() {
        return Err(ApiError::unprocessable(
            "role_required",
            "a user needs at least one role",
        ));
    }
    let found = rbac::role_ids_by_name(conn, names)?;
    if let Some(missing) = names.iter().find(|n| !found.iter().any(|(_, f)| f == *n)) {
        return Err(ApiError::unprocessable(
            "unknown_role",
            format!("there is no role `{missing}`"),
        ));
    }
    let ids: Vec<i64> = found.into_iter().map(|(id, _)| id).collect();
    for (role_id, permission) in rbac::role_permission_names(conn)? {
        if ids.contains(&role_id) && !admin.permissions.contains(&permission) {
            return Err(ApiError::Forbidden {
                code: "role_beyond_own",
                message: format!(
                    "a role that grants `{permission}` is given only by an administrator who holds it"
                ),
            });
        }
    }
    Ok(ids)
}

/// Checks that the institution exists, and that the administrator may place users there.
fn check_institution(conn: &mut DbConn, admin: &Principal, inst: Option<i64>) -> ApiResult<()> {
    if let Some(scope) = admin.institution_id
        && inst != Some(scope)
    {
        return Err(ApiError::Forbidden {
            code: "forbidden",
            message: "an institution's administrator manages users of that institution only".into(),
        });
    }
    if let Some(id) = inst {
        match institution::find(conn, id) {
            Ok(_) => {}
            Err(diesel::result::Error::NotFound) => {
                return Err(ApiError::unprocessable(
                    "unknown_institution",
                    format!("there is no institution {id}"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Lists users (of the administrator's institution, or all for a region-wide administrator).
#[utoipa::path(
    tag = "admin",
    params(UserListQuery),
    responses((status = 200, body = [UserView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/api/v1/admin/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<UserListQuery>,
) -> ApiResult<web::Json<Vec<UserView>>> {
    principal.require(Permission::Administration)?;
    let query = query.into_inner();
    let scope = principal.institution_id.or(query.institution_id);
    let views = db(&state, move |conn| {
        let list = users::list(conn, scope, query.active_only)?;
        let ids: Vec<i64> = list.iter().map(|u| u.id).collect();
        let mut roles: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (user_id, role) in users::role_names(conn, &ids)? {
            roles.entry(user_id).or_default().push(role);
        }
        let enrolled: BTreeSet<i64> = totp::enrolled_among(conn, &ids)?.into_iter().collect();
        Ok(list
            .into_iter()
            .map(|u| {
                let r = roles.remove(&u.id).unwrap_or_default();
                let totp_enabled = enrolled.contains(&u.id);
                view(u, r, totp_enabled)
            })
            .collect())
    })
    .await?;
    Ok(web::Json(views))
}

/// Registers a user.
#[utoipa::path(
    tag = "admin",
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserView),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "Login taken", body = ErrorBody),
        (status = 422, description = "Unknown role or institution", body = ErrorBody),
    )
)]
#[post("/api/v1/admin/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<CreateUserRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::Administration)?;
    let body = body.into_inner();
    let login = Login::parse(&body.login)?;
    let full_name = FullName::parse(&body.full_name)?;
    let new_password = NewPassword::parse(&body.password)?;
    let hash = web::block(move || password::hash(new_password.expose()))
        .await?
        .map_err(ApiError::internal)?;
    let mut entry = principal.audit("admin.user.create", "user", None);
    entry.details = Some(
        serde_json::json!({"login": login.as_str(), "roles": body.roles, "institution_id": body.institution_id})
            .to_string(),
    );
    let view = audited(&state, entry, move |conn, entry| {
        check_institution(conn, &principal, body.institution_id)?;
        let role_ids = resolve_roles(conn, &principal, &body.roles)?;
        let now = models::now();
        let id = users::insert(
            conn,
            &users::NewUser {
                login: login.as_str(),
                full_name: full_name.as_str(),
                password_hash: &hash,
                institution_id: body.institution_id,
                active: true,
                failed_logins: 0,
                created_at: now,
                updated_at: now,
            },
        )
        .map_err(|e| {
            if crate::db::is_unique_violation(&e) {
                ApiError::conflict("login_taken", "this login is already registered")
            } else {
                e.into()
            }
        })?;
        users::set_roles(conn, id, &role_ids)?;
        entry.object_id = Some(id.to_string());
        let user = users::find(conn, id)?;
        load_view(conn, user)
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/admin/users/{}", view.id)))
        .json(view))
}

/// One user.
#[utoipa::path(
    tag = "admin",
    params(("id" = i64, Path)),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/api/v1/admin/users/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
) -> ApiResult<web::Json<UserView>> {
    principal.require(Permission::Administration)?;
    let id = path.into_inner();
    let view = db(&state, move |conn| {
        let user = find_in_scope(conn, &principal, id)?;
        load_view(conn, user)
    })
    .await?;
    Ok(web::Json(view))
}

/// Edits a user: name, roles, institution, password reset, re-registration.
#[utoipa::path(
    tag = "admin",
    params(("id" = i64, Path)),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, body = UserView),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[put("/api/v1/admin/users/{id}")]
pub async fn update_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
    body: web::Json<UpdateUserRequest>,
) -> ApiResult<web::Json<UserView>> {
    principal.require(Permission::Administration)?;
    let id = path.into_inner();
    let body = body.into_inner();
    let full_name = body.full_name.as_deref().map(FullName::parse).transpose()?;
    let new_hash = match body.password {
        Some(p) => {
            let p = NewPassword::parse(&p)?;
            Some(
                web::block(move || password::hash(p.expose()))
                    .await?
                    .map_err(ApiError::internal)?,
            )
        }
        None => None,
    };
    if body.active == Some(false) {
        return Err(ApiError::bad_request(
            "use_delete",
            "de-register a user with DELETE /api/v1/admin/users/{id}",
        ));
    }
    let mut entry = principal.audit("admin.user.update", "user", Some(id.to_string()));
    entry.details = Some(
        serde_json::json!({
            "full_name": full_name.is_some(),
            "roles": body.roles,
            "institution_id": body.institution_id,
            "password_reset": new_hash.is_some(),
            "reactivated": body.active == Some(true),
        })
        .to_string(),
    );
    let view = audited(&state, entry, move |conn, _| {
        let before = find_in_scope(conn, &principal, id)?;
        if let Some(inst) = body.institution_id {
            check_institution(conn, &principal, inst)?;
            if inst != before.institution_id {
                // The envelopes are the old institution's key: a user who moves leaves it
                // behind, as one who is de-registered does (the old institution's Keys page no
                // longer lists the user, so nobody there would know to rotate it away).
                crate::db::models::keys::delete_envelopes_of(conn, id)?;
            }
        }
        let now = models::now();
        let unlock = new_hash.is_some() || body.active == Some(true);
        let changes = users::UserChanges {
            full_name: full_name.map(|n| n.as_str().to_string()),
            institution_id: body.institution_id,
            active: body.active,
            password_hash: new_hash.clone(),
            failed_logins: unlock.then_some(0),
            locked_until: unlock.then_some(None),
            updated_at: Some(now),
        };
        users::update(conn, id, &changes)?;
        if let Some(roles) = &body.roles {
            let role_ids = resolve_roles(conn, &principal, roles)?;
            users::set_roles(conn, id, &role_ids)?;
        }
        if new_hash.is_some() {
            sessions::revoke_all_of(conn, id, None, now)?;
        }
        let user = users::find(conn, id)?;
        load_view(conn, user)
    })
    .await?;
    Ok(web::Json(view))
}

/// De-registers a user: it can no longer sign in, and its sessions end at once. The account is
/// kept (the audit log and records refer to it).
#[utoipa::path(
    tag = "admin",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
#[delete("/api/v1/admin/users/{id}")]
pub async fn deactivate_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::Administration)?;
    let id = path.into_inner();
    if id == principal.user_id {
        return Err(ApiError::conflict(
            "cannot_deregister_self",
            "an administrator cannot de-register its own account",
        ));
    }
    let entry = principal.audit("admin.user.deactivate", "user", Some(id.to_string()));
    audited(&state, entry, move |conn, _| {
        find_in_scope(conn, &principal, id)?;
        deactivate(conn, id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Removes a user's second factor and its recovery codes (a lost or replaced phone, no recovery
/// code at hand): the user signs in with the password alone, and enrols again (at once, if a
/// role requires it). The user's sessions go on; the administrator's reason belongs with the
/// request that asked for it.
#[utoipa::path(
    tag = "admin",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, description = "No such user in scope, or no second factor", body = ErrorBody))
)]
#[delete("/api/v1/admin/users/{id}/totp")]
pub async fn reset_totp(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::Administration)?;
    let id = path.into_inner();
    let entry = principal.audit("admin.user.totp_reset", "user", Some(id.to_string()));
    audited(&state, entry, move |conn, _| {
        find_in_scope(conn, &principal, id)?;
        if totp::remove(conn, id)? {
            Ok(())
        } else {
            Err(ApiError::NotFound)
        }
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deactivates an account, ends its sessions and deletes its key envelopes (shared with the `palreg user deactivate` CLI).
pub fn deactivate(conn: &mut DbConn, id: i64) -> ApiResult<()> {
    let now = models::now();
    users::update(
        conn,
        id,
        &users::UserChanges {
            active: Some(false),
            updated_at: Some(now),
            ..Default::default()
        },
    )?;
    sessions::revoke_all_of(conn, id, None, now)?;
    // Envelopes are the departed user's access to institution keys: gone with it.
    crate::db::models::keys::delete_envelopes_of(conn, id)?;
    Ok(())
}
