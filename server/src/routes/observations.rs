//! The medical record (`medical_records`): dated observations of a patient — pain score,
//! ECOG performance status, needs added or removed (applied to the patient's record), and an
//! optional free-text note sealed in the browser (never in clear).

use actix_web::{HttpResponse, get, post, web};
use chrono::{NaiveDate, NaiveDateTime};
use client_crypto::shape;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Permission, Principal};
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

fn bad(code: &'static str, message: &str) -> ApiError {
    ApiError::bad_request(code, message)
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
    if body
        .needs_added
        .iter()
        .any(|n| body.needs_removed.contains(n))
    {
        return Err(bad(
            "invalid_needs",
            "a need cannot be both added and removed",
        ));
    }
    let note_version = match &body.note {
        Some(note) => {
            if note.note_ref.is_empty() || note.note_ref.len() > 128 {
                return Err(bad("invalid_note", "note_ref has 1 to 128 characters"));
            }
            let info = shape::check_sealed_note(&note.sealed)
                .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
            Some(
                i32::try_from(info.key_version)
                    .map_err(|_| bad("invalid_note", "key version out of range"))?,
            )
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
        if let Some(v) = note_version
            && keys::current_version(conn, institution_id)? != Some(v)
        {
            return Err(ApiError::conflict(
                "stale_key_version",
                "notes are sealed under the institution's current key version",
            ));
        }
        for id in body.needs_added.iter().chain(&body.needs_removed) {
            refs::need::find(conn, *id).map_err(|e| match e {
                diesel::result::Error::NotFound => {
                    ApiError::unprocessable("unknown_need", "no such need")
                }
                other => other.into(),
            })?;
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
            let mut needs: Vec<i64> = patients::needs_of(conn, &[patient_id])?
                .into_iter()
                .map(|(_, n)| n)
                .filter(|n| !body.needs_removed.contains(n))
                .collect();
            for n in &body.needs_added {
                if !needs.contains(n) {
                    needs.push(*n);
                }
            }
            needs.sort_unstable();
            patients::set_needs(conn, patient_id, &needs)?;
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
