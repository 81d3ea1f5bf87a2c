//! Patients: a random pseudonym, the passport envelope (opaque), blind-index tokens (opaque)
//! and the pseudonymized record. Every query is limited to one institution.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::DbConn;
use crate::db::in_list::in_list;
use crate::db::schema::{
    auth_epoch, diagnoses, patient_blind_indexes, patient_needs, patient_statuses,
    patient_versions, patients,
};
use crate::db::unindexed::unindexed;

type Db = <DbConn as Connection>::Backend;

#[derive(Queryable, Selectable, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[diesel(table_name = patients)]
pub struct Patient {
    pub id: i64,
    pub pseudonym: String,
    pub institution_id: i64,
    /// Empty in a history snapshot, which does not keep it (see `snapshot_of`), and then left
    /// out of its JSON.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub passport: String,
    pub passport_key_version: i32,
    pub sex: String,
    pub birth_year: i32,
    pub district_id: Option<i64>,
    pub diagnosis_id: i64,
    pub care_form_id: Option<i64>,
    pub status_id: i64,
    pub registered_on: NaiveDate,
    pub discharged_on: Option<NaiveDate>,
    pub deceased_on: Option<NaiveDate>,
    pub version: i32,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
    pub updated_by: i64,
    pub updated_at: NaiveDateTime,
    /// Its needs. Not in its JSON: a history snapshot lists them beside the record (see
    /// `snapshot_of`), as it always has.
    #[serde(skip)]
    pub needs: NeedIds,
}

/// A patient's needs as its row keeps them (`patients.needs`): distinct ids, ascending, written
/// comma-separated. The row keeps a copy of its `patient_needs` rows so that reading a patient
/// by id is one b-tree search, not two, and one row instead of one per need (bench/README.md,
/// twenty-eighth session); `patient_needs` stays what searches and reports look needs up by.
/// [`insert_many`] and [`set_needs`] write both.
#[derive(Debug, Clone, Default, PartialEq, Eq, diesel::deserialize::FromSqlRow)]
pub struct NeedIds(Vec<i64>);

impl NeedIds {
    pub fn new(ids: &[i64]) -> Self {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Self(ids)
    }

    pub fn as_slice(&self) -> &[i64] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<i64> {
        self.0
    }

    /// The column's text: `3,7,12`, or empty.
    pub fn to_column(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(4 * self.0.len());
        for (i, id) in self.0.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(text, "{comma}{id}");
        }
        text
    }

    fn from_column(text: &str) -> Result<Self, std::num::ParseIntError> {
        if text.is_empty() {
            return Ok(Self::default());
        }
        text.split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl<B> diesel::deserialize::FromSql<diesel::sql_types::Text, B> for NeedIds
where
    B: diesel::backend::Backend,
    String: diesel::deserialize::FromSql<diesel::sql_types::Text, B>,
{
    fn from_sql(value: B::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        let text = String::from_sql(value)?;
        Ok(Self::from_column(&text)?)
    }
}

/// The record fields a clinician sets (everything but identity, passport and bookkeeping).
#[derive(Insertable, AsChangeset, Debug, Clone, PartialEq)]
#[diesel(
    table_name = patients,
    treat_none_as_null = true,
    treat_none_as_default_value = false
)]
pub struct RecordFields {
    pub sex: String,
    pub birth_year: i32,
    pub district_id: Option<i64>,
    pub diagnosis_id: i64,
    pub care_form_id: Option<i64>,
    pub status_id: i64,
    pub registered_on: NaiveDate,
    pub discharged_on: Option<NaiveDate>,
    pub deceased_on: Option<NaiveDate>,
}

