//! Looking for the bottlenecks from below HTTP: the storage layer's own costs on a separate
//! connection (query plans, the search's page and count queries, the audit append).

use std::time::Instant;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use palreg_server::db::DbConn;
use palreg_server::db::models::audit::{self, NewEntry};

use super::http::Latencies;
use super::seed::Probe;

#[derive(QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = Text)]
    detail: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The query plan, one line per step (SQLite only).
pub fn plan(conn: &mut DbConn, sql: &str) -> Vec<String> {
    match diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load::<PlanRow>(conn) {
        Ok(rows) => rows.into_iter().map(|r| r.detail).collect(),
        Err(e) => vec![format!("(no plan: {e})")],
    }
}

/// Runs `sql` (fully) `times` times; latencies of each run. With `cold`, that connection
/// commits a change before each run, so SQLite drops `conn`'s page cache (the run is timed
/// alone).
pub fn time_sql(
    conn: &mut DbConn,
    sql: &str,
    times: usize,
    mut cold: Option<&mut DbConn>,
) -> Latencies {
    use diesel::connection::SimpleConnection;
    let wrapped = format!("SELECT COUNT(*) AS n FROM ({sql})");
    let mut out = Latencies::default();
    let start = Instant::now();
    for i in 0..times {
        if let Some(other) = cold.as_deref_mut() {
            // The header's user version: a change to the file that means nothing to palreg.
            if let Err(e) = other.batch_execute(&format!("PRAGMA user_version = {}", i + 1)) {
                out.errors += 1;
                out.first_error.get_or_insert(e.to_string());
            }
        }
        let t = Instant::now();
        match diesel::sql_query(&wrapped).load::<Count>(conn) {
            Ok(rows) => {
                std::hint::black_box(rows.first().map(|c| c.n));
                out.micros.push(t.elapsed().as_micros() as u32);
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e.to_string());
            }
        }
    }
    out.wall = start.elapsed();
    out
}

/// The cost of one audit append in its own transaction (what every read adds), measured on a
/// quiet database: reserve (UPDATE head, SELECT head), INSERT entry, UPDATE head hash, COMMIT.
pub fn audit_append(conn: &mut DbConn, times: usize) -> Latencies {
    let mut out = Latencies::default();
    let start = Instant::now();
    for i in 0..times {
        let entry = NewEntry {
            at: None,
            actor_id: None,
            actor_login: Some("bench".into()),
            action: "bench.probe".into(),
            object_type: "bench".into(),
            object_id: Some(i.to_string()),
            outcome: "ok".into(),
            client_addr: None,
            details: None,
            // As a clinician's read: an entry of an institution (hashed with it).
            institution_id: Some(1),
        };
        let t = Instant::now();
        let r = conn.transaction::<_, diesel::result::Error, _>(|c| audit::append(c, entry));
        match r {
            Ok(_) => out.micros.push(t.elapsed().as_micros() as u32),
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e.to_string());
            }
        }
    }
    out.wall = start.elapsed();
    out
}

/// The SQL of the server's search (`db::models::patients::search`), written out as diesel
/// builds it: the page's ids from the WHERE, then their rows (here in one statement); the
/// count shares the WHERE, or, for a blind index alone, counts in the blind-index index.
pub struct SearchSql {
    pub label: &'static str,
    pub page: String,
    pub count: String,
}

/// `by_token`: a search by blind index writes the institution `+patients.institution_id`, so
/// that the tokens' index drives (`db::unindexed`).
fn search_sql(label: &'static str, institution: i64, by_token: bool, conds: &str) -> SearchSql {
    let column = if by_token {
        "+patients.institution_id"
    } else {
        "patients.institution_id"
    };
    let wher = format!("{column} = {institution}{conds}");
    SearchSql {
        label,
        page: format!(
            "SELECT patients.* FROM patients WHERE patients.id IN (SELECT patients.id FROM \
             patients WHERE {wher} ORDER BY patients.id ASC LIMIT 50) ORDER BY patients.id ASC"
        ),
        count: format!("SELECT COUNT(*) FROM patients WHERE {wher}"),
    }
}

/// The tokens of a group of one (`token = ?`, see `db::in_list`) of patients born in `years`
/// (the integers' bounds when the search has none), as `db::models::patients::tokens_in`.
fn tokens_where(institution: i64, token: &str, years: Option<i32>) -> String {
    let token = token.replace('\'', "''");
    let (from, to) = years.map_or((i32::MIN, i32::MAX), |y| (y, y));
    format!(
        "patient_blind_indexes.institution_id = {institution} AND patient_blind_indexes.token = \
         '{token}' AND patient_blind_indexes.birth_year >= {from} AND \
         patient_blind_indexes.birth_year <= {to}"
    )
}

/// A search by a token, and a year of birth if given: the page reads the patients the tokens
/// name; the count reads the tokens' index alone.
fn token_search_sql(
    label: &'static str,
    institution: i64,
    token: &str,
    year: Option<i32>,
) -> SearchSql {
    let tokens = tokens_where(institution, token, year);
    let mut condition = format!(
        " AND patients.id IN (SELECT patient_blind_indexes.patient_id FROM \
         patient_blind_indexes WHERE {tokens})"
    );
    if let Some(y) = year {
        condition.push_str(&format!(
            " AND patients.birth_year >= {y} AND patients.birth_year <= {y}"
        ));
    }
    SearchSql {
        count: format!(
            "SELECT COUNT(DISTINCT patient_blind_indexes.patient_id) FROM patient_blind_indexes \
             WHERE {tokens}"
        ),
        ..search_sql(label, institution, true, &condition)
    }
}

pub fn searches(institution: i64, probe: &Probe, filter: (i64, i64, i32, i32)) -> Vec<SearchSql> {
    let (diagnosis, status, year_from, year_to) = filter;
    vec![
        token_search_sql("surname token", institution, &probe.surname, None),
        token_search_sql(
            "surname token+birth year",
            institution,
            &probe.surname,
            Some(probe.birth_year),
        ),
        search_sql(
            "filters (diagnosis+status+age band)",
            institution,
            false,
            &format!(
                " AND patients.diagnosis_id = {diagnosis} AND patients.status_id = {status} \
                 AND patients.birth_year >= {year_from} AND patients.birth_year <= {year_to}"
            ),
        ),
    ]
}
