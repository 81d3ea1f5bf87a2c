//! Helpers of the storage layer's unit tests.

use std::sync::{Arc, Mutex};

use diesel::connection::InstrumentationEvent;
use diesel::{Connection, QueryableByName, RunQueryDsl};

use super::{DatabaseUrl, DbConn, run_migrations};

/// A migrated SQLite database, `name`, in a temporary folder; it lives as long as the folder.
pub fn migrated_sqlite(name: &str) -> (tempfile::TempDir, DbConn) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = DatabaseUrl::Sqlite(dir.path().join(name))
        .connect()
        .unwrap();
    run_migrations(&mut conn).unwrap();
    (dir, conn)
}

#[derive(QueryableByName)]
struct PlanStep {
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
}

/// Every statement `run` sends on the SQLite connection `conn`, as diesel sends it (its binds
/// left out), with SQLite's plan of it (`EXPLAIN QUERY PLAN`, a step a line). The build has the
/// planner stability guarantee, so the plan does not depend on the values bound at run time.
pub fn plans_of(conn: &mut DbConn, run: impl FnOnce(&mut DbConn)) -> Vec<(String, Vec<String>)> {
    let sent = Arc::new(Mutex::new(Vec::<String>::new()));
    let DbConn::Sqlite(sqlite) = conn else {
        unreachable!("a SQLite URL")
    };
    let sink = sent.clone();
    sqlite.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            sink.lock().unwrap().push(query.to_string());
        }
    });
    run(conn);
    let statements = std::mem::take(&mut *sent.lock().unwrap());
    statements
        .iter()
        .map(|statement| {
            let sql = statement.split(" -- binds:").next().unwrap().to_string();
            let plan = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
                .load::<PlanStep>(conn)
                .unwrap()
                .into_iter()
                .map(|step| step.detail)
                .collect();
            (sql, plan)
        })
        .collect()
}