/// Owns its values, so that a fixed number of them makes one cached statement, and binds a
/// `None` as NULL, so that SQLite gets one multi-row statement ([`crate::insert_in_chunks`]).
#[derive(Insertable, Clone)]
#[diesel(table_name = patients, treat_none_as_default_value = false)]
pub struct NewPatient {
    pub pseudonym: String,
    pub institution_id: i64,
    pub passport: String,
    pub passport_key_version: i32,
    #[diesel(embed)]
    pub record: RecordFields,
    pub version: i32,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
    pub updated_by: i64,
    pub updated_at: NaiveDateTime,
}

/// Rows per multi-row INSERT: an import batch's patients in one statement (19 columns: 19 000
/// bound parameters, under SQLite's 32 766 and PostgreSQL's 65 535).
const ROWS_PER_INSERT: usize = 1000;

/// Blind-index tokens per multi-row INSERT: a batch's tokens (five fields at most) in one
/// statement, 15 000 parameters. On SQLite a statement that writes many rows inside a
/// transaction copies each page it changes into a statement journal first, once per statement:
/// the tokens of one institution land on most pages of its part of the lookup index, so five
/// statements copied those pages five times (the journal was 12 % of the writer at 700k).
const TOKENS_PER_INSERT: usize = 5 * ROWS_PER_INSERT;

/// A new patient with the rows stored beside it.
pub struct NewPatientRows<'a> {
    pub patient: NewPatient,
    pub needs: &'a [i64],
    pub tokens: &'a [String],
}

#[derive(Insertable)]
#[diesel(table_name = patient_needs, treat_none_as_default_value = false)]
struct NeedRow {
    patient_id: i64,
    need_id: i64,
}

#[derive(Insertable)]
#[diesel(table_name = patient_blind_indexes, treat_none_as_default_value = false)]
struct TokenRow {
    patient_id: i64,
    institution_id: i64,
    token: String,
    /// The patient's year of birth, as its record (see [`align_token_birth_year`]).
    birth_year: i32,
}

#[derive(Insertable)]
#[diesel(table_name = patient_versions, treat_none_as_default_value = false)]
struct VersionRow {
    patient_id: i64,
    version: i32,
    changed_by: i64,
    changed_at: NaiveDateTime,
    change: &'static str,
    snapshot: String,
}

/// The snapshot kept with every version: the row as it stands, without its passport envelope,
/// and its needs.
///
/// The history shows who changed what and when; a version whose passport changed says so in its
/// `change`. A copy of each envelope would stay sealed under the key version of its day after
/// the institution rotates its key, openable with the key the rotation retired (and the copies
/// were a quarter of the database file).
fn snapshot_of(patient: &Patient) -> String {
    #[derive(Serialize)]
    struct Snapshot<'a> {
        record: &'a Patient,
        needs: &'a [i64],
    }
    let needs = patient.needs.as_slice();
    let write =
        |record: &Patient| serde_json::to_string(&Snapshot { record, needs }).unwrap_or_default();
    if patient.passport.is_empty() {
        write(patient)
    } else {
        // An empty passport is left out of the JSON (see `Patient::passport`).
        write(&Patient {
            passport: String::new(),
            ..patient.clone()
        })
    }
}

/// Which of these pseudonyms are in use already.
pub fn taken_pseudonyms(conn: &mut DbConn, pseudonyms: &[&str]) -> QueryResult<Vec<String>> {
    let mut taken = Vec::new();
    for chunk in pseudonyms.chunks(ROWS_PER_INSERT) {
        taken.extend(
            patients::table
                .filter(patients::pseudonym.eq_any(chunk))
                .select(patients::pseudonym)
                .load::<String>(conn)?,
        );
    }
    Ok(taken)
}

