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

fn search_sql(label: &'static str, institution: i64, conds: &str) -> SearchSql {
    let wher = format!("patients.institution_id = {institution}{conds}");
    SearchSql {
        label,
        page: format!(
            "SELECT patients.* FROM patients WHERE patients.id IN (SELECT patients.id FROM \
             patients WHERE {wher} ORDER BY patients.id ASC LIMIT 50) ORDER BY patients.id ASC"
        ),
        count: format!("SELECT COUNT(*) FROM patients WHERE {wher}"),
    }
}

/// The server's condition for a group of one token (`token = ?`, see `db::in_list`).
fn token_condition(institution: i64, token: &str) -> String {
    let token = token.replace('\'', "''");
    format!(
        " AND patients.id IN (SELECT patient_blind_indexes.patient_id FROM \
         patient_blind_indexes WHERE patient_blind_indexes.institution_id = \
         {institution} AND patient_blind_indexes.token = '{token}')"
    )
}

fn token_search_sql(label: &'static str, institution: i64, token: &str) -> SearchSql {
    let condition = token_condition(institution, token);
    let token = token.replace('\'', "''");
    SearchSql {
        count: format!(
            "SELECT COUNT(DISTINCT patient_blind_indexes.patient_id) FROM patient_blind_indexes \
             WHERE patient_blind_indexes.institution_id = {institution} \
             AND patient_blind_indexes.token = '{token}'"
        ),
        ..search_sql(label, institution, &condition)
    }
}

pub fn searches(institution: i64, probe: &Probe, filter: (i64, i64, i32, i32)) -> Vec<SearchSql> {
    let (diagnosis, status, year_from, year_to) = filter;
    vec![
        token_search_sql("surname token", institution, &probe.surname),
        // The token, then the birth year (`birth_year_from` = `birth_year_to`), as
        // `db::models::patients::filtered` writes them.
        search_sql(
            "surname token+birth year",
            institution,
            &format!(
                "{} AND patients.birth_year >= {year} AND patients.birth_year <= {year}",
                token_condition(institution, &probe.surname),
                year = probe.birth_year
            ),
        ),
        search_sql(
            "filters (diagnosis+status+age band)",
            institution,
            &format!(
                " AND patients.diagnosis_id = {diagnosis} AND patients.status_id = {status} \
                 AND patients.birth_year >= {year_from} AND patients.birth_year <= {year_to}"
            ),
        ),
    ]
}
