//! The medical record (`medical_records`): dated observations of a patient — pain score,
//! ECOG performance status, needs added or removed (applied to the patient's record), and an
//! optional free-text note sealed in the browser (never in clear). After a key rotation the
//! browser re-seals the notes still under an older key version: it pages through them
//! (`GET /api/v1/observations/sealed-notes`), opens each and seals the same text anew
//! (`PUT /api/v1/observations/{id}/note`), as it re-encrypts the passports.

use actix_web::{HttpResponse, get, post, put, web};
use chrono::{NaiveDate, NaiveDateTime};
use client_crypto::shape;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, Permission, Principal};
use crate::db::DbConn;
use crate::db::models::{self, keys, observations, patients, refs};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::patients::{institution_of, snapshot};
use crate::routes::{AuditedRead, audited, read_audited_as};
use crate::state::AppState;

#[derive(Deserialize, Serialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SealedNote {
    /// The record id bound into the note's associated data, chosen by the client before
    /// sealing (e.g. a random UUID): 1–128 characters.
    pub note_ref: String,
    /// The note sealed under the institution's current key (client-crypto sealed note).
    pub sealed: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationRequest {
    pub observed_on: NaiveDate,
    /// 0 (no pain) to 10.
    pub pain_score: Option<i32>,
    /// ECOG performance status 0–5.
    pub ecog: Option<i32>,
    #[serde(default)]
    pub needs_added: Vec<i64>,
    #[serde(default)]
    pub needs_removed: Vec<i64>,
    pub note: Option<SealedNote>,
}

