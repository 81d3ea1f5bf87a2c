//! Reports, built only from non-identifying data and signed by the server (Ed25519):
//! the prescription report of one's own institution (`reporting`), and the summary report on
//! the status and needs of patients across institutions (`summary_reporting`; `reporting` for
//! one's own institution) as PDF, JSON and a FHIR R4 MeasureReport, with small cells
//! suppressed. Every report is audited and registered by its SHA-256, so a recipient can
//! download its detached signature and check it offline (`palreg verify-report`).

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use chrono::{Datelike, NaiveDate};
use palreg_reports as reports;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Permission, Principal};
use crate::db::DbConn;
use crate::db::models::reports::{self as aggregates, IssuedReport};
use crate::db::models::{self, refs};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::patients::institution_of;
use crate::routes::prescriptions::{PrescriptionSearchRequest, filter_of};
use crate::routes::{audited, db, report_db};
use crate::state::AppState;

#[derive(Deserialize, IntoParams, Serialize, Clone)]
pub struct PrescriptionReportQuery {
    /// First day of the period.
    pub from: NaiveDate,
    /// Last day of the period (inclusive).
    pub to: NaiveDate,
    pub medicament_id: Option<i64>,
    pub controlled: Option<bool>,
    pub prescriber_id: Option<i64>,
    /// `active`, `completed` or `cancelled`.
    pub status: Option<String>,
    pub patient_id: Option<i64>,
    /// `en` (default) or `ru`.
    pub lang: Option<String>,
}

