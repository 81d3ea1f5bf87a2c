//! Dated observations of a patient: pain score, ECOG status, changes of needs, and an optional
//! sealed free-text note (opaque to the server).

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::observations;

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = observations)]
pub struct Observation {
    pub id: i64,
    pub patient_id: i64,
    pub institution_id: i64,
    pub observed_on: NaiveDate,
    pub pain_score: Option<i32>,
    pub ecog: Option<i32>,
    /// JSON array of need ids.
    pub needs_added: String,
    /// JSON array of need ids.
    pub needs_removed: String,
    pub note_ref: Option<String>,
    pub note: Option<String>,
    pub note_key_version: Option<i32>,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = observations)]
pub struct NewObservation<'a> {
    pub patient_id: i64,
    pub institution_id: i64,
    pub observed_on: NaiveDate,
    pub pain_score: Option<i32>,
    pub ecog: Option<i32>,
    pub needs_added: &'a str,
    pub needs_removed: &'a str,
    pub note_ref: Option<&'a str>,
    pub note: Option<&'a str>,
    pub note_key_version: Option<i32>,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, new: &NewObservation<'_>) -> QueryResult<i64> {
    diesel::insert_into(observations::table)
        .values(new)
        .returning(observations::id)
        .get_result(conn)
}

pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Observation> {
    observations::table
        .find(id)
        .select(Observation::as_select())
        .first(conn)
}

/// A patient's observations, newest first.
pub fn of_patient(conn: &mut DbConn, patient_id: i64) -> QueryResult<Vec<Observation>> {
    observations::table
        .filter(observations::patient_id.eq(patient_id))
        .select(Observation::as_select())
        .order((observations::observed_on.desc(), observations::id.desc()))
        .load(conn)
}