#[derive(Serialize, ToSchema)]
pub struct ObservationView {
    pub id: i64,
    pub patient_id: i64,
    pub observed_on: NaiveDate,
    pub pain_score: Option<i32>,
    pub ecog: Option<i32>,
    pub needs_added: Vec<i64>,
    pub needs_removed: Vec<i64>,
    pub note: Option<SealedNote>,
    pub note_key_version: Option<i32>,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// The key version a sealed note says it is under, or 400 when it is not a sealed note.
fn sealed_under(note: &SealedNote) -> ApiResult<i32> {
    let info = shape::check_sealed_note(&note.sealed)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    i32::try_from(info.key_version).map_err(|_| bad("invalid_note", "key version out of range"))
}

/// 409 unless `version` is the institution's current key version: notes are sealed under it.
fn require_current_key(conn: &mut DbConn, institution_id: i64, version: i32) -> ApiResult<()> {
    if keys::current_version(conn, institution_id)? != Some(version) {
        return Err(ApiError::conflict(
            "stale_key_version",
            "notes are sealed under the institution's current key version",
        ));
    }
    Ok(())
}

fn to_view(o: observations::Observation) -> ObservationView {
    let ids = |s: &str| serde_json::from_str::<Vec<i64>>(s).unwrap_or_default();
    ObservationView {
        id: o.id,
        patient_id: o.patient_id,
        observed_on: o.observed_on,
        pain_score: o.pain_score,
        ecog: o.ecog,
        needs_added: ids(&o.needs_added),
        needs_removed: ids(&o.needs_removed),
        note: match (o.note_ref, o.note) {
            (Some(note_ref), Some(sealed)) => Some(SealedNote { note_ref, sealed }),
            _ => None,
        },
        note_key_version: o.note_key_version,
        created_by: o.created_by,
        created_at: o.created_at,
    }
}

/// The most needs an observation adds or removes (a record lists at most as many).
const MAX_NEEDS_CHANGED: usize = 100;

/// Each need named once, in one list only, and not too many of them.
fn check_needs(added: &[i64], removed: &[i64]) -> ApiResult<()> {
    if added.len() + removed.len() > MAX_NEEDS_CHANGED {
        return Err(bad(
            "invalid_needs",
            format!("an observation changes at most {MAX_NEEDS_CHANGED} needs"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if !added.iter().chain(removed).all(|n| seen.insert(*n)) {
        return Err(bad(
            "invalid_needs",
            "each need is named once: added or removed, not twice and not both",
        ));
    }
    Ok(())
}

/// Records an observation; needs added or removed change the patient's record (a new version).
#[utoipa::path(
    tag = "medical records",
    params(("id" = i64, Path)),
    request_body = ObservationRequest,
    responses((status = 201, body = ObservationView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[post("/api/v1/patients/{id}/observations")]
pub async fn create_observation(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
    body: web::Json<ObservationRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::MedicalRecords)?;
    let institution_id = institution_of(&principal)?;
    let patient_id = path.into_inner();
    let body = body.into_inner();
    crate::domain::check_date("observed_on", body.observed_on)?;
    if body.observed_on > crate::domain::latest_calendar_date(models::now()) {
        return Err(bad(
            "invalid_dates",
            "an observation cannot be dated in the future",
        ));
    }
    if body.pain_score.is_some_and(|p| !(0..=10).contains(&p)) {
        return Err(bad(
            "invalid_pain_score",
            "the pain score is between 0 and 10",
        ));
    }
    if body.ecog.is_some_and(|e| !(0..=5).contains(&e)) {
        return Err(bad("invalid_ecog", "the ECOG status is between 0 and 5"));
    }
    check_needs(&body.needs_added, &body.needs_removed)?;
    let note_version = match &body.note {
        Some(note) => {
            if note.note_ref.is_empty()
                || note.note_ref.len() > 128
                || note.note_ref.chars().any(char::is_control)
            {
                return Err(bad(
                    "invalid_note",
                    "note_ref has 1 to 128 characters, none of them control characters",
                ));
            }
            Some(sealed_under(note)?)
        }
        None => None,
    };
    let entry = principal.audit(
        "observations.create",
        "patient",
        Some(patient_id.to_string()),
    );
    let view = audited(&state, entry, move |conn, _| {
        let patient = patients::find_in_institution(conn, patient_id, institution_id)?;
        if let Some(v) = note_version {
            require_current_key(conn, institution_id, v)?;
        }
        let named: Vec<i64> = body
            .needs_added
            .iter()
            .chain(&body.needs_removed)
            .copied()
            .collect();
        let known = refs::need::find_many(conn, &named)?;
        if let Some(unknown) = named.iter().find(|id| !known.iter().any(|n| n.id == **id)) {
            return Err(ApiError::unprocessable(
                "unknown_need",
                format!("there is no need {unknown}"),
            ));
        }
        let now = models::now();
        let added = serde_json::to_string(&body.needs_added).map_err(ApiError::internal)?;
        let removed = serde_json::to_string(&body.needs_removed).map_err(ApiError::internal)?;
        let id = observations::insert(
            conn,
            &observations::NewObservation {
                patient_id,
                institution_id,
                observed_on: body.observed_on,
                pain_score: body.pain_score,
                ecog: body.ecog,
                needs_added: &added,
                needs_removed: &removed,
                note_ref: body.note.as_ref().map(|n| n.note_ref.as_str()),
                note: body.note.as_ref().map(|n| n.sealed.as_str()),
                note_key_version: note_version,
                created_by: principal.user_id,
                created_at: now,
            },
        )?;
        if !body.needs_added.is_empty() || !body.needs_removed.is_empty() {
            let needs: Vec<i64> = patient
                .needs
                .as_slice()
                .iter()
                .filter(|n| !body.needs_removed.contains(n))
                .chain(&body.needs_added)
                .copied()
                .collect();
            patients::set_needs(conn, patient_id, &patients::NeedIds::new(&needs))?;
            patients::touch(conn, patient_id, patient.version, principal.user_id, now)?;
            snapshot(conn, patient_id, institution_id, "observation")?;
        }
        Ok(to_view(observations::find(conn, id)?))
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// The patient's observations, newest first.
#[utoipa::path(
    tag = "medical records",
    params(("id" = i64, Path)),
    responses((status = 200, body = [ObservationView]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/api/v1/patients/{id}/observations")]
pub async fn list_observations(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> ApiResult<web::Json<Vec<ObservationView>>> {
    let patient_id = path.into_inner();
    let list = read_audited_as(
        &state,
        caller,
        Permission::MedicalRecords,
        institution_of,
        AuditedRead::new("observations.read", "patient", Some(patient_id.to_string())),
        move |conn, institution_id, _| {
            patients::find_in_institution(conn, patient_id, institution_id)?;
            Ok(observations::of_patient(conn, patient_id)?
                .into_iter()
                .map(to_view)
                .collect())
        },
    )
    .await?;
    Ok(web::Json(list))
}

/// The notes a key rotation has left under an older key version (a page of them).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SealedNotesQuery {
    /// Notes sealed under a key version below this one (the institution's current version).
    pub key_version_below: i32,
    /// Keyset paging: observation ids greater than this (the previous page's `next_after`).
    pub after: Option<i64>,
    /// 1–500, default 100.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct PendingNote {
    /// The observation.
    pub id: i64,
    pub patient_id: i64,
    /// The patient's pseudonym, which the note is bound to.
    pub pseudonym: String,
    pub note: SealedNote,
    pub note_key_version: i32,
}

#[derive(Serialize, ToSchema)]
pub struct PendingNotesPage {
    /// All the notes under a version below `key_version_below`, not only this page.
    pub total: i64,
    pub items: Vec<PendingNote>,
    pub next_after: Option<i64>,
}

/// The institution's observation notes still sealed under a key version older than
/// `key_version_below`, by observation id: what a key rotation has left to re-seal.
#[utoipa::path(
    tag = "medical records",
    params(SealedNotesQuery),
    responses((status = 200, body = PendingNotesPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/api/v1/observations/sealed-notes")]
pub async fn pending_notes(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<SealedNotesQuery>,
) -> ApiResult<web::Json<PendingNotesPage>> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(bad("invalid_limit", "limit is between 1 and 500"));
    }
    let page = read_audited_as(
        &state,
        caller,
        Permission::MedicalRecords,
        institution_of,
        AuditedRead::new("observations.notes_pending", "institution", None),
        move |conn, institution_id, entry| {
            entry.object_id = Some(institution_id.to_string());
            let total =
                observations::count_notes_below_version(conn, institution_id, q.key_version_below)?;
            let rows = observations::notes_below_version(
                conn,
                institution_id,
                q.key_version_below,
                q.after,
                limit,
            )?;
            let next_after = (rows.len() as i64 == limit)
                .then(|| rows.last().map(|(o, _)| o.id))
                .flatten();
            let items = rows
                .into_iter()
                .filter_map(|(o, pseudonym)| {
                    Some(PendingNote {
                        id: o.id,
                        patient_id: o.patient_id,
                        pseudonym,
                        note: SealedNote {
                            note_ref: o.note_ref?,
                            sealed: o.note?,
                        },
                        note_key_version: o.note_key_version?,
                    })
                })
                .collect();
            Ok(PendingNotesPage {
                total,
                items,
                next_after,
            })
        },
    )
    .await?;
    Ok(web::Json(page))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResealRequest {
    /// The key version the note was under when the client opened it; a note re-sealed by a
    /// colleague meanwhile is refused (409 `stale_version`).
    pub from_key_version: i32,
    /// The same note (same `note_ref`) sealed under the institution's current key version.
    pub note: SealedNote,
}

/// Re-seals an observation's note under the institution's current key version, after a
/// rotation. Only a holder of the current version may; the note's `note_ref` cannot change,
/// and nothing else of the observation does.
#[utoipa::path(
    tag = "medical records",
    params(("id" = i64, Path)),
    request_body = ResealRequest,
    responses((status = 200, body = ObservationView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[put("/api/v1/observations/{id}/note")]
pub async fn reseal_note(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
    body: web::Json<ResealRequest>,
) -> ApiResult<web::Json<ObservationView>> {
    principal.require(Permission::MedicalRecords)?;
    let institution_id = institution_of(&principal)?;
    let id = path.into_inner();
    let body = body.into_inner();
    let to_version = sealed_under(&body.note)?;
    let mut entry = principal.audit(
        "observations.reseal_note",
        "observation",
        Some(id.to_string()),
    );
    entry.details = Some(
        serde_json::json!({"from_key_version": body.from_key_version, "to_key_version": to_version})
            .to_string(),
    );
    let view = audited(&state, entry, move |conn, _| {
        let observation = observations::find_in_institution(conn, id, institution_id)?;
        let (Some(note_ref), Some(held)) = (&observation.note_ref, observation.note_key_version)
        else {
            return Err(ApiError::unprocessable(
                "no_note",
                "this observation has no note to re-seal",
            ));
        };
        if *note_ref != body.note.note_ref {
            return Err(ApiError::unprocessable(
                "note_ref_changed",
                "a re-sealed note keeps its note_ref",
            ));
        }
        require_current_key(conn, institution_id, to_version)?;
        if held != body.from_key_version || held >= to_version {
            return Err(ApiError::conflict(
                "stale_version",
                format!("the note is under key version {held} now; reload it"),
            ));
        }
        if !keys::holds(conn, principal.user_id, institution_id, to_version)? {
            return Err(ApiError::conflict(
                "not_a_key_holder",
                "only a holder of the current key can re-seal notes",
            ));
        }
        if observations::reseal_note(conn, id, held, &body.note.sealed, to_version)? != 1 {
            return Err(ApiError::conflict(
                "stale_version",
                "the note was re-sealed meanwhile; reload it",
            ));
        }
        Ok(to_view(observations::find(conn, id)?))
    })
    .await?;
    Ok(web::Json(view))
}
