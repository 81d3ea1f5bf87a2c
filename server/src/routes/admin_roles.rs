//! Roles and permissions (`administration`): RBAC as data.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Permission, Principal};
use crate::db::DbConn;
use crate::db::models::rbac;
use crate::domain::Code;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::{audited, db};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct RoleView {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    /// Holders must have a second factor (an authenticator app): without one, signing in lets
    /// them do nothing but enrol it.
    pub require_totp: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PermissionView {
    pub id: i64,
    pub name: String,
    pub description: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<String>,
    /// Holders must have a second factor (default false).
    #[serde(default)]
    pub require_totp: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleUpdateRequest {
    pub description: Option<String>,
    pub permissions: Option<Vec<String>>,
    pub require_totp: Option<bool>,
}

fn all_views(conn: &mut DbConn) -> ApiResult<Vec<RoleView>> {
    let mut permissions: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (role_id, name) in rbac::role_permission_names(conn)? {
        permissions.entry(role_id).or_default().push(name);
    }
    Ok(rbac::list_roles(conn)?
        .into_iter()
        .map(|r| RoleView {
            permissions: permissions.remove(&r.id).unwrap_or_default(),
            id: r.id,
            name: r.name,
            description: r.description,
            require_totp: r.require_totp,
        })
        .collect())
}

fn one_view(conn: &mut DbConn, id: i64) -> ApiResult<RoleView> {
    all_views(conn)?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or(ApiError::NotFound)
}

fn resolve_permissions(conn: &mut DbConn, names: &[String]) -> ApiResult<Vec<i64>> {
    let found = rbac::permission_ids_by_name(conn, names)?;
    if let Some(missing) = names.iter().find(|n| !found.iter().any(|(_, f)| f == *n)) {
        return Err(ApiError::unprocessable(
            "unknown_permission",
            format!("there is no permission `{missing}`"),
        ));
    }
    Ok(found.into_iter().map(|(id, _)| id).collect())
}

fn parse_description(raw: &str) -> ApiResult<String> {
    let d = raw.trim();
    if d.chars().count() > 500 || d.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_description",
            "a description has at most 500 characters and no control characters",
        ));
    }
    Ok(d.to_string())
}

/// Every permission the code knows.
#[utoipa::path(tag = "admin", responses((status = 200, body = [PermissionView]), (status = 403, body = ErrorBody)))]
#[get("/api/v1/admin/permissions")]
pub async fn list_permissions(
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<web::Json<Vec<PermissionView>>> {
    principal.require(Permission::Administration)?;
    let list = db(&state, |conn| Ok(rbac::list_permissions(conn)?)).await?;
    Ok(web::Json(
        list.into_iter()
            .map(|p| PermissionView {
                id: p.id,
                name: p.name,
                description: p.description,
            })
            .collect(),
    ))
}

/// Every role with its permissions.
#[utoipa::path(tag = "admin", responses((status = 200, body = [RoleView]), (status = 403, body = ErrorBody)))]
#[get("/api/v1/admin/roles")]
pub async fn list_roles(
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<web::Json<Vec<RoleView>>> {
    principal.require(Permission::Administration)?;
    Ok(web::Json(db(&state, all_views).await?))
}

/// Creates a role.
///
/// Region-wide administrators only (403 `region_wide_only` for an institution's administrator):
/// roles are shared by every institution.
#[utoipa::path(
    tag = "admin",
    request_body = RoleRequest,
    responses((status = 201, body = RoleView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[post("/api/v1/admin/roles")]
pub async fn create_role(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<RoleRequest>,
) -> ApiResult<HttpResponse> {
    principal.require_region_wide(Permission::Administration)?;
    let body = body.into_inner();
    let name = Code::parse(&body.name)?.into_inner();
    let description = parse_description(&body.description)?;
    let mut entry = principal.audit("admin.role.create", "role", None);
    entry.details = Some(
        serde_json::json!({"name": name, "permissions": body.permissions, "require_totp": body.require_totp})
            .to_string(),
    );
    let view = audited(&state, entry, move |conn, entry| {
        let permission_ids = resolve_permissions(conn, &body.permissions)?;
        let id = rbac::insert_role(conn, &name, &description).map_err(|e| {
            if crate::db::is_unique_violation(&e) {
                ApiError::conflict("role_exists", "a role with this name exists")
            } else {
                e.into()
            }
        })?;
        rbac::set_role_permissions(conn, id, &permission_ids)?;
        if body.require_totp {
            rbac::set_role_require_totp(conn, id, true)?;
        }
        entry.object_id = Some(id.to_string());
        one_view(conn, id)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// Changes a role's description or permissions.
///
/// Region-wide administrators only (403 `region_wide_only`).
#[utoipa::path(
    tag = "admin",
    params(("id" = i64, Path)),
    request_body = RoleUpdateRequest,
    responses((status = 200, body = RoleView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[put("/api/v1/admin/roles/{id}")]
pub async fn update_role(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
    body: web::Json<RoleUpdateRequest>,
) -> ApiResult<web::Json<RoleView>> {
    principal.require_region_wide(Permission::Administration)?;
    let id = path.into_inner();
    let body = body.into_inner();
    let description = body
        .description
        .as_deref()
        .map(parse_description)
        .transpose()?;
    let mut entry = principal.audit("admin.role.update", "role", Some(id.to_string()));
    entry.details = Some(
        serde_json::json!({"permissions": body.permissions, "require_totp": body.require_totp})
            .to_string(),
    );
    let view = audited(&state, entry, move |conn, _| {
        let role = rbac::find_role(conn, id)?;
        if let Some(d) = &description {
            rbac::update_role_description(conn, id, d)?;
        }
        if let Some(names) = &body.permissions {
            // The built-in administrator role must keep `administration`, or nobody could
            // manage the register any more.
            if role.name == "admin" && !names.iter().any(|n| n == "administration") {
                return Err(ApiError::conflict(
                    "admin_role_locked",
                    "the admin role keeps the administration permission",
                ));
            }
            let ids = resolve_permissions(conn, names)?;
            rbac::set_role_permissions(conn, id, &ids)?;
        }
        if let Some(require) = body.require_totp {
            rbac::set_role_require_totp(conn, id, require)?;
        }
        one_view(conn, id)
    })
    .await?;
    Ok(web::Json(view))
}

/// Deletes a role that no user holds (409 otherwise).
///
/// Region-wide administrators only (403 `region_wide_only`).
#[utoipa::path(
    tag = "admin",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
#[delete("/api/v1/admin/roles/{id}")]
pub async fn delete_role(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    principal.require_region_wide(Permission::Administration)?;
    let id = path.into_inner();
    let entry = principal.audit("admin.role.delete", "role", Some(id.to_string()));
    audited(&state, entry, move |conn, _| {
        let role = rbac::find_role(conn, id)?;
        if role.name == "admin" {
            return Err(ApiError::conflict(
                "admin_role_locked",
                "the admin role cannot be deleted",
            ));
        }
        if rbac::role_user_count(conn, id)? > 0 {
            return Err(ApiError::conflict("in_use", "users hold this role"));
        }
        rbac::delete_role(conn, id)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
