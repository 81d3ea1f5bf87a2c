//! Prescriptions: numbered per institution and year, versioned, cancelled rather than deleted.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::DbConn;
use crate::db::schema::{medicaments, prescription_versions, prescriptions};

type Db = <DbConn as Connection>::Backend;

#[derive(Queryable, Selectable, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[diesel(table_name = prescriptions)]
pub struct Prescription {
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
    pub status: String,
    pub cancel_reason: Option<String>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_by: i64,
    pub updated_at: NaiveDateTime,
}

/// What a prescriber sets.
#[derive(Insertable, AsChangeset, Debug, Clone, PartialEq)]
#[diesel(table_name = prescriptions, treat_none_as_null = true)]
pub struct PrescriptionFields {
    pub prescribed_on: NaiveDate,
    pub medicament_id: i64,
    pub dose: f64,
    pub dose_unit: String,
    pub route: String,
    pub frequency: String,
    pub quantity: f64,
    pub start_on: NaiveDate,
    pub end_on: Option<NaiveDate>,
}

#[derive(Insertable)]
#[diesel(table_name = prescriptions)]
pub struct NewPrescription<'a> {
    pub number: &'a str,
    pub institution_id: i64,
    pub patient_id: i64,
    #[diesel(embed)]
    pub fields: PrescriptionFields,
    pub prescriber_id: i64,
    pub status: &'a str,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_by: i64,
    pub updated_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, new: &NewPrescription<'_>) -> QueryResult<i64> {
    diesel::insert_into(prescriptions::table)
        .values(new)
        .returning(prescriptions::id)
        .get_result(conn)
}

/// The next number of an institution for a year: `YYYY-NNNNNN`. Called inside the audited
/// transaction, which serializes writers.
pub fn next_number(conn: &mut DbConn, institution_id: i64, year: i32) -> QueryResult<String> {
    let prefix = format!("{year}-");
    let mut numbers = prescriptions::table
        .filter(prescriptions::institution_id.eq(institution_id))
        .filter(prescriptions::number.like(format!("{prefix}%")))
        .into_boxed();
    if matches!(conn, DbConn::Sqlite(_)) {
        // SQLite's LIKE ignores case, so it cannot use the (institution, number) index for a
        // prefix and read every number of the institution. In the column's binary collation
        // the year's numbers sort from "YYYY-" up to, not including, "YYYY." ('.' follows
        // '-'): a range the index answers. (PostgreSQL's collation may not sort punctuation
        // by its code, so there the LIKE alone decides.)
        numbers = numbers
            .filter(prescriptions::number.ge(prefix.clone()))
            .filter(prescriptions::number.lt(format!("{year}.")));
    }
    let last: Option<String> = numbers
        .select(diesel::dsl::max(prescriptions::number))
        .get_result(conn)?;
    let next = last
        .and_then(|n| n[prefix.len()..].parse::<u64>().ok())
        .map_or(1, |n| n + 1);
    Ok(format!("{prefix}{next:06}"))
}

pub fn find_in_institution(
    conn: &mut DbConn,
    id: i64,
    institution_id: i64,
) -> QueryResult<Prescription> {
    prescriptions::table
        .filter(prescriptions::id.eq(id))
        .filter(prescriptions::institution_id.eq(institution_id))
        .select(Prescription::as_select())
        .first(conn)
}

