//! Keys (`patients`): each user's public key, the institution's key versions, and envelopes —
//! an institution key version wrapped by a holder to a colleague's public key. The server
//! checks their shape and who may store them; it can never open one.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, post, put, web};
use chrono::NaiveDateTime;
use client_crypto::shape;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Permission, Principal};
use crate::db::models::{self, keys, observations, patients};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::{audited, db};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyRequest {
    /// base64url of `version 1 | 32-byte X25519 public key` (client-crypto).
    pub public_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct PublicKeyResponse {
    pub fingerprint: String,
    /// True when this replaced another key: the old key's envelopes were deleted and
    /// colleagues must grant the institution key again.
    pub replaced: bool,
}

#[derive(Serialize, ToSchema)]
pub struct EnvelopeView {
    pub institution_id: i64,
    pub key_version: i32,
    /// The institution key wrapped to the caller's public key (client-crypto key envelope).
    pub envelope: String,
    pub granted_by: i64,
    pub granted_at: NaiveDateTime,
    /// The link of this key version to the one before it (client-crypto `key_chain`), which
    /// a client checks before it seals anything under this version; null for version 1 and
    /// for versions made before links were kept.
    pub link: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyVersionView {
    pub version: i32,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
    /// See [`EnvelopeView::link`].
    pub link: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: i64,
    pub login: String,
    pub full_name: String,
    pub public_key: Option<String>,
    /// Compare it with the colleague by voice or on screen before granting.
    pub fingerprint: Option<String>,
    /// Key versions this member holds an envelope for.
    pub holds: Vec<i32>,
}

#[derive(Serialize, ToSchema)]
pub struct MembersResponse {
    pub institution_id: i64,
    /// `null` before the institution's first key.
    pub current_version: Option<i32>,
    pub versions: Vec<KeyVersionView>,
    pub members: Vec<MemberView>,
    /// Passports still sealed under an older version (a rotation in progress).
    pub passports_pending_rotation: i64,
    /// Observation notes still sealed under an older version.
    pub notes_pending_rotation: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyVersionRequest {
    /// 1 for the first key; the current version + 1 to rotate.
    pub version: i32,
    /// The new key wrapped to the caller's own public key.
    pub envelope: String,
    /// Required from version 2 on, refused for version 1: the link that vouches for the new
    /// version, made with the current one (client-crypto `InstitutionKey::link_to`).
    #[serde(default)]
    pub link: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The link of the version, made with the version before it.
    pub link: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub recipient_id: i64,
    /// The key version wrapped to the recipient's public key.
    pub envelope: String,
}

fn shape_error(err: client_crypto::ShapeError) -> ApiError {
    ApiError::bad_request(err.code(), err.to_string())
}

/// The caller's institution when it is `institution_id`; 404 otherwise (other institutions'
/// keys do not exist for the caller).
fn own_institution(principal: &Principal, institution_id: i64) -> ApiResult<i64> {
    match principal.institution_id {
        Some(own) if own == institution_id => Ok(own),
        _ => Err(ApiError::NotFound),
    }
}

/// Publishes the caller's public key. A different key than before deletes the caller's
/// envelopes (they were wrapped to the old key).
#[utoipa::path(
    tag = "keys",
    request_body = PublicKeyRequest,
    responses((status = 200, body = PublicKeyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[put("/api/v1/me/public-key")]
pub async fn put_public_key(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<PublicKeyRequest>,
) -> ApiResult<web::Json<PublicKeyResponse>> {
    principal.require(Permission::Patients)?;
    let public_key = body.into_inner().public_key;
    let info = shape::check_public_key(&public_key).map_err(shape_error)?;
    let fingerprint = info.fingerprint.as_str().to_string();
    let mut entry = principal.audit(
        "keys.public_key",
        "user",
        Some(principal.user_id.to_string()),
    );
    entry.details = Some(serde_json::json!({"fingerprint": fingerprint}).to_string());
    let user_id = principal.user_id;
    let fp = fingerprint.clone();
    let replaced = audited(&state, entry, move |conn, _| {
        let old = keys::public_key_of(conn, user_id)?;
        if old.as_deref() == Some(public_key.as_str()) {
            return Ok(false);
        }
        keys::set_public_key(conn, user_id, &public_key, &fp, models::now())?;
        let replaced = old.is_some();
        if replaced {
            keys::delete_envelopes_of(conn, user_id)?;
        }
        Ok(replaced)
    })
    .await?;
    Ok(web::Json(PublicKeyResponse {
        fingerprint,
        replaced,
    }))
}

/// The envelopes granted to the caller.
#[utoipa::path(tag = "keys", responses((status = 200, body = [EnvelopeView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/api/v1/me/envelopes")]
pub async fn my_envelopes(
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<web::Json<Vec<EnvelopeView>>> {
    principal.require(Permission::Patients)?;
    let (user_id, institution_id) = (principal.user_id, principal.institution_id);
    let list = db(&state, move |conn| {
        Ok(keys::envelopes_for(conn, user_id, institution_id)?)
    })
    .await?;
    Ok(web::Json(
        list.into_iter()
            .map(|(e, link)| EnvelopeView {
                institution_id: e.institution_id,
                key_version: e.key_version,
                envelope: e.envelope,
                granted_by: e.granted_by,
                granted_at: e.granted_at,
                link,
            })
            .collect(),
    ))
}

/// The institution's key versions and its members: public keys, fingerprints, and which
/// versions each holds (colleagues waiting for access hold none).
#[utoipa::path(
    tag = "keys",
    params(("id" = i64, Path)),
    responses((status = 200, body = MembersResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/api/v1/institutions/{id}/members")]
pub async fn members(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
) -> ApiResult<web::Json<MembersResponse>> {
    principal.require(Permission::Patients)?;
    let institution_id = own_institution(&principal, path.into_inner())?;
    let response = db(&state, move |conn| {
        let versions = keys::versions(conn, institution_id)?;
        let current_version = versions.last().map(|v| v.version);
        let mut holds: BTreeMap<i64, Vec<i32>> = BTreeMap::new();
        for (user, version) in keys::envelopes_of_institution(conn, institution_id)? {
            holds.entry(user).or_default().push(version);
        }
        let members = keys::members(conn, institution_id)?
            .into_iter()
            .map(|m| {
                let mut held = holds.remove(&m.user_id).unwrap_or_default();
                held.sort_unstable();
                MemberView {
                    user_id: m.user_id,
                    login: m.login,
                    full_name: m.full_name,
                    public_key: m.public_key,
                    fingerprint: m.fingerprint,
                    holds: held,
                }
            })
            .collect();
        let (pending, notes_pending) = match current_version {
            Some(v) => (
                patients::count_below_version(conn, institution_id, v)?,
                observations::count_notes_below_version(conn, institution_id, v)?,
            ),
            None => (0, 0),
        };
        Ok(MembersResponse {
            institution_id,
            current_version,
            versions: versions
                .into_iter()
                .map(|v| KeyVersionView {
                    version: v.version,
                    created_by: v.created_by,
                    created_at: v.created_at,
                    link: v.link,
                })
                .collect(),
            members,
            passports_pending_rotation: pending,
            notes_pending_rotation: notes_pending,
        })
    })
    .await?;
    Ok(web::Json(response))
}

/// Creates the institution's first key (any clinician of the institution) or rotates to a new
/// version (an administrator of the institution who holds the current one). The request
/// carries the new key wrapped to the caller's own public key.
#[utoipa::path(
    tag = "keys",
    params(("id" = i64, Path)),
    request_body = NewKeyVersionRequest,
    responses((status = 201, body = KeyVersionView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[post("/api/v1/institutions/{id}/keys")]
pub async fn create_key_version(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
    body: web::Json<NewKeyVersionRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::Patients)?;
    let institution_id = own_institution(&principal, path.into_inner())?;
    let body = body.into_inner();
    shape::check_key_envelope(&body.envelope).map_err(shape_error)?;
    match (&body.link, body.version) {
        (None, 2..) => {
            return Err(ApiError::bad_request(
                "link_required",
                "a new key version comes with its link to the current one",
            ));
        }
        (Some(_), ..=1) => {
            return Err(ApiError::bad_request(
                "unexpected_link",
                "the first key version has nothing to link to",
            ));
        }
        (Some(link), _) => shape::check_key_chain_link(link).map_err(shape_error)?,
        (None, _) => {}
    }
    let action = if body.version == 1 {
        "keys.create"
    } else {
        "keys.rotate"
    };
    let mut entry = principal.audit(
        action,
        "institution_key",
        Some(format!("{institution_id}/{}", body.version)),
    );
    entry.details = Some(serde_json::json!({"version": body.version}).to_string());
    let view = audited(&state, entry, move |conn, _| {
        if keys::public_key_of(conn, principal.user_id)?.is_none() {
            return Err(ApiError::unprocessable(
                "no_public_key",
                "publish your public key first",
            ));
        }
        let current = keys::current_version(conn, institution_id)?;
        match current {
            None if body.version == 1 => {}
            Some(v) if body.version == v + 1 => {
                if !principal.has(Permission::Administration) {
                    return Err(ApiError::forbidden(Permission::Administration.as_str()));
                }
                if !keys::holds(conn, principal.user_id, institution_id, v)? {
                    return Err(ApiError::conflict(
                        "not_a_key_holder",
                        "only a holder of the current key can rotate it",
                    ));
                }
            }
            _ => {
                return Err(ApiError::conflict(
                    "wrong_key_version",
                    format!("the next key version is {}", current.map_or(1, |v| v + 1)),
                ));
            }
        }
        let now = models::now();
        keys::insert_version(
            conn,
            institution_id,
            body.version,
            principal.user_id,
            now,
            body.link.as_deref(),
        )?;
        keys::put_envelope(
            conn,
            institution_id,
            body.version,
            principal.user_id,
            &body.envelope,
            principal.user_id,
            now,
        )?;
        Ok(KeyVersionView {
            version: body.version,
            created_by: principal.user_id,
            created_at: now,
            link: body.link,
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// Grants a key version to a colleague: the caller, a holder of that version, stores it
/// wrapped to the colleague's public key.
#[utoipa::path(
    tag = "keys",
    params(("id" = i64, Path), ("version" = i32, Path)),
    request_body = GrantRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[post("/api/v1/institutions/{id}/keys/{version}/envelopes")]
pub async fn grant(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(i64, i32)>,
    body: web::Json<GrantRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::Patients)?;
    let (institution_id, version) = path.into_inner();
    let institution_id = own_institution(&principal, institution_id)?;
    let body = body.into_inner();
    shape::check_key_envelope(&body.envelope).map_err(shape_error)?;
    let mut entry = principal.audit("keys.grant", "user", Some(body.recipient_id.to_string()));
    entry.details =
        Some(serde_json::json!({"institution_id": institution_id, "version": version}).to_string());
    audited(&state, entry, move |conn, _| {
        let versions = keys::versions(conn, institution_id)?;
        if !versions.iter().any(|v| v.version == version) {
            return Err(ApiError::NotFound);
        }
        if !keys::holds(conn, principal.user_id, institution_id, version)? {
            return Err(ApiError::conflict(
                "not_a_key_holder",
                "only a holder of this key version can grant it",
            ));
        }
        let recipient = keys::members(conn, institution_id)?
            .into_iter()
            .find(|m| m.user_id == body.recipient_id)
            .ok_or(ApiError::NotFound)?;
        if recipient.public_key.is_none() {
            return Err(ApiError::unprocessable(
                "no_public_key",
                "the colleague has not published a public key yet",
            ));
        }
        keys::put_envelope(
            conn,
            institution_id,
            version,
            recipient.user_id,
            &body.envelope,
            principal.user_id,
            models::now(),
        )?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds the link of a key version made before links were kept: the caller, a holder of this
/// version and of the one before it, vouches for it after comparing its fingerprint with the
/// colleague who made it. A version that has a link keeps it (409 `already_linked`).
#[utoipa::path(
    tag = "keys",
    params(("id" = i64, Path), ("version" = i32, Path)),
    request_body = LinkRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
#[put("/api/v1/institutions/{id}/keys/{version}/link")]
pub async fn add_link(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(i64, i32)>,
    body: web::Json<LinkRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::Patients)?;
    let (institution_id, version) = path.into_inner();
    let institution_id = own_institution(&principal, institution_id)?;
    let link = body.into_inner().link;
    shape::check_key_chain_link(&link).map_err(shape_error)?;
    let entry = principal.audit(
        "keys.link",
        "institution_key",
        Some(format!("{institution_id}/{version}")),
    );
    audited(&state, entry, move |conn, _| {
        let versions = keys::versions(conn, institution_id)?;
        if version < 2 || !versions.iter().any(|v| v.version == version) {
            return Err(ApiError::NotFound);
        }
        for held in [version - 1, version] {
            if !keys::holds(conn, principal.user_id, institution_id, held)? {
                return Err(ApiError::conflict(
                    "not_a_key_holder",
                    "only a holder of this version and of the one before it can link them",
                ));
            }
        }
        if !keys::add_link(conn, institution_id, version, &link)? {
            return Err(ApiError::conflict(
                "already_linked",
                "this key version has its link already",
            ));
        }
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
