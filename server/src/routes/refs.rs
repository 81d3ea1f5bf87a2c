//! Reference books: read by any signed-in user; written with `administration`.
//! An entry in use cannot be deleted (409) but can be deactivated (`"active": false`).

use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Permission, Principal};
use crate::db::DbConn;
use crate::db::models::refs::{self, *};
use crate::domain::{Code, parse_name};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::{audited, db};
use crate::state::AppState;

/// What every book can do; implemented for each by `book_ops!`.
trait Book: 'static {
    const NAME: &'static str;
    type Row: Serialize + Send + 'static;
    type Input: DeserializeOwned + Send + 'static;
    fn list(conn: &mut DbConn, active_only: bool) -> diesel::QueryResult<Vec<Self::Row>>;
    fn find(conn: &mut DbConn, id: i64) -> diesel::QueryResult<Self::Row>;
    fn insert(conn: &mut DbConn, input: &Self::Input) -> diesel::QueryResult<i64>;
    fn update(conn: &mut DbConn, id: i64, input: &Self::Input) -> diesel::QueryResult<usize>;
    fn delete(conn: &mut DbConn, id: i64) -> diesel::QueryResult<usize>;
    /// Parses and normalizes an input in place.
    fn check(input: &mut Self::Input) -> ApiResult<()>;
    fn code(input: &Self::Input) -> &str;
}

macro_rules! book_ops {
    ($marker:ident, $name:literal, $module:ident, $row:ident, $input:ident, |$i:ident| $check:block) => {
        struct $marker;
        impl Book for $marker {
            const NAME: &'static str = $name;
            type Row = $row;
            type Input = $input;
            fn list(conn: &mut DbConn, active_only: bool) -> diesel::QueryResult<Vec<$row>> {
                refs::$module::list(conn, active_only)
            }
            fn find(conn: &mut DbConn, id: i64) -> diesel::QueryResult<$row> {
                refs::$module::find(conn, id)
            }
            fn insert(conn: &mut DbConn, input: &$input) -> diesel::QueryResult<i64> {
                refs::$module::insert(conn, input)
            }
            fn update(conn: &mut DbConn, id: i64, input: &$input) -> diesel::QueryResult<usize> {
                refs::$module::update(conn, id, input)
            }
            fn delete(conn: &mut DbConn, id: i64) -> diesel::QueryResult<usize> {
                refs::$module::delete(conn, id)
            }
            fn check($i: &mut $input) -> ApiResult<()> {
                $i.code = Code::parse(&$i.code)?.into_inner();
                $i.name = parse_name("name", &$i.name)?;
                $i.name_ru = $i
                    .name_ru
                    .as_deref()
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| parse_name("name_ru", s))
                    .transpose()?;
                $check
                Ok(())
            }
            fn code(input: &$input) -> &str {
                &input.code
            }
        }
    };
}

fn invalid(code: &'static str, message: &str) -> ApiError {
    ApiError::bad_request(code, message)
}

book_ops!(
    Districts,
    "districts",
    district,
    District,
    DistrictInput,
    |_i| {}
);
book_ops!(
    Institutions,
    "institutions",
    institution,
    Institution,
    InstitutionInput,
    |_i| {}
);
book_ops!(
    Diagnoses,
    "diagnoses",
    diagnosis,
    Diagnosis,
    DiagnosisInput,
    |i| {
        if !is_icd10(&i.code) {
            return Err(invalid(
                "invalid_icd10",
                "a diagnosis code is an ICD-10 code such as C50 or C50.9",
            ));
        }
        i.block = i.block.trim().to_string();
        if !is_icd10_block(&i.block) {
            return Err(invalid(
                "invalid_block",
                "an ICD-10 block looks like C15-C26",
            ));
        }
    }
);
book_ops!(
    Medicaments,
    "medicaments",
    medicament,
    Medicament,
    MedicamentInput,
    |i| {
        i.atc = i.atc.trim().to_uppercase();
        if !is_atc(&i.atc) {
            return Err(invalid(
                "invalid_atc",
                "an ATC code of a substance looks like N02AA01",
            ));
        }
        for (field, value) in [
            ("inn", &mut i.inn),
            ("dosage_form", &mut i.dosage_form),
            ("strength", &mut i.strength),
            ("unit", &mut i.unit),
        ] {
            *value = parse_name(field, value)?;
        }
    }
);
book_ops!(
    CareForms,
    "care-forms",
    care_form,
    CareForm,
    CareFormInput,
    |_i| {}
);
book_ops!(
    PatientStatuses,
    "patient-statuses",
    patient_status,
    PatientStatus,
    PatientStatusInput,
    |_i| {}
);
book_ops!(Needs, "needs", need, Need, NeedInput, |i| {
    if i.kind != "equipment" && i.kind != "service" {
        return Err(invalid(
            "invalid_kind",
            "a need's kind is `equipment` or `service`",
        ));
    }
});

