//! Patients (`patients`): pseudonym, passport envelope, blind indexes and the pseudonymized
//! record. Every query is limited to the caller's institution; another institution's patient
//! answers 404 like a missing one. Reads are audited like writes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::{Datelike, NaiveDate, NaiveDateTime};
use client_crypto::{BlindIndexField, Pseudonym, shape};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Permission, Principal};
use crate::db::DbConn;
use crate::db::models::patients::{self, Patient, PatientFilter, RecordFields};
use crate::db::models::{self, keys, refs};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::{
    AuditedRead, Lane, audited, audited_in, db, read_audited_as, read_one_audited_as,
};
use crate::state::AppState;

/// Patient statuses the record knows (codes of the `patient-statuses` book).
pub const STATUSES: [&str; 3] = ["registered", "discharged", "deceased"];

/// The pseudonymized record: nothing here identifies a person.
#[derive(Deserialize, Serialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RecordInput {
    /// `M`, `F` or `U` (unknown).
    pub sex: String,
    pub birth_year: i32,
    pub district_id: Option<i64>,
    /// A diagnosis (ICD-10) of the reference book.
    pub diagnosis_id: i64,
    pub care_form_id: Option<i64>,
    /// `registered`, `discharged` or `deceased`.
    pub status: String,
    pub registered_on: NaiveDate,
    /// Required when discharged.
    #[serde(default)]
    pub discharged_on: Option<NaiveDate>,
    /// Required when deceased.
    #[serde(default)]
    pub deceased_on: Option<NaiveDate>,
    /// Needs (reference book `needs`).
    #[serde(default)]
    pub needs: Vec<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePatientRequest {
    /// A random pseudonym made by the client (16 characters of Crockford base32).
    pub pseudonym: String,
    /// The passport envelope sealed under the institution's current key.
    pub passport: String,
    /// Blind-index tokens of the passport (at most one per field).
    pub blind_indexes: Vec<String>,
    pub record: RecordInput,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePatientRequest {
    /// The version the edit was based on; a newer stored version refuses the write (409).
    pub version: i32,
    /// A new passport envelope (with `blind_indexes`), or absent to keep the passport.
    #[serde(default)]
    pub passport: Option<String>,
    #[serde(default)]
    pub blind_indexes: Option<Vec<String>>,
    pub record: RecordInput,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct PatientView {
    pub id: i64,
    pub pseudonym: String,
    pub institution_id: i64,
    pub passport: String,
    pub passport_key_version: i32,
    pub record: RecordInput,
    pub version: i32,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
    pub updated_by: i64,
    pub updated_at: NaiveDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct PatientVersionView {
    pub version: i32,
    pub changed_by: i64,
    pub changed_at: NaiveDateTime,
    /// `created`, `updated`, `passport` (re-encrypted) or `observation`.
    pub change: String,
    /// The record as it was after this change.
    pub record: RecordInput,
    pub passport_key_version: i32,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PatientSearchRequest {
    /// Blind-index tokens: tokens of the same field are alternatives, different fields must
    /// all match.
    #[serde(default)]
    pub blind_indexes: Vec<String>,
    pub diagnosis_id: Option<i64>,
    /// An ICD-10 block such as `C15-C26`.
    pub icd10_block: Option<String>,
    pub status: Option<String>,
    pub care_form_id: Option<i64>,
    pub district_id: Option<i64>,
    pub sex: Option<String>,
    /// Age band, in whole years (from the birth year).
    pub age_from: Option<i32>,
    pub age_to: Option<i32>,
    /// The year of birth: with the surname's token, a search by surname and year of birth.
    pub birth_year: Option<i32>,
    pub registered_from: Option<NaiveDate>,
    pub registered_to: Option<NaiveDate>,
    pub need_id: Option<i64>,
    /// Passports sealed under a key version older than this (to resume a rotation).
    pub key_version_below: Option<i32>,
    /// Keyset paging: ids greater than this (the `next_after` of the previous page).
    pub after: Option<i64>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct PatientPage {
    pub items: Vec<PatientView>,
    /// How many patients match in all.
    pub total: i64,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<i64>,
}

/// The caller's institution, required for anything about patients.
pub fn institution_of(principal: &Principal) -> ApiResult<i64> {
    principal.institution_id.ok_or(ApiError::Forbidden {
        code: "no_institution",
        message: "only members of an institution work with its patients".into(),
    })
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::unprocessable(code, message)
}

/// Shape checks that need no database.
fn check_record_shape(r: &RecordInput, today: NaiveDate) -> ApiResult<()> {
    if !matches!(r.sex.as_str(), "M" | "F" | "U") {
        return Err(bad("invalid_sex", "sex is M, F or U"));
    }
    if r.birth_year < 1900 || r.birth_year > today.year() {
        return Err(bad(
            "invalid_birth_year",
            "the birth year must be between 1900 and this year",
        ));
    }
    if r.registered_on > today {
        return Err(bad(
            "invalid_dates",
            "the registration date cannot be in the future",
        ));
    }
    if r.registered_on.year() < r.birth_year {
        return Err(bad(
            "invalid_dates",
            "the registration date is before the birth year",
        ));
    }
    let after_registration =
        |d: Option<NaiveDate>| d.is_none_or(|d| d >= r.registered_on && d <= today);
    if !after_registration(r.discharged_on) || !after_registration(r.deceased_on) {
        return Err(bad(
            "invalid_dates",
            "discharge and death dates lie between registration and today",
        ));
    }
    match r.status.as_str() {
        "registered" if r.discharged_on.is_none() && r.deceased_on.is_none() => {}
        "registered" => {
            return Err(bad(
                "invalid_status",
                "a registered patient has no discharge or death date",
            ));
        }
        "discharged" if r.discharged_on.is_some() && r.deceased_on.is_none() => {}
        "discharged" => {
            return Err(bad(
                "invalid_status",
                "a discharged patient needs a discharge date",
            ));
        }
        "deceased" if r.deceased_on.is_some() => {}
        "deceased" => {
            return Err(bad(
                "invalid_status",
                "a deceased patient needs the date of death",
            ));
        }
        _ => {
            return Err(bad(
                "invalid_status",
                "status is registered, discharged or deceased",
            ));
        }
    }
    let unique: BTreeSet<_> = r.needs.iter().collect();
    if unique.len() != r.needs.len() || r.needs.len() > 100 {
        return Err(bad("invalid_needs", "needs are listed once each"));
    }
    Ok(())
}

/// The reference-book entries that a set of records names, loaded in one query per book.
struct Books {
    /// Diagnosis id → active.
    diagnoses: HashMap<i64, bool>,
    /// Care form id → active.
    care_forms: HashMap<i64, bool>,
    districts: HashSet<i64>,
    needs: HashSet<i64>,
    /// Status code → id.
    statuses: HashMap<String, i64>,
}

impl Books {
    fn load<'a>(
        conn: &mut DbConn,
        records: impl Iterator<Item = &'a RecordInput> + Clone,
    ) -> ApiResult<Self> {
        fn ids(set: impl Iterator<Item = i64>) -> Vec<i64> {
            set.collect::<BTreeSet<_>>().into_iter().collect()
        }
        let diagnoses = ids(records.clone().map(|r| r.diagnosis_id));
        let care_forms = ids(records.clone().filter_map(|r| r.care_form_id));
        let districts = ids(records.clone().filter_map(|r| r.district_id));
        let needs = ids(records.flat_map(|r| r.needs.iter().copied()));
        Ok(Self {
            diagnoses: refs::diagnosis::find_many(conn, &diagnoses)?
                .into_iter()
                .map(|d| (d.id, d.active))
                .collect(),
            care_forms: refs::care_form::find_many(conn, &care_forms)?
                .into_iter()
                .map(|f| (f.id, f.active))
                .collect(),
            districts: refs::district::find_many(conn, &districts)?
                .into_iter()
                .map(|d| d.id)
                .collect(),
            needs: refs::need::find_many(conn, &needs)?
                .into_iter()
                .map(|n| n.id)
                .collect(),
            statuses: refs::patient_status::list(conn, false)?
                .into_iter()
                .map(|s| (s.code, s.id))
                .collect(),
        })
    }

    /// Resolves a record's references. Entries that are inactive may be kept when they are
    /// already on the record (`previous`) but not newly chosen.
    fn resolve(&self, r: &RecordInput, previous: Option<&RecordFields>) -> ApiResult<RecordFields> {
        let kept = |f: fn(&RecordFields) -> Option<i64>, id: Option<i64>| {
            previous.is_some_and(|p| f(p) == id)
        };
        let unknown = |code| unprocessable(code, "no such reference-book entry");
        match self.diagnoses.get(&r.diagnosis_id) {
            None => return Err(unknown("unknown_diagnosis")),
            Some(false) if !kept(|p| Some(p.diagnosis_id), Some(r.diagnosis_id)) => {
                return Err(unprocessable(
                    "inactive_diagnosis",
                    "the diagnosis is no longer active",
                ));
            }
            Some(_) => {}
        }
        if let Some(id) = r.care_form_id {
            match self.care_forms.get(&id) {
                None => return Err(unknown("unknown_care_form")),
                Some(false) if !kept(|p| p.care_form_id, Some(id)) => {
                    return Err(unprocessable(
                        "inactive_care_form",
                        "the care form is no longer active",
                    ));
                }
                Some(_) => {}
            }
        }
        if r.district_id
            .is_some_and(|id| !self.districts.contains(&id))
        {
            return Err(unknown("unknown_district"));
        }
        if r.needs.iter().any(|id| !self.needs.contains(id)) {
            return Err(unknown("unknown_need"));
        }
        let status_id = *self.statuses.get(&r.status).ok_or_else(|| {
            unprocessable("unknown_status", "the status is not in the reference book")
        })?;
        Ok(RecordFields {
            sex: r.sex.clone(),
            birth_year: r.birth_year,
            district_id: r.district_id,
            diagnosis_id: r.diagnosis_id,
            care_form_id: r.care_form_id,
            status_id,
            registered_on: r.registered_on,
            discharged_on: r.discharged_on,
            deceased_on: r.deceased_on,
        })
    }
}

/// Resolves one record's references against the books (see [`Books::resolve`]).
fn resolve_record(
    conn: &mut DbConn,
    r: &RecordInput,
    previous: Option<&RecordFields>,
) -> ApiResult<RecordFields> {
    Books::load(conn, std::iter::once(r))?.resolve(r, previous)
}

/// Checks a passport envelope and its blind indexes against the institution's current key
/// version (see [`check_passport_under`]). Returns the key version.
fn check_passport(
    conn: &mut DbConn,
    institution_id: i64,
    passport: &str,
    tokens: &[String],
) -> ApiResult<i32> {
    let current = keys::current_version(conn, institution_id)?;
    check_passport_under(current, passport, tokens)
}

/// Checks a passport envelope and its blind indexes: well-formed, all under `current` (the
/// institution's current key version), at most one token per field. Returns the key version.
fn check_passport_under(current: Option<i32>, passport: &str, tokens: &[String]) -> ApiResult<i32> {
    let info =
        shape::check_passport_envelope(passport).map_err(|e| bad(e.code(), e.to_string()))?;
    let current = current
        .ok_or_else(|| unprocessable("no_institution_key", "the institution has no key yet"))?;
    let version = i32::try_from(info.key_version)
        .map_err(|_| bad("invalid_key_version", "key version out of range"))?;
    if version != current {
        return Err(ApiError::conflict(
            "stale_key_version",
            format!("passports are sealed under the current key version {current}"),
        ));
    }
    let mut fields = BTreeMap::new();
    for token in tokens {
        let index = checked_token(token)?;
        if index.key_version != info.key_version {
            return Err(bad(
                "invalid_blind_index",
                "blind indexes use the passport's key version",
            ));
        }
        if fields.insert(index.field, index.bits).is_some() {
            return Err(bad(
                "invalid_blind_index",
                format!("two tokens for the field {}", index.field),
            ));
        }
    }
    check_date_of_birth_length(&fields)?;
    Ok(version)
}

/// The date of birth's token is shorter than the others written with it, by the rule every
/// client follows ([`BlindIndexField::index_bits`]): the year of birth is in clear on the
/// record, and beside it a token of the full length would all but name the date. A client of
/// before the rule (a browser tab opened before the upgrade) is refused, not stored.
fn check_date_of_birth_length(
    fields: &BTreeMap<BlindIndexField, client_crypto::BlindIndexBits>,
) -> ApiResult<()> {
    let Some(&dob) = fields.get(&BlindIndexField::DateOfBirth) else {
        return Ok(());
    };
    let Some(longest) = fields
        .iter()
        .filter(|(field, _)| **field != BlindIndexField::DateOfBirth)
        .map(|(_, bits)| *bits)
        .max()
    else {
        return Ok(());
    };
    let most = BlindIndexField::DateOfBirth.index_bits(longest);
    if dob > most {
        return Err(bad(
            "blind_index_too_long",
            format!(
                "the date of birth's token has {} bits; beside {}-bit tokens it has at most {} \
                 (its year is in clear on the record): reload the client",
                dob.get(),
                longest.get(),
                most.get()
            ),
        ));
    }
    Ok(())
}

/// A blind-index token's shape, and not of a retired field.
///
/// The compound index of surname and year of birth (`surname_birth_year`) is retired: beside
/// the birth year, which every record holds in clear, its token told which patients born in
/// the same year share a surname, far more than a truncated index should (design: "each index
/// value matches several patients"). A search by surname and year of birth is the surname's
/// token and the `birth_year` filter.
fn checked_token(token: &str) -> ApiResult<shape::BlindIndexInfo> {
    let index = shape::check_blind_index(token).map_err(|e| bad(e.code(), e.to_string()))?;
    if index.field == BlindIndexField::SurnameBirthYear {
        return Err(bad(
            "retired_blind_index",
            "the surname and year of birth index is retired: send the surname's token, and \
             birth_year to search by year of birth",
        ));
    }
    Ok(index)
}

fn status_codes(conn: &mut DbConn) -> ApiResult<BTreeMap<i64, String>> {
    Ok(refs::patient_status::codes(conn)?.into_iter().collect())
}

/// The code of a patient's status among [`status_codes`].
fn status_code(statuses: &BTreeMap<i64, String>, p: &Patient) -> String {
    statuses.get(&p.status_id).cloned().unwrap_or_default()
}

fn record_of(p: &Patient, needs: Vec<i64>, status: String) -> RecordInput {
    RecordInput {
        sex: p.sex.clone(),
        birth_year: p.birth_year,
        district_id: p.district_id,
        diagnosis_id: p.diagnosis_id,
        care_form_id: p.care_form_id,
        status,
        registered_on: p.registered_on,
        discharged_on: p.discharged_on,
        deceased_on: p.deceased_on,
        needs,
    }
}

impl PatientView {
    /// The patient's row (with its needs) and the code of its status.
    fn of(mut p: Patient, status: String) -> Self {
        let needs = std::mem::take(&mut p.needs).into_vec();
        let record = record_of(&p, needs, status);
        PatientView {
            id: p.id,
            pseudonym: p.pseudonym,
            institution_id: p.institution_id,
            passport: p.passport,
            passport_key_version: p.passport_key_version,
            record,
            version: p.version,
            created_by: p.created_by,
            created_at: p.created_at,
            updated_by: p.updated_by,
            updated_at: p.updated_at,
        }
    }
}

fn views(conn: &mut DbConn, list: Vec<Patient>) -> ApiResult<Vec<PatientView>> {
    let statuses = status_codes(conn)?;
    Ok(list
        .into_iter()
        .map(|p| {
            let status = status_code(&statuses, &p);
            PatientView::of(p, status)
        })
        .collect())
}

pub fn view(conn: &mut DbConn, patient: Patient) -> ApiResult<PatientView> {
    views(conn, vec![patient])?.pop().ok_or(ApiError::NotFound)
}

/// Saves a version snapshot of the patient as it now stands.
pub fn snapshot(
    conn: &mut DbConn,
    id: i64,
    institution_id: i64,
    change: &str,
) -> ApiResult<Patient> {
    let patient = patients::find_in_institution(conn, id, institution_id)?;
    patients::insert_version(conn, &patient, change)?;
    Ok(patient)
}

fn with_etag(view: &PatientView, status: actix_web::http::StatusCode) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, format!("\"{}\"", view.version)))
        .json(view)
}

/// Registers a patient.
#[utoipa::path(
    tag = "patients",
    request_body = CreatePatientRequest,
    responses(
        (status = 201, body = PatientView),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "Pseudonym taken, or the passport is sealed under an old key", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[post("/api/v1/patients")]
pub async fn create_patient(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<CreatePatientRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::Patients)?;
    let institution_id = institution_of(&principal)?;
    let body = body.into_inner();
    let pseudonym = Pseudonym::parse(&body.pseudonym).map_err(|_| {
        bad(
            "invalid_pseudonym",
            "a pseudonym has 16 characters of Crockford base32",
        )
    })?;
    let today = crate::domain::latest_calendar_date(models::now());
    check_record_shape(&body.record, today)?;
    let entry = principal.audit("patients.create", "patient", None);
    let user_id = principal.user_id;
    let view = audited(&state, entry, move |conn, entry| {
        let id = insert_patients(
            conn,
            institution_id,
            user_id,
            &[(&pseudonym, &body)],
            |_, e| e,
        )?
        .pop()
        .ok_or(ApiError::NotFound)?;
        entry.object_id = Some(id.to_string());
        let patient = patients::find_in_institution(conn, id, institution_id)?;
        view(conn, patient)
    })
    .await?;
    Ok(with_etag(&view, actix_web::http::StatusCode::CREATED)
        .into_response_with_location(format!("/api/v1/patients/{}", view.id)))
}

/// Checks and stores new patients (inside the caller's transaction); returns their ids in
/// order. `at` names the item an error is about (the import prefixes `patients[i]`). The key
/// version and the reference books are read once for the whole batch, the pseudonyms checked
/// in one query, and the rows written with multi-row inserts.
fn insert_patients(
    conn: &mut DbConn,
    institution_id: i64,
    user_id: i64,
    items: &[(&Pseudonym, &CreatePatientRequest)],
    at: impl Fn(usize, ApiError) -> ApiError,
) -> ApiResult<Vec<i64>> {
    let current = keys::current_version(conn, institution_id)?;
    let books = Books::load(conn, items.iter().map(|(_, body)| &body.record))?;
    let now = models::now();
    let mut rows = Vec::with_capacity(items.len());
    for (i, (pseudonym, body)) in items.iter().enumerate() {
        let key_version = check_passport_under(current, &body.passport, &body.blind_indexes)
            .map_err(|e| at(i, e))?;
        let record = books.resolve(&body.record, None).map_err(|e| at(i, e))?;
        rows.push(patients::NewPatientRows {
            patient: patients::NewPatient {
                pseudonym: pseudonym.as_str().to_string(),
                institution_id,
                passport: body.passport.clone(),
                passport_key_version: key_version,
                record,
                version: 1,
                created_by: user_id,
                created_at: now,
                updated_by: user_id,
                updated_at: now,
            },
            needs: &body.record.needs,
            tokens: &body.blind_indexes,
        });
    }
    // The pseudonyms are not looked up first: the unique index refuses a taken one inside the
    // insert (a lookup beforehand was a twentieth of an import's writer at 700k patients). It is
    // the rows' one unique key that input can hit: tokens and needs are checked to be distinct.
    // The import then names the item ([`name_taken_pseudonym`]).
    patients::insert_many(conn, &rows).map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            ApiError::conflict("pseudonym_taken", "this pseudonym is in use; make another")
        } else {
            e.into()
        }
    })
}

