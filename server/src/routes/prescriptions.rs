//! Prescriptions (`medical_records`): written by a clinician for a registered patient of its
//! institution, numbered per institution and year, edited with optimistic concurrency,
//! cancelled (never deleted), every version kept.

use actix_web::http::header;
use actix_web::{HttpResponse, get, post, put, web};
use chrono::{Datelike, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Permission, Principal};
use crate::db::DbConn;
use crate::db::models::prescriptions::{
    self, Prescription, PrescriptionFields, PrescriptionFilter,
};
use crate::db::models::{self, patients, refs};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::patients::institution_of;
use crate::routes::{AuditedRead, audited, read_audited_as};
use crate::state::AppState;

/// Routes of administration a prescription may name.
pub const ROUTES: [&str; 11] = [
    "oral",
    "sublingual",
    "buccal",
    "transdermal",
    "subcutaneous",
    "intravenous",
    "intramuscular",
    "rectal",
    "intranasal",
    "inhalation",
    "other",
];

#[derive(Deserialize, Serialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct PrescriptionInput {
    pub prescribed_on: NaiveDate,
    /// An active medicament of the reference book.
    pub medicament_id: i64,
    /// A single dose, e.g. 10.
    pub dose: f64,
    /// The dose's unit, e.g. `mg`.
    pub dose_unit: String,
    /// `oral`, `sublingual`, `buccal`, `transdermal`, `subcutaneous`, `intravenous`,
    /// `intramuscular`, `rectal`, `intranasal`, `inhalation` or `other`.
    pub route: String,
    /// e.g. `every 4 hours`.
    pub frequency: String,
    /// How much is dispensed, in the medicament's unit.
    pub quantity: f64,
    pub start_on: NaiveDate,
    #[serde(default)]
    pub end_on: Option<NaiveDate>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrescriptionRequest {
    pub patient_id: i64,
    #[serde(flatten)]
    pub fields: PrescriptionInput,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePrescriptionRequest {
    /// The version the edit was based on.
    pub version: i32,
    #[serde(flatten)]
    pub fields: PrescriptionInput,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChangeRequest {
    pub version: i32,
    /// Why it is cancelled (required to cancel).
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PrescriptionView {
    pub id: i64,
    pub number: String,
    pub institution_id: i64,
    pub patient_id: i64,
    pub prescribed_on: NaiveDate,
    pub medicament_id: i64,
    pub dose: f64,
    pub dose_unit: String,
    pub route: String,
    pub frequency: String,
    pub quantity: f64,
    pub start_on: NaiveDate,
    pub end_on: Option<NaiveDate>,
    pub prescriber_id: i64,
    /// `active`, `completed` or `cancelled`.
    pub status: String,
    pub cancel_reason: Option<String>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_by: i64,
    pub updated_at: NaiveDateTime,
}

impl From<Prescription> for PrescriptionView {
    fn from(p: Prescription) -> Self {
        Self {
            id: p.id,
            number: p.number,
            institution_id: p.institution_id,
            patient_id: p.patient_id,
            prescribed_on: p.prescribed_on,
            medicament_id: p.medicament_id,
            dose: p.dose,
            dose_unit: p.dose_unit,
            route: p.route,
            frequency: p.frequency,
            quantity: p.quantity,
            start_on: p.start_on,
            end_on: p.end_on,
            prescriber_id: p.prescriber_id,
            status: p.status,
            cancel_reason: p.cancel_reason,
            version: p.version,
            created_at: p.created_at,
            updated_by: p.updated_by,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PrescriptionVersionView {
    pub version: i32,
    pub changed_by: i64,
    pub changed_at: NaiveDateTime,
    /// `created`, `updated`, `cancelled` or `completed`.
    pub change: String,
    pub prescription: PrescriptionView,
}

#[derive(Deserialize, ToSchema, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct PrescriptionSearchRequest {
    pub medicament_id: Option<i64>,
    /// Only controlled substances (true) or only others (false).
    pub controlled: Option<bool>,
    /// Prescribed on or after.
    pub from: Option<NaiveDate>,
    /// Prescribed on or before.
    pub to: Option<NaiveDate>,
    pub prescriber_id: Option<i64>,
    pub status: Option<String>,
    pub patient_id: Option<i64>,
    pub after: Option<i64>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct PrescriptionPage {
    pub items: Vec<PrescriptionView>,
    pub total: i64,
    pub next_after: Option<i64>,
}

fn bad(code: &'static str, message: &str) -> ApiError {
    ApiError::bad_request(code, message)
}

fn text(field: &'static str, value: &str, max: usize) -> ApiResult<String> {
    let v = value.split_whitespace().collect::<Vec<_>>().join(" ");
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("`{field}` needs 1 to {max} characters"),
        ));
    }
    Ok(v)
}

/// Parses the prescriber's input: positive finite amounts, known route, ordered dates.
fn parse_fields(input: &PrescriptionInput, latest: NaiveDate) -> ApiResult<PrescriptionFields> {
    let amount_ok = |x: f64| x.is_finite() && x > 0.0 && x <= 1_000_000.0;
    if !amount_ok(input.dose) {
        return Err(bad("invalid_dose", "the dose is a positive number"));
    }
    if !amount_ok(input.quantity) {
        return Err(bad("invalid_quantity", "the quantity is a positive number"));
    }
    if !ROUTES.contains(&input.route.as_str()) {
        return Err(bad("invalid_route", "unknown route of administration"));
    }
    crate::domain::check_date("prescribed_on", input.prescribed_on)?;
    if input.prescribed_on > latest {
        return Err(bad(
            "invalid_dates",
            "a prescription cannot be dated in the future",
        ));
    }
    if input.start_on < input.prescribed_on {
        return Err(bad(
            "invalid_dates",
            "the course starts on or after the prescription date",
        ));
    }
    if input.end_on.is_some_and(|end| end < input.start_on) {
        return Err(bad(
            "invalid_dates",
            "the course ends on or after its start",
        ));
    }
    Ok(PrescriptionFields {
        prescribed_on: input.prescribed_on,
        medicament_id: input.medicament_id,
        dose: input.dose,
        dose_unit: text("dose_unit", &input.dose_unit, 32)?,
        route: input.route.clone(),
        frequency: text("frequency", &input.frequency, 100)?,
        quantity: input.quantity,
        start_on: input.start_on,
        end_on: input.end_on,
    })
}

/// The medicament must exist and be active (unless it is the one already prescribed).
fn check_medicament(conn: &mut DbConn, id: i64, previous: Option<i64>) -> ApiResult<()> {
    let med = refs::medicament::find(conn, id).map_err(|e| match e {
        diesel::result::Error::NotFound => {
            ApiError::unprocessable("unknown_medicament", "no such medicament")
        }
        other => other.into(),
    })?;
    if !med.active && previous != Some(id) {
        return Err(ApiError::unprocessable(
            "inactive_medicament",
            "the medicament is no longer in use",
        ));
    }
    Ok(())
}

fn with_etag(view: PrescriptionView, status: actix_web::http::StatusCode) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, format!("\"{}\"", view.version)))
        .json(view)
}