/// `C50`, `C50.9`, `G12.2`: a letter, two digits, optionally a dot and one or two digits.
fn is_icd10(code: &str) -> bool {
    let b = code.as_bytes();
    let head =
        b.len() >= 3 && b[0].is_ascii_uppercase() && b[1].is_ascii_digit() && b[2].is_ascii_digit();
    head && match &b[3..] {
        [] => true,
        [b'.', rest @ ..] => (1..=2).contains(&rest.len()) && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn is_icd10_block(block: &str) -> bool {
    block
        .split_once('-')
        .is_some_and(|(a, b)| a.len() == 3 && b.len() == 3 && is_icd10(a) && is_icd10(b) && a <= b)
}

fn is_atc(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 7
        && b[0].is_ascii_uppercase()
        && b[1..3].iter().all(u8::is_ascii_digit)
        && b[3..5].iter().all(u8::is_ascii_uppercase)
        && b[5..7].iter().all(u8::is_ascii_digit)
}

#[derive(serde::Deserialize, IntoParams)]
pub struct RefListQuery {
    /// Only active entries (what a form offers); default false: all entries.
    #[serde(default)]
    pub active_only: bool,
}

/// Runs `$body` with `$B` bound to the book named in the path, or answers 404.
macro_rules! with_book {
    ($book:expr, $B:ident => $body:expr) => {
        match $book {
            "districts" => {
                type $B = Districts;
                $body
            }
            "institutions" => {
                type $B = Institutions;
                $body
            }
            "diagnoses" => {
                type $B = Diagnoses;
                $body
            }
            "medicaments" => {
                type $B = Medicaments;
                $body
            }
            "care-forms" => {
                type $B = CareForms;
                $body
            }
            "patient-statuses" => {
                type $B = PatientStatuses;
                $body
            }
            "needs" => {
                type $B = Needs;
                $body
            }
            _ => Err(ApiError::NotFound),
        }
    };
}

/// The entries of a book: `districts`, `institutions`, `diagnoses`, `medicaments`,
/// `care-forms`, `patient-statuses` or `needs`.
#[utoipa::path(
    tag = "refs",
    params(("book" = String, Path), RefListQuery),
    responses((status = 200, description = "The book's entries", body = [RefEntrySchema]), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/api/v1/refs/{book}")]
pub async fn list_entries(
    state: web::Data<AppState>,
    _principal: Principal,
    path: web::Path<String>,
    query: web::Query<RefListQuery>,
) -> ApiResult<HttpResponse> {
    let active_only = query.active_only;
    with_book!(path.as_str(), B => {
        let rows = db(&state, move |conn| Ok(B::list(conn, active_only)?)).await?;
        Ok(HttpResponse::Ok().json(rows))
    })
}

/// One entry.
#[utoipa::path(
    tag = "refs",
    params(("book" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = RefEntrySchema), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/api/v1/refs/{book}/{id}")]
pub async fn get_entry(
    state: web::Data<AppState>,
    _principal: Principal,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    let (book, id) = path.into_inner();
    with_book!(book.as_str(), B => {
        let row = db(&state, move |conn| Ok(B::find(conn, id)?)).await?;
        Ok(HttpResponse::Ok().json(row))
    })
}

fn parse_input<B: Book>(body: serde_json::Value) -> ApiResult<B::Input> {
    let mut input: B::Input = serde_json::from_value(body)
        .map_err(|e| ApiError::unprocessable("invalid_body", e.to_string()))?;
    B::check(&mut input)?;
    Ok(input)
}

fn write_error(err: diesel::result::Error) -> ApiError {
    if crate::db::is_unique_violation(&err) {
        ApiError::conflict("code_taken", "an entry with this code exists in the book")
    } else if crate::db::is_foreign_key_violation(&err) {
        ApiError::unprocessable(
            "unknown_reference",
            "the entry refers to an entry that does not exist",
        )
    } else {
        err.into()
    }
}

async fn create<B: Book>(
    state: web::Data<AppState>,
    principal: Principal,
    body: serde_json::Value,
) -> ApiResult<HttpResponse> {
    let input = parse_input::<B>(body)?;
    let mut entry = principal.audit("refs.create", B::NAME, None);
    entry.details = Some(serde_json::json!({"code": B::code(&input)}).to_string());
    let row = audited(&state, entry, move |conn, entry| {
        let id = B::insert(conn, &input).map_err(write_error)?;
        entry.object_id = Some(id.to_string());
        Ok(B::find(conn, id)?)
    })
    .await?;
    Ok(HttpResponse::Created().json(row))
}

async fn update<B: Book>(
    state: web::Data<AppState>,
    principal: Principal,
    id: i64,
    body: serde_json::Value,
) -> ApiResult<HttpResponse> {
    let input = parse_input::<B>(body)?;
    let mut entry = principal.audit("refs.update", B::NAME, Some(id.to_string()));
    entry.details = Some(serde_json::json!({"code": B::code(&input)}).to_string());
    let row = audited(&state, entry, move |conn, _| {
        B::find(conn, id)?;
        B::update(conn, id, &input).map_err(write_error)?;
        Ok(B::find(conn, id)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(row))
}

async fn remove<B: Book>(
    state: web::Data<AppState>,
    principal: Principal,
    id: i64,
) -> ApiResult<HttpResponse> {
    let entry = principal.audit("refs.delete", B::NAME, Some(id.to_string()));
    audited(&state, entry, move |conn, _| {
        B::find(conn, id)?;
        B::delete(conn, id).map_err(|e| {
            if crate::db::is_foreign_key_violation(&e) {
                ApiError::conflict("in_use", "the entry is in use; deactivate it instead")
            } else {
                e.into()
            }
        })?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds an entry (`administration`, region-wide administrators only).
///
/// The books are shared by every institution: an institution's administrator gets 403
/// `region_wide_only`.
#[utoipa::path(
    tag = "refs",
    params(("book" = String, Path)),
    request_body = RefEntrySchema,
    responses((status = 201, body = RefEntrySchema), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[post("/api/v1/refs/{book}")]
pub async fn create_entry(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    principal.require_region_wide(Permission::Administration)?;
    with_book!(path.as_str(), B => create::<B>(state, principal, body.into_inner()).await)
}

/// Replaces an entry (`administration`, region-wide); `"active": false` deactivates it.
#[utoipa::path(
    tag = "refs",
    params(("book" = String, Path), ("id" = i64, Path)),
    request_body = RefEntrySchema,
    responses((status = 200, body = RefEntrySchema), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[put("/api/v1/refs/{book}/{id}")]
pub async fn update_entry(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, i64)>,
    body: web::Json<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    principal.require_region_wide(Permission::Administration)?;
    let (book, id) = path.into_inner();
    with_book!(book.as_str(), B => update::<B>(state, principal, id, body.into_inner()).await)
}

/// Deletes an entry nothing refers to (`administration`, region-wide); 409 `in_use` otherwise.
#[utoipa::path(
    tag = "refs",
    params(("book" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
#[delete("/api/v1/refs/{book}/{id}")]
pub async fn delete_entry(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    principal.require_region_wide(Permission::Administration)?;
    let (book, id) = path.into_inner();
    with_book!(book.as_str(), B => remove::<B>(state, principal, id).await)
}

/// The shape of an entry of any book: the common fields, plus the book's own
/// (`district_id`; `block`; `inn`, `atc`, `dosage_form`, `strength`, `unit`, `controlled`;
/// `kind`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RefEntrySchema {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub name_ru: Option<String>,
    pub active: bool,
    pub district_id: Option<i64>,
    pub block: Option<String>,
    pub inn: Option<String>,
    pub atc: Option<String>,
    pub dosage_form: Option<String>,
    pub strength: Option<String>,
    pub unit: Option<String>,
    pub controlled: Option<bool>,
    pub kind: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_formats() {
        assert!(is_icd10("C50"));
        assert!(is_icd10("G12.2"));
        assert!(is_icd10("C50.91"));
        assert!(!is_icd10("C5"));
        assert!(!is_icd10("C50."));
        assert!(!is_icd10("c50"));
        assert!(is_icd10_block("C00-C14"));
        assert!(!is_icd10_block("C14-C00"));
        assert!(is_atc("N02AA01"));
        assert!(!is_atc("N02AA1"));
    }
}