/// Names the item of a refused batch whose pseudonym is in use (the refusal came from the
/// unique index, which does not say which row): `patients[i]: ` and the refusal. Looked up
/// after the batch's transaction is rolled back; the refusal is returned as it was if none is
/// found.
async fn name_taken_pseudonym(
    state: &web::Data<AppState>,
    pseudonyms: Arc<Vec<Pseudonym>>,
    refusal: ApiError,
) -> ApiError {
    let found = db(state, move |conn| {
        let strs: Vec<&str> = pseudonyms.iter().map(Pseudonym::as_str).collect();
        let taken: HashSet<String> = patients::taken_pseudonyms(conn, &strs)?
            .into_iter()
            .collect();
        Ok(strs.iter().position(|p| taken.contains(*p)))
    })
    .await;
    match found {
        Ok(Some(i)) => item_error(i, refusal),
        _ => refusal,
    }
}

/// The most patients one import request may carry. A batch is one transaction: on SQLite, the
/// index entries of more patients share more of the pages each commit writes, so an import of
/// 1M patients runs about 30 % faster in batches of 5000 than of 1000 (bench/README.md,
/// twentieth and twenty-first sessions). A batch of 5000 holds the write turn for a quarter of
/// a second or more, so it waits in the bulk lane (see `db::Writer`): the edits, and the audit
/// entries of the reads and searches, of every institution wait for at most the one batch
/// being written.
pub const IMPORT_BATCH_MAX: usize = 5000;

