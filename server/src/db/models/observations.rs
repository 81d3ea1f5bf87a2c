//! Dated observations of a patient: pain score, ECOG status, changes of needs, and an optional
//! sealed free-text note (opaque to the server).

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{observations, patients};

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

/// One of the institution's observations, or `NotFound` (another institution's is not found
/// either).
pub fn find_in_institution(
    conn: &mut DbConn,
    id: i64,
    institution_id: i64,
) -> QueryResult<Observation> {
    observations::table
        .filter(observations::id.eq(id))
        .filter(observations::institution_id.eq(institution_id))
        .select(Observation::as_select())
        .first(conn)
}

/// The institution's sealed notes under a key version older than `current` (a rotation's work
/// left to do).
pub fn count_notes_below_version(
    conn: &mut DbConn,
    institution_id: i64,
    current: i32,
) -> QueryResult<i64> {
    observations::table
        .filter(observations::institution_id.eq(institution_id))
        .filter(observations::note_key_version.lt(current))
        .filter(observations::note.is_not_null())
        .count()
        .get_result(conn)
}

/// A page of those notes, by id after `after`, each with its patient's pseudonym (the note is
/// bound to it).
pub fn notes_below_version(
    conn: &mut DbConn,
    institution_id: i64,
    current: i32,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<(Observation, String)>> {
    observations::table
        .inner_join(patients::table)
        .filter(observations::institution_id.eq(institution_id))
        .filter(observations::note_key_version.lt(current))
        .filter(observations::note.is_not_null())
        .filter(observations::id.gt(after.unwrap_or(0)))
        .order(observations::id)
        .limit(limit)
        .select((Observation::as_select(), patients::pseudonym))
        .load(conn)
}

/// Replaces a note with the same note sealed under `to_version`, if it is still under
/// `from_version` (compare-and-set: 0 rows when a colleague re-sealed it first).
pub fn reseal_note(
    conn: &mut DbConn,
    id: i64,
    from_version: i32,
    sealed: &str,
    to_version: i32,
) -> QueryResult<usize> {
    diesel::update(
        observations::table
            .filter(observations::id.eq(id))
            .filter(observations::note_key_version.eq(from_version)),
    )
    .set((
        observations::note.eq(sealed),
        observations::note_key_version.eq(to_version),
    ))
    .execute(conn)
}