fn stale(current: i32) -> ApiError {
    ApiError::conflict(
        "stale_version",
        format!("the prescription was changed by someone else (now version {current}); reload"),
    )
}

/// Writes a prescription for a registered patient of the caller's institution; the caller is
/// the prescriber and the server assigns the number.
#[utoipa::path(
    tag = "prescriptions",
    request_body = CreatePrescriptionRequest,
    responses((status = 201, body = PrescriptionView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[post("/api/v1/prescriptions")]
pub async fn create_prescription(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<CreatePrescriptionRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::MedicalRecords)?;
    let institution_id = institution_of(&principal)?;
    let body = body.into_inner();
    let fields = parse_fields(
        &body.fields,
        crate::domain::latest_calendar_date(models::now()),
    )?;
    let entry = principal.audit("prescriptions.create", "prescription", None);
    let view = audited(&state, entry, move |conn, entry| {
        let patient = match patients::find_in_institution(conn, body.patient_id, institution_id) {
            Ok(p) => p,
            Err(diesel::result::Error::NotFound) => {
                return Err(ApiError::unprocessable(
                    "unknown_patient",
                    "no such patient in your institution",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let registered = refs::patient_status::find_by_code(conn, "registered")?.map(|s| s.id);
        if Some(patient.status_id) != registered {
            return Err(ApiError::unprocessable(
                "patient_not_registered",
                "prescriptions are written for patients on the register",
            ));
        }
        check_medicament(conn, fields.medicament_id, None)?;
        let now = models::now();
        let number = prescriptions::next_number(conn, institution_id, fields.prescribed_on.year())?;
        let id = prescriptions::insert(
            conn,
            &prescriptions::NewPrescription {
                number: &number,
                institution_id,
                patient_id: patient.id,
                fields,
                prescriber_id: principal.user_id,
                status: "active",
                version: 1,
                created_at: now,
                updated_by: principal.user_id,
                updated_at: now,
            },
        )?;
        entry.object_id = Some(id.to_string());
        let p = prescriptions::find_in_institution(conn, id, institution_id)?;
        prescriptions::insert_version(conn, &p, "created")?;
        Ok(PrescriptionView::from(p))
    })
    .await?;
    Ok(with_etag(view, actix_web::http::StatusCode::CREATED))
}

/// One prescription of the caller's institution.
#[utoipa::path(
    tag = "prescriptions",
    params(("id" = i64, Path)),
    responses((status = 200, body = PrescriptionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/api/v1/prescriptions/{id}")]
pub async fn get_prescription(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let view = read_audited_as(
        &state,
        caller,
        Permission::MedicalRecords,
        institution_of,
        AuditedRead::new("prescriptions.read", "prescription", Some(id.to_string())),
        move |conn, institution_id, _| {
            Ok(PrescriptionView::from(prescriptions::find_in_institution(
                conn,
                id,
                institution_id,
            )?))
        },
    )
    .await?;
    Ok(with_etag(view, actix_web::http::StatusCode::OK))
}

/// Edits an active prescription (optimistic concurrency: a stale version is refused with 409).
#[utoipa::path(
    tag = "prescriptions",
    params(("id" = i64, Path)),
    request_body = UpdatePrescriptionRequest,
    responses((status = 200, body = PrescriptionView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[put("/api/v1/prescriptions/{id}")]
pub async fn update_prescription(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
    body: web::Json<UpdatePrescriptionRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::MedicalRecords)?;
    let institution_id = institution_of(&principal)?;
    let id = path.into_inner();
    let body = body.into_inner();
    let fields = parse_fields(
        &body.fields,
        crate::domain::latest_calendar_date(models::now()),
    )?;
    let entry = principal.audit("prescriptions.update", "prescription", Some(id.to_string()));
    let view = audited(&state, entry, move |conn, _| {
        let stored = prescriptions::find_in_institution(conn, id, institution_id)?;
        if stored.status != "active" {
            return Err(ApiError::conflict(
                "not_active",
                "only an active prescription can be edited",
            ));
        }
        check_medicament(conn, fields.medicament_id, Some(stored.medicament_id))?;
        let now = models::now();
        if !prescriptions::update_if_version(
            conn,
            id,
            institution_id,
            body.version,
            &fields,
            principal.user_id,
            now,
        )? {
            return Err(stale(stored.version));
        }
        let p = prescriptions::find_in_institution(conn, id, institution_id)?;
        prescriptions::insert_version(conn, &p, "updated")?;
        Ok(PrescriptionView::from(p))
    })
    .await?;
    Ok(with_etag(view, actix_web::http::StatusCode::OK))
}

async fn change_status(
    state: web::Data<AppState>,
    principal: Principal,
    id: i64,
    body: StatusChangeRequest,
    status: &'static str,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::MedicalRecords)?;
    let institution_id = institution_of(&principal)?;
    let reason = match (status, &body.reason) {
        ("cancelled", Some(r)) => Some(text("reason", r, 500)?),
        ("cancelled", None) => {
            return Err(bad(
                "reason_required",
                "say why the prescription is cancelled",
            ));
        }
        _ => None,
    };
    let entry = principal.audit(
        &format!("prescriptions.{status}"),
        "prescription",
        Some(id.to_string()),
    );
    let view = audited(&state, entry, move |conn, _| {
        let stored = prescriptions::find_in_institution(conn, id, institution_id)?;
        if stored.status != "active" {
            return Err(ApiError::conflict(
                "not_active",
                "the prescription is no longer active",
            ));
        }
        let now = models::now();
        if !prescriptions::set_status_if_version(
            conn,
            id,
            institution_id,
            body.version,
            status,
            reason.as_deref(),
            principal.user_id,
            now,
        )? {
            return Err(stale(stored.version));
        }
        let p = prescriptions::find_in_institution(conn, id, institution_id)?;
        prescriptions::insert_version(conn, &p, status)?;
        Ok(PrescriptionView::from(p))
    })
    .await?;
    Ok(with_etag(view, actix_web::http::StatusCode::OK))
}

/// Cancels an active prescription, with a reason. It stays on record.
#[utoipa::path(
    tag = "prescriptions",
    params(("id" = i64, Path)),
    request_body = StatusChangeRequest,
    responses((status = 200, body = PrescriptionView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
#[post("/api/v1/prescriptions/{id}/cancel")]
pub async fn cancel_prescription(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
    body: web::Json<StatusChangeRequest>,
) -> ApiResult<HttpResponse> {
    change_status(
        state,
        principal,
        path.into_inner(),
        body.into_inner(),
        "cancelled",
    )
    .await
}

/// Marks an active prescription as completed.
#[utoipa::path(
    tag = "prescriptions",
    params(("id" = i64, Path)),
    request_body = StatusChangeRequest,
    responses((status = 200, body = PrescriptionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
#[post("/api/v1/prescriptions/{id}/complete")]
pub async fn complete_prescription(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<i64>,
    body: web::Json<StatusChangeRequest>,
) -> ApiResult<HttpResponse> {
    change_status(
        state,
        principal,
        path.into_inner(),
        body.into_inner(),
        "completed",
    )
    .await
}

/// Every version of a prescription, newest first.
#[utoipa::path(
    tag = "prescriptions",
    params(("id" = i64, Path)),
    responses((status = 200, body = [PrescriptionVersionView]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/api/v1/prescriptions/{id}/history")]
pub async fn prescription_history(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> ApiResult<web::Json<Vec<PrescriptionVersionView>>> {
    let id = path.into_inner();
    let list = read_audited_as(
        &state,
        caller,
        Permission::MedicalRecords,
        institution_of,
        AuditedRead::new(
            "prescriptions.history",
            "prescription",
            Some(id.to_string()),
        ),
        move |conn, institution_id, _| {
            prescriptions::find_in_institution(conn, id, institution_id)?;
            let mut out = Vec::new();
            for v in prescriptions::history(conn, id)? {
                let p: Prescription =
                    serde_json::from_str(&v.snapshot).map_err(ApiError::internal)?;
                out.push(PrescriptionVersionView {
                    version: v.version,
                    changed_by: v.changed_by,
                    changed_at: v.changed_at,
                    change: v.change,
                    prescription: p.into(),
                });
            }
            Ok(out)
        },
    )
    .await?;
    Ok(web::Json(list))
}

/// Parses a search into the database filter (shared with the prescription report).
pub fn filter_of(req: &PrescriptionSearchRequest) -> ApiResult<PrescriptionFilter> {
    if let Some(s) = &req.status
        && !matches!(s.as_str(), "active" | "completed" | "cancelled")
    {
        return Err(bad(
            "invalid_status",
            "status is active, completed or cancelled",
        ));
    }
    crate::domain::check_dates(&[("from", req.from), ("to", req.to)])?;
    if let (Some(from), Some(to)) = (req.from, req.to)
        && from > to
    {
        return Err(bad("invalid_dates", "the period ends before it starts"));
    }
    Ok(PrescriptionFilter {
        medicament_id: req.medicament_id,
        controlled: req.controlled,
        from: req.from,
        to: req.to,
        prescriber_id: req.prescriber_id,
        status: req.status.clone(),
        patient_id: req.patient_id,
    })
}

/// Searches the institution's prescriptions, with keyset paging and the total count.
#[utoipa::path(
    tag = "prescriptions",
    request_body = PrescriptionSearchRequest,
    responses((status = 200, body = PrescriptionPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[post("/api/v1/prescriptions/search")]
pub async fn search_prescriptions(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<PrescriptionSearchRequest>,
) -> ApiResult<web::Json<PrescriptionPage>> {
    let body = body.into_inner();
    // The body is checked once the caller is known (401 and 403 come first, as elsewhere).
    let scope = move |principal: &Principal| {
        let institution_id = institution_of(principal)?;
        let limit = body.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(bad("invalid_limit", "limit is between 1 and 500"));
        }
        Ok((institution_id, limit, body.after, filter_of(&body)?))
    };
    let page = read_audited_as(
        &state,
        caller,
        Permission::MedicalRecords,
        scope,
        AuditedRead::new("prescriptions.search", "prescription", None),
        move |conn, (institution_id, limit, after, filter), entry| {
            let (items, total) =
                prescriptions::search(conn, institution_id, &filter, after, limit)?;
            let next_after = (items.len() as i64 == limit)
                .then(|| items.last().map(|p| p.id))
                .flatten();
            entry.details =
                Some(serde_json::json!({"returned": items.len(), "total": total}).to_string());
            Ok(PrescriptionPage {
                items: items.into_iter().map(PrescriptionView::from).collect(),
                total,
                next_after,
            })
        },
    )
    .await?;
    Ok(web::Json(page))
}