/// The largest import body. It fits a full batch of typical passports, not of the largest
/// (64 KiB each): a client cuts its batches by size as well (`palreg-client` at 24 MiB).
pub const IMPORT_BODY_LIMIT: usize = 32 * 1024 * 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// 1 to 5000 patients, each as for `POST /api/v1/patients`, in a body of at most 32 MiB.
    pub patients: Vec<CreatePatientRequest>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportResponse {
    /// The new ids, in the order of the request.
    pub ids: Vec<i64>,
}

/// Registers a batch of patients in one transaction: all are stored, or none (the error names
/// the first bad item as `patients[i]`). The native client's CSV import uses it.
#[utoipa::path(
    post,
    path = "/api/v1/patients/import",
    tag = "patients",
    request_body = ImportRequest,
    responses((status = 201, body = ImportResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn import_patients(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<ImportRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::Patients)?;
    let institution_id = institution_of(&principal)?;
    let batch = body.into_inner().patients;
    if batch.is_empty() || batch.len() > IMPORT_BATCH_MAX {
        return Err(bad(
            "invalid_batch",
            format!("a batch has 1 to {IMPORT_BATCH_MAX} patients"),
        ));
    }
    let today = crate::domain::latest_calendar_date(models::now());
    let mut pseudonyms = Vec::with_capacity(batch.len());
    let mut seen = BTreeSet::new();
    for (i, item) in batch.iter().enumerate() {
        let at = |e: ApiError| item_error(i, e);
        let p = Pseudonym::parse(&item.pseudonym).map_err(|_| {
            at(bad(
                "invalid_pseudonym",
                "a pseudonym has 16 characters of Crockford base32",
            ))
        })?;
        if !seen.insert(p.as_str().to_string()) {
            return Err(at(ApiError::conflict(
                "pseudonym_taken",
                "the pseudonym appears twice in the batch",
            )));
        }
        check_record_shape(&item.record, today).map_err(at)?;
        pseudonyms.push(p);
    }
    let mut entry = principal.audit("patients.import", "patient", None);
    entry.details = Some(serde_json::json!({"count": batch.len()}).to_string());
    let user_id = principal.user_id;
    // Shared with the naming of a taken pseudonym, which only a refused batch needs.
    let pseudonyms = Arc::new(pseudonyms);
    let names = pseudonyms.clone();
    // Thousands of patients in one transaction: the reads and edits of every institution go
    // first (see `db::Writer`).
    let ids = match audited_in(&state, Lane::Bulk, entry, move |conn, _| {
        let items: Vec<_> = pseudonyms.iter().zip(&batch).collect();
        insert_patients(conn, institution_id, user_id, &items, item_error)
    })
    .await
    {
        Err(refusal) if refusal.code() == "pseudonym_taken" => {
            return Err(name_taken_pseudonym(&state, names, refusal).await);
        }
        stored => stored?,
    };
    Ok(HttpResponse::Created().json(ImportResponse { ids }))
}

/// Prefixes an error's message with the batch item it is about.
fn item_error(index: usize, err: ApiError) -> ApiError {
    let code = err.code();
    let message = format!("patients[{index}]: {}", err.message());
    match err {
        ApiError::BadRequest { .. } => ApiError::bad_request(code, message),
        ApiError::Conflict { .. } => ApiError::conflict(code, message),
        ApiError::Unprocessable { .. } => ApiError::unprocessable(code, message),
        other => other,
    }
}

trait WithLocation {
    fn into_response_with_location(self, location: String) -> HttpResponse;
}

impl WithLocation for HttpResponse {
    fn into_response_with_location(mut self, location: String) -> HttpResponse {
        if let Ok(value) = header::HeaderValue::from_str(&location) {
            self.headers_mut().insert(header::LOCATION, value);
        }
        self
    }
}

/// One patient of the caller's institution (with its passport envelope, for the browser to
/// open). The read is audited.
#[utoipa::path(
    tag = "patients",
    params(("id" = i64, Path)),
    responses((status = 200, body = PatientView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/api/v1/patients/{id}")]
pub async fn get_patient(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let view = read_one_audited_as(
        &state,
        caller,
        Permission::Patients,
        institution_of,
        AuditedRead::new("patients.read", "patient", Some(id.to_string())),
        move |conn, institution_id, _| {
            let shown = patients::find_shown(conn, id, institution_id)?;
            let view = PatientView::of(shown.patient, shown.status);
            Ok((view, shown.auth_epoch))
        },
    )
    .await?;
    Ok(with_etag(&view, actix_web::http::StatusCode::OK))
}

/// Edits a patient. The body names the version it was based on (or send `If-Match`); a
/// stale write is refused with 409 and changes nothing.
#[utoipa::path(
    tag = "patients",
    params(("id" = i64, Path)),
    request_body = UpdatePatientRequest,
    responses((status = 200, body = PatientView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[put("/api/v1/patients/{id}")]
pub async fn update_patient(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    path: web::Path<i64>,
    body: web::Json<UpdatePatientRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::Patients)?;
    let institution_id = institution_of(&principal)?;
    let id = path.into_inner();
    let body = body.into_inner();
    if let Some(if_match) = req.headers().get(header::IF_MATCH) {
        let expected = format!("\"{}\"", body.version);
        if if_match.to_str().ok() != Some(expected.as_str()) {
            return Err(bad("version_mismatch", "If-Match and version disagree"));
        }
    }
    if body.passport.is_some() != body.blind_indexes.is_some() {
        return Err(bad(
            "invalid_body",
            "a new passport comes with its blind indexes",
        ));
    }
    check_record_shape(
        &body.record,
        crate::domain::latest_calendar_date(models::now()),
    )?;
    let entry = principal.audit("patients.update", "patient", Some(id.to_string()));
    let view = audited(&state, entry, move |conn, entry| {
        let stored = patients::find_in_institution(conn, id, institution_id)?;
        let previous = RecordFields {
            sex: stored.sex.clone(),
            birth_year: stored.birth_year,
            district_id: stored.district_id,
            diagnosis_id: stored.diagnosis_id,
            care_form_id: stored.care_form_id,
            status_id: stored.status_id,
            registered_on: stored.registered_on,
            discharged_on: stored.discharged_on,
            deceased_on: stored.deceased_on,
        };
        let record = resolve_record(conn, &body.record, Some(&previous))?;
        let passport = match (&body.passport, &body.blind_indexes) {
            (Some(p), Some(tokens)) => Some((p.as_str(), check_passport(conn, institution_id, p, tokens)?)),
            _ => None,
        };
        let now = models::now();
        let written = patients::update_if_version(
            conn,
            id,
            institution_id,
            body.version,
            &record,
            passport,
            principal.user_id,
            now,
        )?;
        if !written {
            return Err(ApiError::conflict(
                "stale_version",
                format!(
                    "the patient was changed by someone else (now version {}); reload and edit again",
                    stored.version
                ),
            ));
        }
        patients::set_needs(conn, id, &patients::NeedIds::new(&body.record.needs))?;
        match &body.blind_indexes {
            Some(tokens) => {
                patients::set_blind_indexes(conn, id, institution_id, record.birth_year, tokens)?
            }
            // The tokens carry the year of birth: moved only when the record's moved.
            None if record.birth_year != previous.birth_year => {
                patients::align_token_birth_year(conn, id, record.birth_year)?
            }
            None => {}
        }
        let change = match (&body.passport, record == previous) {
            (Some(_), true) => "passport",
            _ => "updated",
        };
        entry.details = Some(serde_json::json!({"change": change}).to_string());
        let patient = snapshot(conn, id, institution_id, change)?;
        view(conn, patient)
    })
    .await?;
    Ok(with_etag(&view, actix_web::http::StatusCode::OK))
}

/// Every version of the patient's record, newest first: who changed it, when, and what.
#[utoipa::path(
    tag = "patients",
    params(("id" = i64, Path)),
    responses((status = 200, body = [PatientVersionView]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/api/v1/patients/{id}/history")]
pub async fn patient_history(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> ApiResult<web::Json<Vec<PatientVersionView>>> {
    let id = path.into_inner();
    let list = read_audited_as(
        &state,
        caller,
        Permission::Patients,
        institution_of,
        AuditedRead::new("patients.history", "patient", Some(id.to_string())),
        move |conn, institution_id, _| {
            patients::find_in_institution(conn, id, institution_id)?;
            let statuses = status_codes(conn)?;
            let mut out = Vec::new();
            for v in patients::history(conn, id)? {
                #[derive(Deserialize)]
                struct Snapshot {
                    record: Patient,
                    needs: Vec<i64>,
                }
                let snap: Snapshot =
                    serde_json::from_str(&v.snapshot).map_err(ApiError::internal)?;
                out.push(PatientVersionView {
                    version: v.version,
                    changed_by: v.changed_by,
                    changed_at: v.changed_at,
                    change: v.change,
                    record: record_of(
                        &snap.record,
                        snap.needs,
                        status_code(&statuses, &snap.record),
                    ),
                    passport_key_version: snap.record.passport_key_version,
                });
            }
            Ok(out)
        },
    )
    .await?;
    Ok(web::Json(list))
}

/// Searches the institution's patients by blind index and by the record's fields, with keyset
/// paging and the total count. The browser opens the passports and drops the blind index's
/// false positives.
#[utoipa::path(
    tag = "patients",
    request_body = PatientSearchRequest,
    responses((status = 200, body = PatientPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[post("/api/v1/patients/search")]
pub async fn search_patients(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<PatientSearchRequest>,
) -> ApiResult<web::Json<PatientPage>> {
    let body = body.into_inner();
    // The body is checked once the caller is known (401 and 403 come first, as elsewhere).
    let scope =
        move |principal: &Principal| -> ApiResult<(i64, PatientSearchRequest, PatientFilter)> {
            let institution_id = institution_of(principal)?;
            let filter = search_filter(&body)?;
            Ok((institution_id, body, filter))
        };
    let page = read_audited_as(
        &state,
        caller,
        Permission::Patients,
        scope,
        AuditedRead::new("patients.search", "patient", None),
        move |conn, (institution_id, body, mut filter), audit_entry| {
            if let Some(code) = &body.status {
                let s = refs::patient_status::find_by_code(conn, code)?.ok_or_else(|| {
                    bad(
                        "invalid_status",
                        "status is registered, discharged or deceased",
                    )
                })?;
                filter.status_id = Some(s.id);
            }
            let limit = body.limit.unwrap_or(DEFAULT_PAGE);
            let (items, total) =
                patients::search(conn, institution_id, &filter, body.after, limit)?;
            let next_after = (items.len() as i64 == limit)
                .then(|| items.last().map(|p| p.id))
                .flatten();
            audit_entry.details = Some(
                serde_json::json!({
                    "blind_index_fields": filter.token_groups.len(),
                    "returned": items.len(),
                    "total": total,
                })
                .to_string(),
            );
            Ok(PatientPage {
                items: views(conn, items)?,
                total,
                next_after,
            })
        },
    )
    .await?;
    Ok(web::Json(page))
}

/// A search page's default size.
const DEFAULT_PAGE: i64 = 50;

/// The server-side filter of a search request, or 400 when the request is malformed.
fn search_filter(body: &PatientSearchRequest) -> ApiResult<PatientFilter> {
    let limit = body.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=500).contains(&limit) {
        return Err(bad("invalid_limit", "limit is between 1 and 500"));
    }
    if body.blind_indexes.len() > 64 {
        return Err(bad("invalid_blind_index", "at most 64 tokens"));
    }
    let mut groups: BTreeMap<BlindIndexField, Vec<String>> = BTreeMap::new();
    for token in &body.blind_indexes {
        let index = checked_token(token)?;
        groups.entry(index.field).or_default().push(token.clone());
    }
    if let Some(sex) = &body.sex
        && !matches!(sex.as_str(), "M" | "F" | "U")
    {
        return Err(bad("invalid_sex", "sex is M, F or U"));
    }
    if let Some(status) = &body.status {
        crate::domain::check_filter_text("status", status)?;
    }
    if let Some(block) = &body.icd10_block {
        crate::domain::check_filter_text("icd10_block", block)?;
    }
    for age in [body.age_from, body.age_to].into_iter().flatten() {
        if !(0..=150).contains(&age) {
            return Err(bad("invalid_age", "an age is between 0 and 150"));
        }
    }
    crate::domain::check_dates(&[
        ("registered_from", body.registered_from),
        ("registered_to", body.registered_to),
    ])?;
    let this_year = models::now().date().year();
    if let Some(year) = body.birth_year
        && !(1900..=this_year).contains(&year)
    {
        return Err(bad(
            "invalid_birth_year",
            "the birth year must be between 1900 and this year",
        ));
    }
    // The age band and the year of birth both bound the birth year: both must hold.
    let birth_year_from = [body.age_to.map(|a| this_year - a), body.birth_year]
        .into_iter()
        .flatten()
        .max();
    let birth_year_to = [body.age_from.map(|a| this_year - a), body.birth_year]
        .into_iter()
        .flatten()
        .min();
    Ok(PatientFilter {
        token_groups: groups.into_values().collect(),
        diagnosis_id: body.diagnosis_id,
        icd10_block: body.icd10_block.clone(),
        status_id: None,
        care_form_id: body.care_form_id,
        district_id: body.district_id,
        sex: body.sex.clone(),
        birth_year_from,
        birth_year_to,
        registered_from: body.registered_from,
        registered_to: body.registered_to,
        key_version_below: body.key_version_below,
        need_id: body.need_id,
    })
}