/// Rewrites the prescriber's fields if the stored version is still `expected`; false when
/// stale.
#[allow(clippy::too_many_arguments)]
pub fn update_if_version(
    conn: &mut DbConn,
    id: i64,
    institution_id: i64,
    expected: i32,
    fields: &PrescriptionFields,
    by: i64,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(
        prescriptions::table
            .filter(prescriptions::id.eq(id))
            .filter(prescriptions::institution_id.eq(institution_id))
            .filter(prescriptions::version.eq(expected)),
    )
    .set((
        fields,
        prescriptions::version.eq(expected.saturating_add(1)),
        prescriptions::updated_by.eq(by),
        prescriptions::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Sets the status (cancelled with a reason, or completed) if the stored version is still
/// `expected`; false when stale.
#[allow(clippy::too_many_arguments)]
pub fn set_status_if_version(
    conn: &mut DbConn,
    id: i64,
    institution_id: i64,
    expected: i32,
    status: &str,
    reason: Option<&str>,
    by: i64,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(
        prescriptions::table
            .filter(prescriptions::id.eq(id))
            .filter(prescriptions::institution_id.eq(institution_id))
            .filter(prescriptions::version.eq(expected)),
    )
    .set((
        prescriptions::status.eq(status),
        prescriptions::cancel_reason.eq(reason),
        prescriptions::version.eq(expected.saturating_add(1)),
        prescriptions::updated_by.eq(by),
        prescriptions::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = prescription_versions)]
pub struct PrescriptionVersion {
    pub prescription_id: i64,
    pub version: i32,
    pub changed_by: i64,
    pub changed_at: NaiveDateTime,
    pub change: String,
    pub snapshot: String,
}

pub fn insert_version(conn: &mut DbConn, p: &Prescription, change: &str) -> QueryResult<usize> {
    diesel::insert_into(prescription_versions::table)
        .values((
            prescription_versions::prescription_id.eq(p.id),
            prescription_versions::version.eq(p.version),
            prescription_versions::changed_by.eq(p.updated_by),
            prescription_versions::changed_at.eq(p.updated_at),
            prescription_versions::change.eq(change),
            prescription_versions::snapshot.eq(serde_json::to_string(p).unwrap_or_default()),
        ))
        .execute(conn)
}

pub fn history(conn: &mut DbConn, id: i64) -> QueryResult<Vec<PrescriptionVersion>> {
    prescription_versions::table
        .filter(prescription_versions::prescription_id.eq(id))
        .select(PrescriptionVersion::as_select())
        .order(prescription_versions::version.desc())
        .load(conn)
}

#[derive(Debug, Default, Clone)]
pub struct PrescriptionFilter {
    pub medicament_id: Option<i64>,
    pub controlled: Option<bool>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub prescriber_id: Option<i64>,
    pub status: Option<String>,
    pub patient_id: Option<i64>,
}

fn filtered<'a>(
    institution_id: i64,
    f: &'a PrescriptionFilter,
) -> prescriptions::BoxedQuery<'a, Db> {
    let mut q = prescriptions::table
        .filter(prescriptions::institution_id.eq(institution_id))
        .into_boxed();
    if let Some(v) = f.medicament_id {
        q = q.filter(prescriptions::medicament_id.eq(v));
    }
    if let Some(v) = f.controlled {
        q = q.filter(
            prescriptions::medicament_id.eq_any(
                medicaments::table
                    .filter(medicaments::controlled.eq(v))
                    .select(medicaments::id),
            ),
        );
    }
    if let Some(v) = f.from {
        q = q.filter(prescriptions::prescribed_on.ge(v));
    }
    if let Some(v) = f.to {
        q = q.filter(prescriptions::prescribed_on.le(v));
    }
    if let Some(v) = f.prescriber_id {
        q = q.filter(prescriptions::prescriber_id.eq(v));
    }
    if let Some(v) = &f.status {
        q = q.filter(prescriptions::status.eq(v));
    }
    if let Some(v) = f.patient_id {
        q = q.filter(prescriptions::patient_id.eq(v));
    }
    q
}

/// One page in id order after `after`, and the total number of matches.
pub fn search(
    conn: &mut DbConn,
    institution_id: i64,
    filter: &PrescriptionFilter,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<(Vec<Prescription>, i64)> {
    let mut page = filtered(institution_id, filter);
    if let Some(after) = after {
        page = page.filter(prescriptions::id.gt(after));
    }
    let items = page
        .select(Prescription::as_select())
        .order(prescriptions::id.asc())
        .limit(limit)
        .load(conn)?;
    let total = filtered(institution_id, filter).count().get_result(conn)?;
    Ok((items, total))
}

/// Every match of the filter in date order, for reports.
pub fn all_matching(
    conn: &mut DbConn,
    institution_id: i64,
    filter: &PrescriptionFilter,
) -> QueryResult<Vec<Prescription>> {
    filtered(institution_id, filter)
        .select(Prescription::as_select())
        .order((prescriptions::prescribed_on.asc(), prescriptions::id.asc()))
        .load(conn)
}