/// Stores new patients with their needs, blind indexes and first version (`created`) in a few
/// multi-row statements per 1000 patients, instead of a dozen statements per patient. Call it
/// inside a transaction; a pseudonym in use fails the insert with a unique violation. Returns
/// the ids in input order.
pub fn insert_many(conn: &mut DbConn, rows: &[NewPatientRows<'_>]) -> QueryResult<Vec<i64>> {
    // Each patient's needs once: the row's copy and the `patient_needs` rows are written from it.
    let needs: Vec<NeedIds> = rows.iter().map(|r| NeedIds::new(r.needs)).collect();
    let values: Vec<_> = rows
        .iter()
        .zip(&needs)
        .map(|(r, n)| (r.patient.clone(), patients::needs.eq(n.to_column())))
        .collect();
    // RETURNING's row order is not promised for multi-row inserts: map by pseudonym.
    let by_pseudonym: std::collections::HashMap<String, i64> = crate::insert_in_chunks!(
        conn,
        patients::table,
        values,
        ROWS_PER_INSERT,
        returning (patients::pseudonym, patients::id) => (String, i64)
    )
    .into_iter()
    .collect();
    let pseudonyms: Vec<&str> = rows.iter().map(|r| r.patient.pseudonym.as_str()).collect();
    let ids = pseudonyms
        .iter()
        .map(|p| by_pseudonym.get(*p).copied())
        .collect::<Option<Vec<i64>>>()
        .ok_or(diesel::result::Error::NotFound)?;
    let need_rows: Vec<NeedRow> = needs
        .iter()
        .zip(&ids)
        .flat_map(|(n, &patient_id)| {
            n.as_slice().iter().map(move |&need_id| NeedRow {
                patient_id,
                need_id,
            })
        })
        .collect();
    crate::insert_in_chunks!(conn, patient_needs::table, need_rows, ROWS_PER_INSERT);
    let tokens: Vec<TokenRow> = rows
        .iter()
        .zip(&ids)
        .flat_map(|(r, &patient_id)| {
            let institution_id = r.patient.institution_id;
            let birth_year = r.patient.record.birth_year;
            r.tokens.iter().map(move |token| TokenRow {
                patient_id,
                institution_id,
                token: token.clone(),
                birth_year,
            })
        })
        .collect();
    crate::insert_in_chunks!(
        conn,
        patient_blind_indexes::table,
        tokens,
        TOKENS_PER_INSERT
    );
    let versions: Vec<VersionRow> = rows
        .iter()
        .zip(&ids)
        .zip(needs)
        .map(|((r, &id), needs)| {
            let p = &r.patient;
            let stored = Patient {
                id,
                pseudonym: p.pseudonym.to_string(),
                institution_id: p.institution_id,
                // Not kept in the history (see `snapshot_of`).
                passport: String::new(),
                passport_key_version: p.passport_key_version,
                sex: p.record.sex.clone(),
                birth_year: p.record.birth_year,
                district_id: p.record.district_id,
                diagnosis_id: p.record.diagnosis_id,
                care_form_id: p.record.care_form_id,
                status_id: p.record.status_id,
                registered_on: p.record.registered_on,
                discharged_on: p.record.discharged_on,
                deceased_on: p.record.deceased_on,
                version: p.version,
                created_by: p.created_by,
                created_at: p.created_at,
                updated_by: p.updated_by,
                updated_at: p.updated_at,
                needs,
            };
            VersionRow {
                patient_id: id,
                version: p.version,
                changed_by: p.updated_by,
                changed_at: p.updated_at,
                change: "created",
                snapshot: snapshot_of(&stored),
            }
        })
        .collect();
    crate::insert_in_chunks!(conn, patient_versions::table, versions, ROWS_PER_INSERT);
    Ok(ids)
}

/// The patient if it belongs to the institution; `NotFound` otherwise (missing and not yours
/// are the same answer).
pub fn find_in_institution(
    conn: &mut DbConn,
    id: i64,
    institution_id: i64,
) -> QueryResult<Patient> {
    patients::table
        .filter(patients::id.eq(id))
        .filter(patients::institution_id.eq(institution_id))
        .select(Patient::as_select())
        .first(conn)
}

/// A patient as a clinician reads it ([`find_shown`]).
pub struct Shown {
    pub patient: Patient,
    /// The code of its status.
    pub status: String,
    /// The auth epoch ([`super::sessions::auth_epoch`]) in the same snapshot.
    pub auth_epoch: Option<i64>,
}

/// The patient as a clinician reads it, with the auth epoch of the same snapshot; `NotFound`
/// unless it belongs to the institution.
///
/// One statement, where the session's epoch, the row, the status codes and the needs were
/// four: one snapshot without a transaction (see [`crate::routes::read_one_audited_as`]). The
/// needs are the row's own copy ([`NeedIds`]): one row, two small lookups beside it.
/// It runs on the backend's own connection ([`crate::per_backend`]): run through [`DbConn`],
/// diesel writes out a statement's SQL twice every time, prepared or not, which was a fifth of
/// a read's time in the database (bench/README.md, twenty-fifth session).
pub fn find_shown(conn: &mut DbConn, id: i64, institution_id: i64) -> QueryResult<Shown> {
    let (patient, status, auth_epoch) = crate::per_backend!(conn, |c| {
        patients::table
            .inner_join(patient_statuses::table)
            .filter(patients::id.eq(id))
            .filter(patients::institution_id.eq(institution_id))
            .select((
                Patient::as_select(),
                patient_statuses::code,
                auth_epoch::table.select(auth_epoch::value).single_value(),
            ))
            .first(c)
    })?;
    Ok(Shown {
        patient,
        status,
        auth_epoch,
    })
}

/// Patients in the register, of every institution (for an operator's summary of a backup).
pub fn count_all(conn: &mut DbConn) -> QueryResult<i64> {
    patients::table.count().get_result(conn)
}

pub fn pseudonym_taken(conn: &mut DbConn, pseudonym: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        patients::table.filter(patients::pseudonym.eq(pseudonym)),
    ))
    .get_result(conn)
}