#[derive(Deserialize, IntoParams, Serialize, Clone)]
pub struct SummaryQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Comma-separated institution ids; empty: every institution (or one's own with
    /// `reporting` only).
    pub institutions: Option<String>,
    pub lang: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PublicKeyView {
    /// Always `Ed25519`.
    pub algorithm: &'static str,
    /// The 32-byte public key, base64.
    pub public_key: String,
    /// The same key as a PEM SubjectPublicKeyInfo.
    pub pem: String,
}

fn locale(lang: Option<&str>) -> ApiResult<reports::Locale> {
    match lang.unwrap_or("en") {
        "en" => Ok(reports::Locale::En),
        "ru" => Ok(reports::Locale::Ru),
        _ => Err(ApiError::bad_request("invalid_lang", "lang is en or ru")),
    }
}

/// The most institutions one summary names.
const MAX_SUMMARY_INSTITUTIONS: usize = 1000;

fn check_period(from: NaiveDate, to: NaiveDate) -> ApiResult<()> {
    crate::domain::check_date("from", from)?;
    if from > to {
        return Err(ApiError::bad_request(
            "invalid_dates",
            "the period ends before it starts",
        ));
    }
    if (to - from).num_days() > 366 * 10 {
        return Err(ApiError::bad_request(
            "invalid_dates",
            "a period is at most ten years",
        ));
    }
    Ok(())
}

fn report_error(err: reports::ReportError) -> ApiError {
    match err {
        reports::ReportError::TooLarge { rows, limit } => ApiError::unprocessable(
            "report_too_large",
            format!("{rows} rows; a report has at most {limit}: narrow the period or filters"),
        ),
        reports::ReportError::InvalidInput(m) => ApiError::bad_request("invalid_report", m),
        other => ApiError::internal(anyhow::anyhow!("report rendering: {other}")),
    }
}

/// The Russian name in a Russian report when the book has one.
fn localized(locale: reports::Locale, name: String, name_ru: Option<String>) -> String {
    match (locale, name_ru) {
        (reports::Locale::Ru, Some(ru)) => ru,
        (_, _) => name,
    }
}

fn quantity(q: f64) -> reports::Quantity {
    // Quantities are validated positive and at most 10^6 on the way in.
    reports::Quantity::from_milli((q * 1000.0).round().max(0.0) as u64)
}

/// Signs the bytes, registers the report and audits its generation in one transaction, and
/// answers with the document and its signature.
async fn issue(
    state: &web::Data<AppState>,
    principal: &Principal,
    kind: &'static str,
    parameters: serde_json::Value,
    bytes: Vec<u8>,
    content_type: &'static str,
    filename: String,
) -> ApiResult<HttpResponse> {
    let signature = state.report_key.sign(&bytes);
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let mut entry = principal.audit(&format!("reports.{kind}"), "report", Some(sha256.clone()));
    entry.details = Some(parameters.to_string());
    let issued = IssuedReport {
        sha256: sha256.clone(),
        kind: kind.to_string(),
        signature: signature.to_base64(),
        parameters: parameters.to_string(),
        created_by: principal.user_id,
        created_at: models::now(),
    };
    audited(state, entry, move |conn, _| {
        aggregates::record_issued(conn, &issued)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header(("X-Palreg-Signature", signature.to_base64()))
        .insert_header(("X-Palreg-Report-Sha256", sha256))
        .body(bytes))
}

/// The prescriptions of the caller's institution for a period, with totals per medicament and
/// controlled substances apart, as a signed PDF.
#[utoipa::path(
    tag = "reports",
    params(PrescriptionReportQuery),
    responses(
        (status = 200, description = "The PDF; its Ed25519 signature in X-Palreg-Signature", content_type = "application/pdf"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
#[get("/api/v1/reports/prescriptions.pdf")]
pub async fn prescription_report(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<PrescriptionReportQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Permission::Reporting)?;
    let institution_id = institution_of(&principal)?;
    let q = query.into_inner();
    check_period(q.from, q.to)?;
    let locale = locale(q.lang.as_deref())?;
    let filter = filter_of(&PrescriptionSearchRequest {
        medicament_id: q.medicament_id,
        controlled: q.controlled,
        from: Some(q.from),
        to: Some(q.to),
        prescriber_id: q.prescriber_id,
        status: q.status.clone(),
        patient_id: q.patient_id,
        after: None,
        limit: None,
    })?;
    let limit = i64::try_from(reports::MAX_PRESCRIPTION_ROWS).unwrap_or(i64::MAX) + 1;
    let (institution, lines) = report_db(&state, move |conn| {
        let inst = refs::institution::find(conn, institution_id)?;
        Ok((
            inst.name,
            aggregates::prescription_lines(conn, institution_id, &filter, limit)?,
        ))
    })
    .await?;
    let rows: Vec<reports::PrescriptionRow> = lines
        .into_iter()
        .map(|l| reports::PrescriptionRow {
            number: l.number,
            date: l.prescribed_on,
            pseudonym: l.pseudonym,
            medicament: localized(locale, l.medicament, l.medicament_ru),
            controlled: l.controlled,
            dose: format!("{} {}", l.dose, l.dose_unit),
            route: l.route,
            frequency: l.frequency,
            quantity: quantity(l.quantity),
            unit: l.unit,
            prescriber: l.prescriber,
            status: l.status,
        })
        .collect();
    let meta = reports::ReportMeta {
        title: match locale {
            reports::Locale::En => "Prescriptions".into(),
            reports::Locale::Ru => "Назначения".into(),
        },
        institutions: vec![institution],
        period_from: q.from,
        period_to: q.to,
        generated_at: models::now(),
        author: principal.full_name.clone(),
        locale,
    };
    let pdf = web::block(move || reports::prescription_pdf(&meta, &rows))
        .await?
        .map_err(report_error)?;
    let parameters = serde_json::to_value(&q).map_err(ApiError::internal)?;
    let filename = format!("prescriptions-{}-{}.pdf", q.from, q.to);
    issue(
        &state,
        &principal,
        "prescriptions",
        parameters,
        pdf,
        "application/pdf",
        filename,
    )
    .await
}

/// Which institutions a caller may summarize: any with `summary_reporting`, else its own.
fn summary_scope(
    conn: &mut DbConn,
    principal: &Principal,
    requested: &[i64],
) -> ApiResult<Vec<(i64, String)>> {
    let all: Vec<(i64, String)> = refs::institution::list(conn, false)?
        .into_iter()
        .map(|i| (i.id, i.name))
        .collect();
    let wanted: Vec<i64> = if principal.has(Permission::SummaryReporting) {
        if requested.is_empty() {
            all.iter().map(|(id, _)| *id).collect()
        } else {
            requested.to_vec()
        }
    } else {
        let own = principal.institution_id.ok_or(ApiError::Forbidden {
            code: "forbidden",
            message: "summary reports across institutions need `summary_reporting`".into(),
        })?;
        if requested.iter().any(|i| *i != own) {
            return Err(ApiError::Forbidden {
                code: "forbidden",
                message: "with `reporting` a summary covers your own institution only".into(),
            });
        }
        vec![own]
    };
    wanted
        .into_iter()
        .map(|id| {
            all.iter().find(|(i, _)| *i == id).cloned().ok_or_else(|| {
                ApiError::unprocessable(
                    "unknown_institution",
                    format!("there is no institution {id}"),
                )
            })
        })
        .collect()
}

/// The raw counts of the summary, from aggregate queries only.
fn summary_input(
    conn: &mut DbConn,
    scope: &[(i64, String)],
    from: NaiveDate,
    to: NaiveDate,
    locale: reports::Locale,
) -> ApiResult<reports::SummaryInput> {
    let ids: Vec<i64> = scope.iter().map(|(id, _)| *id).collect();
    let mut counts: BTreeMap<i64, reports::InstitutionCounts> = scope
        .iter()
        .map(|(id, name)| {
            (
                *id,
                reports::InstitutionCounts {
                    institution: name.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    for (id, m) in aggregates::movement(conn, &ids, from, to)? {
        if let Some(c) = counts.get_mut(&id) {
            c.on_register_at_start = m.on_register_at_start.unsigned_abs();
            c.on_register_at_end = m.on_register_at_end.unsigned_abs();
            c.newly_registered = m.newly_registered.unsigned_abs();
            c.discharged = m.discharged.unsigned_abs();
            c.deceased = m.deceased.unsigned_abs();
        }
    }
    for (id, block, n) in aggregates::by_icd10_block(conn, &ids, from, to)? {
        if let Some(c) = counts.get_mut(&id) {
            *c.icd10_blocks.entry(block).or_default() += n.unsigned_abs();
        }
    }
    for (id, birth_year, sex, n) in aggregates::by_birth_year_sex(conn, &ids, from, to)? {
        if let Some(c) = counts.get_mut(&id) {
            // Age at the end of the period, from the birth year (the record keeps no more).
            let age = u32::try_from((to.year() - birth_year).max(0)).unwrap_or(0);
            let sex = match sex.as_str() {
                "M" => reports::Sex::Male,
                "F" => reports::Sex::Female,
                _ => reports::Sex::Unknown,
            };
            *c.age_sex
                .entry(reports::AgeBand::from_age(age))
                .or_default()
                .entry(sex)
                .or_default() += n.unsigned_abs();
        }
    }
    for (id, form, form_ru, n) in aggregates::by_care_form(conn, &ids, from, to)? {
        if let Some(c) = counts.get_mut(&id) {
            let form = form.map_or_else(|| "—".into(), |f| localized(locale, f, form_ru));
            *c.care_forms.entry(form).or_default() += n.unsigned_abs();
        }
    }
    let key = |name: &str, name_ru: Option<&str>| {
        localized(locale, name.to_string(), name_ru.map(str::to_string))
    };
    for (id, need, need_ru, n) in aggregates::by_need(conn, &ids, from, to, &key)? {
        if let Some(c) = counts.get_mut(&id) {
            *c.needs.entry(localized(locale, need, need_ru)).or_default() += n.unsigned_abs();
        }
    }
    for row in aggregates::medicament_needs(conn, &ids, from, to, &key)? {
        if let Some(c) = counts.get_mut(&row.institution_id) {
            c.medicaments.push(reports::MedicamentNeed {
                medicament: localized(locale, row.name, row.name_ru),
                unit: row.unit,
                controlled: row.controlled,
                quantity: quantity(row.quantity.unwrap_or(0.0)),
                patients: row.patients.unsigned_abs(),
            });
        }
    }
    Ok(reports::SummaryInput {
        institutions: counts.into_values().collect(),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SummaryFormat {
    Pdf,
    Json,
    Fhir,
}

async fn summary(
    state: web::Data<AppState>,
    principal: Principal,
    q: SummaryQuery,
    format: SummaryFormat,
) -> ApiResult<HttpResponse> {
    if !principal.has(Permission::SummaryReporting) {
        principal.require(Permission::Reporting)?;
    }
    check_period(q.from, q.to)?;
    let locale = locale(q.lang.as_deref())?;
    let requested: Vec<i64> = match q.institutions.as_deref().map(str::trim) {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse::<i64>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid_institutions",
                    "institutions is a comma-separated list of ids",
                )
            })?,
    };
    // Each institution once (in the order first named), and not more than a region has.
    let mut named = std::collections::HashSet::new();
    let requested: Vec<i64> = requested
        .into_iter()
        .filter(|id| named.insert(*id))
        .collect();
    if requested.len() > MAX_SUMMARY_INSTITUTIONS {
        return Err(ApiError::bad_request(
            "invalid_institutions",
            format!("a summary covers at most {MAX_SUMMARY_INSTITUTIONS} institutions"),
        ));
    }
    let k = state.settings.small_cell_k;
    let (from, to) = (q.from, q.to);
    let who = principal.clone();
    let (scope, input) = report_db(&state, move |conn| {
        let scope = summary_scope(conn, &who, &requested)?;
        let input = summary_input(conn, &scope, from, to, locale)?;
        Ok((scope, input))
    })
    .await?;
    let meta = reports::ReportMeta {
        title: match locale {
            reports::Locale::En => {
                "Summary report on the status and needs of palliative patients".into()
            }
            reports::Locale::Ru => {
                "Сводный отчёт о состоянии и потребностях паллиативных пациентов".into()
            }
        },
        institutions: scope.iter().map(|(_, n)| n.clone()).collect(),
        period_from: from,
        period_to: to,
        generated_at: models::now(),
        author: principal.full_name.clone(),
        locale,
    };
    let (bytes, content_type, ext) = web::block(
        move || -> ApiResult<(Vec<u8>, &'static str, &'static str)> {
            let summary = reports::summarize(&input, k);
            Ok(match format {
                SummaryFormat::Pdf => (
                    reports::summary_pdf(&meta, &summary).map_err(report_error)?,
                    "application/pdf",
                    "pdf",
                ),
                SummaryFormat::Json => {
                    let doc = serde_json::json!({"meta": meta, "summary": summary});
                    (
                        serde_json::to_vec_pretty(&doc).map_err(ApiError::internal)?,
                        "application/json",
                        "json",
                    )
                }
                SummaryFormat::Fhir => {
                    let doc = reports::to_fhir_measure_report(&summary, &meta);
                    (
                        serde_json::to_vec_pretty(&doc).map_err(ApiError::internal)?,
                        "application/fhir+json",
                        "fhir.json",
                    )
                }
            })
        },
    )
    .await??;
    let mut parameters = serde_json::to_value(&q).map_err(ApiError::internal)?;
    parameters["institution_ids"] =
        serde_json::json!(scope.iter().map(|(id, _)| id).collect::<Vec<_>>());
    parameters["k"] = serde_json::json!(k);
    let filename = format!("summary-{from}-{to}.{ext}");
    issue(
        &state,
        &principal,
        "summary",
        parameters,
        bytes,
        content_type,
        filename,
    )
    .await
}

/// The summary report as a signed PDF.
#[utoipa::path(
    tag = "reports",
    params(SummaryQuery),
    responses(
        (status = 200, description = "The PDF; its signature in X-Palreg-Signature", content_type = "application/pdf"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
#[get("/api/v1/reports/summary.pdf")]
pub async fn summary_pdf(
    state: web::Data<AppState>,
    principal: Principal,
    q: web::Query<SummaryQuery>,
) -> ApiResult<HttpResponse> {
    summary(state, principal, q.into_inner(), SummaryFormat::Pdf).await
}

/// The same summary as JSON, suppressed the same way.
#[utoipa::path(
    tag = "reports",
    params(SummaryQuery),
    responses((status = 200, description = "The summary as JSON", content_type = "application/json"), (status = 403, body = ErrorBody))
)]
#[get("/api/v1/reports/summary.json")]
pub async fn summary_json(
    state: web::Data<AppState>,
    principal: Principal,
    q: web::Query<SummaryQuery>,
) -> ApiResult<HttpResponse> {
    summary(state, principal, q.into_inner(), SummaryFormat::Json).await
}

/// The same summary as a FHIR R4 MeasureReport, suppressed the same way.
#[utoipa::path(
    tag = "reports",
    params(SummaryQuery),
    responses((status = 200, description = "A FHIR R4 MeasureReport", content_type = "application/fhir+json"), (status = 403, body = ErrorBody))
)]
#[get("/api/v1/reports/summary.fhir.json")]
pub async fn summary_fhir(
    state: web::Data<AppState>,
    principal: Principal,
    q: web::Query<SummaryQuery>,
) -> ApiResult<HttpResponse> {
    summary(state, principal, q.into_inner(), SummaryFormat::Fhir).await
}

/// The server's report-signing public key (public: recipients verify reports offline).
#[utoipa::path(tag = "reports", security(()), responses((status = 200, body = PublicKeyView)))]
#[get("/api/v1/reports/public-key")]
pub async fn public_key(state: web::Data<AppState>) -> web::Json<PublicKeyView> {
    let key = state.report_key.public_key();
    web::Json(PublicKeyView {
        algorithm: "Ed25519",
        public_key: key.to_base64(),
        pem: key.to_pem(),
    })
}

/// The detached signature (`.sig` file) of a report this server issued, by the SHA-256 of
/// the report's bytes.
#[utoipa::path(
    tag = "reports",
    params(("sha256" = String, Path)),
    responses((status = 200, description = "The .sig file", content_type = "text/plain"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/api/v1/reports/issued/{sha256}.sig")]
pub async fn issued_signature(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    if !principal.has(Permission::SummaryReporting) {
        principal.require(Permission::Reporting)?;
    }
    let sha256 = path.into_inner().to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "invalid_sha256",
            "a SHA-256 is 64 hex digits",
        ));
    }
    let found = db(&state, move |conn| {
        Ok(aggregates::find_issued(conn, &sha256)?)
    })
    .await?;
    let report = found.ok_or(ApiError::NotFound)?;
    let signature = reports::ReportSignature::parse(&report.signature)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored signature: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}.sig\"", &report.sha256[..16]),
        ))
        .body(signature.to_sig_file()))
}