/// Writes the record fields (and optionally a new passport) if the stored version is still
/// `expected`; returns false when it is not (a stale write, refused).
#[allow(clippy::too_many_arguments)]
pub fn update_if_version(
    conn: &mut DbConn,
    id: i64,
    institution_id: i64,
    expected: i32,
    record: &RecordFields,
    passport: Option<(&str, i32)>,
    by: i64,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let target = patients::table
        .filter(patients::id.eq(id))
        .filter(patients::institution_id.eq(institution_id))
        .filter(patients::version.eq(expected));
    let changed = match passport {
        Some((envelope, key_version)) => diesel::update(target)
            .set((
                record,
                patients::passport.eq(envelope),
                patients::passport_key_version.eq(key_version),
                patients::version.eq(expected.saturating_add(1)),
                patients::updated_by.eq(by),
                patients::updated_at.eq(at),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                record,
                patients::version.eq(expected.saturating_add(1)),
                patients::updated_by.eq(by),
                patients::updated_at.eq(at),
            ))
            .execute(conn)?,
    };
    Ok(changed == 1)
}

/// Sets a patient's needs: its `patient_needs` rows and its row's copy ([`NeedIds`]). Call it
/// inside a transaction.
pub fn set_needs(conn: &mut DbConn, id: i64, needs: &NeedIds) -> QueryResult<()> {
    diesel::update(patients::table.find(id))
        .set(patients::needs.eq(needs.to_column()))
        .execute(conn)?;
    diesel::delete(patient_needs::table.filter(patient_needs::patient_id.eq(id))).execute(conn)?;
    for need in needs.as_slice() {
        diesel::insert_into(patient_needs::table)
            .values((
                patient_needs::patient_id.eq(id),
                patient_needs::need_id.eq(need),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn set_blind_indexes(
    conn: &mut DbConn,
    id: i64,
    institution_id: i64,
    birth_year: i32,
    tokens: &[String],
) -> QueryResult<()> {
    diesel::delete(patient_blind_indexes::table.filter(patient_blind_indexes::patient_id.eq(id)))
        .execute(conn)?;
    for token in tokens {
        diesel::insert_into(patient_blind_indexes::table)
            .values((
                patient_blind_indexes::patient_id.eq(id),
                patient_blind_indexes::institution_id.eq(institution_id),
                patient_blind_indexes::token.eq(token),
                patient_blind_indexes::birth_year.eq(birth_year),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Gives a patient's tokens its record's year of birth. Each token carries it so that a search
/// by a token and a year (or an age band) reads only the tokens of those years, not the record
/// of every patient the token matches (migration `000017`).
pub fn align_token_birth_year(conn: &mut DbConn, id: i64, birth_year: i32) -> QueryResult<()> {
    diesel::update(patient_blind_indexes::table.filter(patient_blind_indexes::patient_id.eq(id)))
        .set(patient_blind_indexes::birth_year.eq(birth_year))
        .execute(conn)?;
    Ok(())
}

pub fn blind_indexes_of(conn: &mut DbConn, id: i64) -> QueryResult<Vec<String>> {
    patient_blind_indexes::table
        .filter(patient_blind_indexes::patient_id.eq(id))
        .select(patient_blind_indexes::token)
        .order(patient_blind_indexes::token)
        .load(conn)
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = patient_versions)]
pub struct PatientVersion {
    pub patient_id: i64,
    pub version: i32,
    pub changed_by: i64,
    pub changed_at: NaiveDateTime,
    pub change: String,
    pub snapshot: String,
}

pub fn insert_version(conn: &mut DbConn, patient: &Patient, change: &str) -> QueryResult<usize> {
    let snapshot = snapshot_of(patient);
    diesel::insert_into(patient_versions::table)
        .values((
            patient_versions::patient_id.eq(patient.id),
            patient_versions::version.eq(patient.version),
            patient_versions::changed_by.eq(patient.updated_by),
            patient_versions::changed_at.eq(patient.updated_at),
            patient_versions::change.eq(change),
            patient_versions::snapshot.eq(snapshot),
        ))
        .execute(conn)
}

pub fn history(conn: &mut DbConn, id: i64) -> QueryResult<Vec<PatientVersion>> {
    patient_versions::table
        .filter(patient_versions::patient_id.eq(id))
        .select(PatientVersion::as_select())
        .order(patient_versions::version.desc())
        .load(conn)
}

/// Server-side filters of a patient search. Blind-index tokens come in groups: a patient
/// matches a group when it has any of its tokens, and must match every group.
#[derive(Debug, Default, Clone)]
pub struct PatientFilter {
    pub token_groups: Vec<Vec<String>>,
    pub diagnosis_id: Option<i64>,
    pub icd10_block: Option<String>,
    pub status_id: Option<i64>,
    pub care_form_id: Option<i64>,
    pub district_id: Option<i64>,
    pub sex: Option<String>,
    pub birth_year_from: Option<i32>,
    pub birth_year_to: Option<i32>,
    pub registered_from: Option<NaiveDate>,
    pub registered_to: Option<NaiveDate>,
    pub key_version_below: Option<i32>,
    pub need_id: Option<i64>,
}

impl PatientFilter {
    /// The one token group of a search by blind index, with nothing else but years of birth
    /// (which the tokens carry).
    fn blind_index_only(&self) -> Option<&[String]> {
        let Self {
            token_groups,
            diagnosis_id: None,
            icd10_block: None,
            status_id: None,
            care_form_id: None,
            district_id: None,
            sex: None,
            birth_year_from: _,
            birth_year_to: _,
            registered_from: None,
            registered_to: None,
            key_version_below: None,
            need_id: None,
        } = self
        else {
            return None;
        };
        match token_groups.as_slice() {
            [group] => Some(group),
            _ => None,
        }
    }
}

/// The statement of [`tokens_in`], step by step.
type TokensOfInstitution = diesel::dsl::Filter<
    patient_blind_indexes::table,
    diesel::dsl::Eq<patient_blind_indexes::institution_id, i64>,
>;
type TokensOfGroup = diesel::dsl::Filter<
    TokensOfInstitution,
    crate::db::in_list::InList<patient_blind_indexes::token, String>,
>;
type TokensFrom =
    diesel::dsl::Filter<TokensOfGroup, diesel::dsl::GtEq<patient_blind_indexes::birth_year, i32>>;
type TokensIn =
    diesel::dsl::Filter<TokensFrom, diesel::dsl::LtEq<patient_blind_indexes::birth_year, i32>>;

/// The institution's tokens of one group, of patients born in the filter's years: the lookup
/// index sorts each token's entries by year (migration `000017`). Without a bound, the year is
/// bounded by the integers' own, so that every search by token is one statement, prepared once
/// (diesel cannot box a subquery over both backends).
fn tokens_in(institution_id: i64, group: &[String], f: &PatientFilter) -> TokensIn {
    patient_blind_indexes::table
        .filter(patient_blind_indexes::institution_id.eq(institution_id))
        .filter(in_list(patient_blind_indexes::token, group.to_vec()))
        .filter(patient_blind_indexes::birth_year.ge(f.birth_year_from.unwrap_or(i32::MIN)))
        .filter(patient_blind_indexes::birth_year.le(f.birth_year_to.unwrap_or(i32::MAX)))
}

fn filtered<'a>(institution_id: i64, f: &'a PatientFilter) -> patients::BoxedQuery<'a, Db> {
    let mut q = if f.token_groups.is_empty() {
        patients::table
            .filter(patients::institution_id.eq(institution_id))
            .into_boxed()
    } else {
        // A search by blind index starts from the tokens' index: a token matches a few
        // patients, by design never many. The institution is still checked on every row, but
        // written `+institution_id` so that no index of `patients` (each begins with the
        // institution) can be chosen to read the whole institution instead. Without planner
        // statistics, and the pool's connections keep those of the moment they were opened,
        // SQLite did just that for a surname's token with a birth year: it read all 50,000
        // patients of the institution to count a dozen (bench/README.md, twenty-second
        // session).
        patients::table
            .filter(unindexed(patients::institution_id).eq(institution_id))
            .into_boxed()
    };
    for group in &f.token_groups {
        q =
            q.filter(patients::id.eq_any(
                tokens_in(institution_id, group, f).select(patient_blind_indexes::patient_id),
            ));
    }
    if let Some(v) = f.diagnosis_id {
        q = q.filter(patients::diagnosis_id.eq(v));
    }
    if let Some(block) = &f.icd10_block {
        q = q.filter(
            patients::diagnosis_id.eq_any(
                diagnoses::table
                    .filter(diagnoses::block.eq(block))
                    .select(diagnoses::id),
            ),
        );
    }
    if let Some(v) = f.status_id {
        q = q.filter(patients::status_id.eq(v));
    }
    if let Some(v) = f.care_form_id {
        q = q.filter(patients::care_form_id.eq(v));
    }
    if let Some(v) = f.district_id {
        q = q.filter(patients::district_id.eq(v));
    }
    if let Some(v) = &f.sex {
        q = q.filter(patients::sex.eq(v));
    }
    if let Some(v) = f.birth_year_from {
        q = q.filter(patients::birth_year.ge(v));
    }
    if let Some(v) = f.birth_year_to {
        q = q.filter(patients::birth_year.le(v));
    }
    if let Some(v) = f.registered_from {
        q = q.filter(patients::registered_on.ge(v));
    }
    if let Some(v) = f.registered_to {
        q = q.filter(patients::registered_on.le(v));
    }
    if let Some(v) = f.key_version_below {
        q = q.filter(patients::passport_key_version.lt(v));
    }
    if let Some(v) = f.need_id {
        q = q.filter(
            patients::id.eq_any(
                patient_needs::table
                    .filter(patient_needs::need_id.eq(v))
                    .select(patient_needs::patient_id),
            ),
        );
    }
    q
}

/// One page of matches in id order after `after`, and the total number of matches.
///
/// Written for a cold page cache (SQLite drops a connection's cache whenever another has
/// committed, so under load every search starts cold and each page it touches is a read from
/// the file): the page's ids are chosen from the indexes alone and only their rows are read
/// (selecting the rows directly made SQLite read the row, passport and all, of every match
/// before sorting them by id); a search by blind index alone is counted in the blind-index
/// index, not by looking each match up in the patients' index (a surname token matches
/// hundreds of patients of an institution of 50,000).
pub fn search(
    conn: &mut DbConn,
    institution_id: i64,
    filter: &PatientFilter,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<(Vec<Patient>, i64)> {
    let mut page = filtered(institution_id, filter);
    if let Some(after) = after {
        page = page.filter(patients::id.gt(after));
    }
    let ids: Vec<i64> = page
        .select(patients::id)
        .order(patients::id.asc())
        .limit(limit)
        .load(conn)?;
    let items = patients::table
        .filter(in_list(patients::id, ids))
        .select(Patient::as_select())
        .order(patients::id.asc())
        .load(conn)?;
    let total = match filter.blind_index_only() {
        // A patient's tokens carry its institution (a patient never changes institution) and
        // its year of birth.
        Some(group) => tokens_in(institution_id, group, filter)
            .select(diesel::dsl::count(patient_blind_indexes::patient_id).aggregate_distinct())
            .get_result(conn)?,
        None => filtered(institution_id, filter).count().get_result(conn)?,
    };
    Ok((items, total))
}

/// How many of the institution's passports are sealed under a version older than `current`.
pub fn count_below_version(
    conn: &mut DbConn,
    institution_id: i64,
    current: i32,
) -> QueryResult<i64> {
    patients::table
        .filter(patients::institution_id.eq(institution_id))
        .filter(patients::passport_key_version.lt(current))
        .count()
        .get_result(conn)
}

/// Bumps a patient's version after a change to its linked rows (needs from an observation).
pub fn touch(
    conn: &mut DbConn,
    id: i64,
    expected: i32,
    by: i64,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(
        patients::table
            .filter(patients::id.eq(id))
            .filter(patients::version.eq(expected)),
    )
    .set((
        patients::version.eq(expected.saturating_add(1)),
        patients::updated_by.eq(by),
        patients::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{InstrumentationEvent, SimpleConnection};

    use super::*;

    #[test]
    fn needs_are_kept_distinct_and_ascending_and_read_back_as_written() {
        let needs = NeedIds::new(&[12, 3, 7, 3]);
        assert_eq!(needs.as_slice(), [3, 7, 12]);
        assert_eq!(needs.to_column(), "3,7,12");
        assert_eq!(NeedIds::from_column("3,7,12").unwrap(), needs);
        assert_eq!(NeedIds::new(&[]).to_column(), "");
        assert_eq!(NeedIds::from_column("").unwrap(), NeedIds::default());
        assert_eq!(NeedIds::from_column("5").unwrap().as_slice(), [5]);
        // A column that is not a list of ids is an error to read, not an empty list.
        for bad in ["3,,7", "3;7", "x", ",", "3,"] {
            assert!(NeedIds::from_column(bad).is_err(), "{bad}");
        }
    }

    fn tokens(first: i64, count: i64) -> Vec<TokenRow> {
        (first..first + count)
            .map(|i| TokenRow {
                patient_id: i,
                institution_id: 1,
                token: format!("s1:{i:08x}"),
                birth_year: 1950,
            })
            .collect()
    }

    /// `insert_in_chunks` inserts every row once, in statements of fixed shapes that diesel
    /// prepares once per connection: a second batch of the same size prepares nothing.
    #[test]
    fn chunked_inserts_store_every_row_and_prepare_each_shape_once() {
        let (_dir, mut conn) = crate::db::testing::migrated_sqlite("chunks.db");
        // The tokens' patients are left out.
        conn.batch_execute("PRAGMA foreign_keys = OFF").unwrap();
        let events = Arc::new(Mutex::new((0usize, 0usize)));
        let DbConn::Sqlite(sqlite) = &mut conn else {
            unreachable!("a SQLite URL")
        };
        let sink = events.clone();
        sqlite.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::StartQuery { .. } => sink.lock().unwrap().0 += 1,
            InstrumentationEvent::CacheQuery { .. } => sink.lock().unwrap().1 += 1,
            _ => {}
        });
        let mut insert = |rows: Vec<TokenRow>| -> QueryResult<usize> {
            let conn = &mut conn;
            Ok(crate::insert_in_chunks!(
                conn,
                patient_blind_indexes::table,
                rows,
                1000
            ))
        };
        // Two full chunks, then one of 128, one of 16 and three single rows.
        let batch = 2 * 1000 + 128 + 16 + 3;
        assert_eq!(insert(tokens(0, batch)).unwrap(), batch as usize);
        assert_eq!(*events.lock().unwrap(), (7, 4), "(statements, prepared)");
        assert_eq!(insert(tokens(batch, batch)).unwrap(), batch as usize);
        assert_eq!(*events.lock().unwrap(), (14, 4), "nothing prepared again");
        let stored: i64 = patient_blind_indexes::table
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(stored, 2 * batch);
    }

    /// A search by blind index reads the patients it names by id, whatever else it filters by,
    /// and never an index of the whole institution, also without planner statistics (a new
    /// register, or a pooled connection opened before its first `ANALYZE`). The tokens' index
    /// narrows them by year of birth; a token and a year are counted there alone.
    #[test]
    fn a_search_by_blind_index_starts_from_the_tokens() {
        let (_dir, mut conn) = crate::db::testing::migrated_sqlite("tokens.db");
        let token = || vec![vec!["0101000000010e1234".to_string()]];
        let filters = [
            PatientFilter {
                token_groups: token(),
                birth_year_from: Some(1950),
                birth_year_to: Some(1950),
                ..Default::default()
            },
            PatientFilter {
                token_groups: token(),
                status_id: Some(1),
                birth_year_from: Some(1940),
                birth_year_to: Some(1960),
                ..Default::default()
            },
            PatientFilter {
                token_groups: token(),
                diagnosis_id: Some(1),
                status_id: Some(1),
                registered_from: NaiveDate::from_ymd_opt(2024, 1, 1),
                ..Default::default()
            },
            PatientFilter {
                token_groups: vec![token()[0].clone(), vec!["0104000000010e1234".into()]],
                sex: Some("F".into()),
                ..Default::default()
            },
        ];
        for (n, filter) in filters.iter().enumerate() {
            let statements = crate::db::testing::plans_of(&mut conn, |conn| {
                search(conn, 1, filter, None, 50).unwrap();
            });
            let [page, _rows, count] = &statements[..] else {
                panic!("the page's ids, its rows and the count: {statements:#?}");
            };
            for (sql, plan) in &statements {
                for step in plan.iter().filter(|step| {
                    step.starts_with("SEARCH patients") || step.starts_with("SCAN patients")
                }) {
                    assert!(
                        step.contains("USING INTEGER PRIMARY KEY"),
                        "{filter:?}: {step}\nin the plan {plan:#?}\nof {sql}"
                    );
                }
            }
            let tokens_by_year = "SEARCH patient_blind_indexes USING COVERING INDEX \
                 patient_blind_indexes_lookup (institution_id=? AND token=? AND birth_year>? \
                 AND birth_year<?)";
            assert!(page.1.iter().any(|s| s == tokens_by_year), "{page:#?}");
            if n == 0 {
                // A token and a year: counted in the tokens' index alone.
                assert_eq!(count.1, [tokens_by_year], "{count:#?}");
            }
        }
    }
}
