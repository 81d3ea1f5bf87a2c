//! Aggregates for the reports: what the prescription report lists and what the summary report
//! counts. Only non-identifying columns are read (pseudonyms, records, prescriptions).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::dsl::{case_when, count, count_star, sum};
use diesel::prelude::*;
use diesel::sql_types::Integer;

use crate::db::DbConn;
use crate::db::models::prescriptions::PrescriptionFilter;
use crate::db::models::refs;
use crate::db::schema::{
    diagnoses, issued_reports, medicaments, patient_needs, patients, prescriptions, users,
};

/// One line of the prescription report.
#[derive(Queryable, Debug, Clone)]
pub struct PrescriptionLine {
    pub number: String,
    pub prescribed_on: NaiveDate,
    pub pseudonym: String,
    pub medicament: String,
    pub medicament_ru: Option<String>,
    pub controlled: bool,
    pub unit: String,
    pub dose: f64,
    pub dose_unit: String,
    pub route: String,
    pub frequency: String,
    pub quantity: f64,
    pub prescriber: String,
    pub status: String,
}

/// The prescriptions of an institution matching `filter`, in date order.
pub fn prescription_lines(
    conn: &mut DbConn,
    institution_id: i64,
    filter: &PrescriptionFilter,
    limit: i64,
) -> QueryResult<Vec<PrescriptionLine>> {
    let mut q = prescriptions::table
        .inner_join(patients::table)
        .inner_join(medicaments::table)
        .inner_join(users::table.on(users::id.eq(prescriptions::prescriber_id)))
        .filter(prescriptions::institution_id.eq(institution_id))
        .into_boxed();
    if let Some(v) = filter.medicament_id {
        q = q.filter(prescriptions::medicament_id.eq(v));
    }
    if let Some(v) = filter.controlled {
        q = q.filter(medicaments::controlled.eq(v));
    }
    if let Some(v) = filter.from {
        q = q.filter(prescriptions::prescribed_on.ge(v));
    }
    if let Some(v) = filter.to {
        q = q.filter(prescriptions::prescribed_on.le(v));
    }
    if let Some(v) = filter.prescriber_id {
        q = q.filter(prescriptions::prescriber_id.eq(v));
    }
    if let Some(v) = &filter.status {
        q = q.filter(prescriptions::status.eq(v.clone()));
    }
    if let Some(v) = filter.patient_id {
        q = q.filter(prescriptions::patient_id.eq(v));
    }
    q.select((
        prescriptions::number,
        prescriptions::prescribed_on,
        patients::pseudonym,
        medicaments::name,
        medicaments::name_ru,
        medicaments::controlled,
        medicaments::unit,
        prescriptions::dose,
        prescriptions::dose_unit,
        prescriptions::route,
        prescriptions::frequency,
        prescriptions::quantity,
        users::full_name,
        prescriptions::status,
    ))
    .order((prescriptions::prescribed_on.asc(), prescriptions::id.asc()))
    .limit(limit)
    .load(conn)
}

/// Movement counts of one institution over a period.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Movement {
    pub on_register_at_start: i64,
    pub on_register_at_end: i64,
    pub newly_registered: i64,
    pub discharged: i64,
    pub deceased: i64,
}

/// The patients of `institutions` who were on the register at some time in `[from, to]`:
/// registered by `to`, and neither discharged nor deceased before `from`.
macro_rules! in_period {
    ($institutions:expr, $from:expr, $to:expr) => {
        patients::table
            .filter(patients::institution_id.eq_any($institutions))
            .filter(patients::registered_on.le($to))
            .filter(
                patients::discharged_on
                    .is_null()
                    .or(patients::discharged_on.ge($from)),
            )
            .filter(
                patients::deceased_on
                    .is_null()
                    .or(patients::deceased_on.ge($from)),
            )
    };
}

/// Per institution: on the register when the period starts (registered before it and not
/// gone before it) and when it ends, registered, discharged and deceased within it. One pass
/// over the patients, each measure a conditional count (`COUNT(CASE WHEN … THEN 1 END)`):
/// five separate counts cost five scans (bench/README.md, "The summary report").
pub fn movement(
    conn: &mut DbConn,
    institutions: &[i64],
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<(i64, Movement)>> {
    // `CASE WHEN condition THEN 1 END`: counted when the condition holds.
    macro_rules! when {
        ($condition:expr $(,)?) => {
            case_when::<_, _, Integer>($condition, 1)
        };
    }
    let rows: Vec<(i64, i64, i64, i64, i64, i64)> = patients::table
        .filter(patients::institution_id.eq_any(institutions))
        .group_by(patients::institution_id)
        .select((
            patients::institution_id,
            count(when!(
                patients::registered_on
                    .lt(from)
                    .and(
                        patients::discharged_on
                            .is_null()
                            .or(patients::discharged_on.ge(from)),
                    )
                    .and(
                        patients::deceased_on
                            .is_null()
                            .or(patients::deceased_on.ge(from)),
                    ),
            )),
            count(when!(
                patients::registered_on
                    .le(to)
                    .and(
                        patients::discharged_on
                            .is_null()
                            .or(patients::discharged_on.gt(to)),
                    )
                    .and(
                        patients::deceased_on
                            .is_null()
                            .or(patients::deceased_on.gt(to)),
                    ),
            )),
            count(when!(patients::registered_on.between(from, to))),
            // A patient leaves the register once, at the first of discharge and death (a death
            // after a discharge is not an outflow of the register; on one day, it is the
            // death), so that start + new = end + discharged + deceased.
            count(when!(
                patients::discharged_on.between(from, to).and(
                    patients::deceased_on
                        .is_null()
                        .or(patients::deceased_on.gt(patients::discharged_on)),
                )
            )),
            count(when!(
                patients::deceased_on.between(from, to).and(
                    patients::discharged_on
                        .is_null()
                        .or(patients::discharged_on.ge(patients::deceased_on)),
                )
            )),
        ))
        .load(conn)?;
    let mut out: Vec<(i64, Movement)> = institutions
        .iter()
        .map(|i| (*i, Movement::default()))
        .collect();
    for (inst, at_start, at_end, new, discharged, deceased) in rows {
        if let Some((_, m)) = out.iter_mut().find(|(i, _)| *i == inst) {
            *m = Movement {
                on_register_at_start: at_start,
                on_register_at_end: at_end,
                newly_registered: new,
                discharged,
                deceased,
            };
        }
    }
    Ok(out)
}

/// Patients in the period by (institution, ICD-10 block).
pub fn by_icd10_block(
    conn: &mut DbConn,
    institutions: &[i64],
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<(i64, String, i64)>> {
    in_period!(institutions, from, to)
        .inner_join(diagnoses::table)
        .group_by((patients::institution_id, diagnoses::block))
        .select((patients::institution_id, diagnoses::block, count_star()))
        .load(conn)
}

/// Patients in the period by (institution, birth year, sex).
pub fn by_birth_year_sex(
    conn: &mut DbConn,
    institutions: &[i64],
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<(i64, i32, String, i64)>> {
    in_period!(institutions, from, to)
        .group_by((
            patients::institution_id,
            patients::birth_year,
            patients::sex,
        ))
        .select((
            patients::institution_id,
            patients::birth_year,
            patients::sex,
            count_star(),
        ))
        .load(conn)
}

/// The distinct ids among `ids`, for a book's `find_many`.
fn distinct(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    ids.collect::<BTreeSet<i64>>().into_iter().collect()
}

/// Patients in the period by (institution, care form name, Russian name); `None` when not set.
///
/// Counted by care form id (the index holds it: no join, narrow group keys) and named from the
/// book afterwards: grouping by the names took 512 ms at 1M patients, this 220. Two book
/// entries of the same names give two rows, which the report adds up as it adds up rows.
#[allow(clippy::type_complexity)]
pub fn by_care_form(
    conn: &mut DbConn,
    institutions: &[i64],
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<(i64, Option<String>, Option<String>, i64)>> {
    let counts: Vec<(i64, Option<i64>, i64)> = in_period!(institutions, from, to)
        .group_by((patients::institution_id, patients::care_form_id))
        .select((
            patients::institution_id,
            patients::care_form_id,
            count_star(),
        ))
        .load(conn)?;
    let book: BTreeMap<i64, refs::CareForm> =
        refs::care_form::find_many(conn, &distinct(counts.iter().filter_map(|c| c.1)))?
            .into_iter()
            .map(|form| (form.id, form))
            .collect();
    Ok(counts
        .into_iter()
        .map(
            |(institution_id, form, n)| match form.and_then(|id| book.get(&id)) {
                Some(form) => (
                    institution_id,
                    Some(form.name.clone()),
                    form.name_ru.clone(),
                    n,
                ),
                None => (institution_id, None, None, n),
            },
        )
        .collect())
}

/// Patients in the period having each need, by (institution, need name, Russian name).
/// Counted by need id and named afterwards, as [`by_care_form`]. Needs the report names alike
/// (`key`: the name in the report's language) are one row of it, so they are counted
/// together: a patient having two of them is one patient of that row.
#[allow(clippy::type_complexity)]
pub fn by_need(
    conn: &mut DbConn,
    institutions: &[i64],
    from: NaiveDate,
    to: NaiveDate,
    key: &dyn Fn(&str, Option<&str>) -> String,
) -> QueryResult<Vec<(i64, String, Option<String>, i64)>> {
    let counts: Vec<(i64, i64, i64)> = in_period!(institutions, from, to)
        .inner_join(patient_needs::table)
        .group_by((patients::institution_id, patient_needs::need_id))
        .select((
            patients::institution_id,
            patient_needs::need_id,
            count_star(),
        ))
        .load(conn)?;
    let book: BTreeMap<i64, refs::Need> =
        refs::need::find_many(conn, &distinct(counts.iter().map(|c| c.1)))?
            .into_iter()
            .map(|need| (need.id, need))
            .collect();
    let mut alike: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for need in book.values() {
        alike
            .entry(key(&need.name, need.name_ru.as_deref()))
            .or_default()
            .push(need.id);
    }
    let mut rows = Vec::new();
    for ids in alike.values() {
        let Some(need) = book.get(&ids[0]) else {
            continue;
        };
        let named =
            |(institution_id, n)| (institution_id, need.name.clone(), need.name_ru.clone(), n);
        if let [id] = ids.as_slice() {
            rows.extend(
                counts
                    .iter()
                    .filter(|c| c.1 == *id)
                    .map(|&(institution_id, _, n)| named((institution_id, n))),
            );
        } else {
            let together: Vec<(i64, i64)> = in_period!(institutions, from, to)
                .inner_join(patient_needs::table)
                .filter(patient_needs::need_id.eq_any(ids))
                .group_by(patients::institution_id)
                .select((
                    patients::institution_id,
                    count(patients::id).aggregate_distinct(),
                ))
                .load(conn)?;
            rows.extend(together.into_iter().map(named));
        }
    }
    Ok(rows)
}

/// One medicament's need in one institution over a period.
#[derive(Queryable, Debug, Clone)]
pub struct MedicamentNeedRow {
    pub institution_id: i64,
    pub name: String,
    pub name_ru: Option<String>,
    pub unit: String,
    pub controlled: bool,
    pub quantity: Option<f64>,
    pub patients: i64,
}

/// Per (institution, medicament): total quantity prescribed in the period (cancelled
/// prescriptions excluded) and the number of distinct patients.
///
/// Read from a covering index alone (SQLite: the medicament index, see
/// [`medicament_sums_sqlite`]; PostgreSQL: the date index), aggregated by medicament id —
/// narrow sort keys — and named afterwards from the book: grouping the prescriptions by the
/// medicament's name columns made the database sort every prescription of the period by wide
/// text keys (on PostgreSQL spilling to disk), twice the time of the aggregate itself.
/// Medicaments the report names alike (`key`: the name in the report's language; and the
/// unit) are one row of it, so they are counted together, a patient prescribed two of them
/// once.
pub fn medicament_needs(
    conn: &mut DbConn,
    institutions: &[i64],
    from: NaiveDate,
    to: NaiveDate,
    key: &dyn Fn(&str, Option<&str>) -> String,
) -> QueryResult<Vec<MedicamentNeedRow>> {
    let sums: MedicamentSums = match conn {
        DbConn::Sqlite(c) => medicament_sums_sqlite(c, institutions, from, to)?,
        DbConn::Pg(_) => prescriptions::table
            .filter(prescriptions::institution_id.eq_any(institutions))
            .filter(prescriptions::prescribed_on.between(from, to))
            .filter(prescriptions::status.ne("cancelled"))
            .group_by((prescriptions::institution_id, prescriptions::medicament_id))
            .select((
                prescriptions::institution_id,
                prescriptions::medicament_id,
                sum(prescriptions::quantity),
                count(prescriptions::patient_id).aggregate_distinct(),
            ))
            .load(conn)?,
    };
    type Named = (String, Option<String>, String, bool);
    let book: BTreeMap<i64, Named> =
        refs::medicament::find_many(conn, &distinct(sums.iter().map(|r| r.1)))?
            .into_iter()
            .map(|m| (m.id, (m.name, m.name_ru, m.unit, m.controlled)))
            .collect();
    // The report adds up the rows it names alike (the name as `key` gives it, and the unit):
    // a patient prescribed two of them is one patient of that row, so those medicaments are
    // counted together.
    let mut alike: BTreeMap<(String, &str), Vec<i64>> = BTreeMap::new();
    for (id, (name, name_ru, unit, _)) in &book {
        alike
            .entry((key(name, name_ru.as_deref()), unit.as_str()))
            .or_default()
            .push(*id);
    }
    let mut rows = Vec::new();
    for ids in alike.values() {
        let Some((name, name_ru, unit, _)) = book.get(&ids[0]).cloned() else {
            continue;
        };
        let controlled = ids.iter().any(|id| book.get(id).is_some_and(|m| m.3));
        let row = |(institution_id, quantity, patients)| MedicamentNeedRow {
            institution_id,
            name: name.clone(),
            name_ru: name_ru.clone(),
            unit: unit.clone(),
            controlled,
            quantity,
            patients,
        };
        if let [id] = ids.as_slice() {
            rows.extend(
                sums.iter()
                    .filter(|s| s.1 == *id)
                    .map(|&(inst, _, quantity, patients)| row((inst, quantity, patients))),
            );
        } else {
            let together: Vec<(i64, Option<f64>, i64)> = prescriptions::table
                .filter(prescriptions::institution_id.eq_any(institutions))
                .filter(prescriptions::medicament_id.eq_any(ids))
                .filter(prescriptions::prescribed_on.between(from, to))
                .filter(prescriptions::status.ne("cancelled"))
                .group_by(prescriptions::institution_id)
                .select((
                    prescriptions::institution_id,
                    sum(prescriptions::quantity),
                    count(prescriptions::patient_id).aggregate_distinct(),
                ))
                .load(conn)?;
            rows.extend(together.into_iter().map(row));
        }
    }
    Ok(rows)
}

/// Per (institution, medicament): the quantity and the distinct patients.
type MedicamentSums = Vec<(i64, i64, Option<f64>, i64)>;

/// One (institution, medicament) sum of [`medicament_sums_sqlite`].
#[derive(QueryableByName)]
struct MedicamentSum {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    institution_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    medicament_id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    quantity: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    patients: i64,
}

/// [`medicament_needs`]'s sums on SQLite, read from `prescriptions_institution_medicament`
/// alone: it holds every column the sums read, in the order of their groups, so SQLite steps
/// through it group by group. Named with `INDEXED BY` (which diesel cannot say) because the
/// planner, not knowing the period's bounds when the statement is prepared, guesses that the
/// date index narrows more, and then reads every prescription row of the period at a random
/// place: 3.0 s at 1.5M prescriptions, where this takes 0.4 s (bench/README.md).
fn medicament_sums_sqlite(
    conn: &mut diesel::SqliteConnection,
    institutions: &[i64],
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<MedicamentSums> {
    use diesel::sql_types::{BigInt, Date};
    if institutions.is_empty() {
        return Ok(Vec::new());
    }
    let places = vec!["?"; institutions.len()].join(", ");
    let mut query = diesel::sql_query(format!(
        "SELECT institution_id, medicament_id, SUM(quantity) AS quantity, \
         COUNT(DISTINCT patient_id) AS patients \
         FROM prescriptions INDEXED BY prescriptions_institution_medicament \
         WHERE institution_id IN ({places}) AND prescribed_on BETWEEN ? AND ? \
         AND status <> 'cancelled' \
         GROUP BY institution_id, medicament_id"
    ))
    .into_boxed::<diesel::sqlite::Sqlite>();
    for id in institutions {
        query = query.bind::<BigInt, _>(*id);
    }
    Ok(query
        .bind::<Date, _>(from)
        .bind::<Date, _>(to)
        .load::<MedicamentSum>(conn)?
        .into_iter()
        .map(|s| (s.institution_id, s.medicament_id, s.quantity, s.patients))
        .collect())
}

/// A report the server produced and signed.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = issued_reports)]
pub struct IssuedReport {
    pub sha256: String,
    pub kind: String,
    pub signature: String,
    pub parameters: String,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
}

/// Registers an issued report by its SHA-256. The same bytes issued again (the same request
/// within the minute the document names) are already registered with the same signature
/// (Ed25519 is deterministic): the first registration stands.
pub fn record_issued(conn: &mut DbConn, report: &IssuedReport) -> QueryResult<usize> {
    crate::per_backend!(conn, |c| diesel::insert_into(issued_reports::table)
        .values(report)
        .on_conflict_do_nothing()
        .execute(c))
}

pub fn find_issued(conn: &mut DbConn, sha256: &str) -> QueryResult<Option<IssuedReport>> {
    issued_reports::table
        .find(sha256)
        .select(IssuedReport::as_select())
        .first(conn)
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register of the summary's shape for the planner's statistics, in the proportions of
    /// the benchmark's (20 institutions, dozens of prescriptions per institution and
    /// medicament). Reference rows are left out: the foreign keys are off on this connection.
    const REGISTER: &str = "
        PRAGMA foreign_keys = OFF;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
        INSERT INTO patients (pseudonym, institution_id, passport, passport_key_version, sex,
            birth_year, diagnosis_id, care_form_id, status_id, registered_on, discharged_on,
            version, created_by, created_at, updated_by, updated_at)
        SELECT printf('P%015d', i), 1 + i % 20, 'sealed', 1, 'F', 1930 + i % 70, 1 + i % 50,
            1 + i % 4, 1, date('2018-01-01', '+' || (i % 3000) || ' days'),
            CASE WHEN i % 7 = 0 THEN date('2026-06-01') END,
            1, 1, '2026-01-01 00:00:00', 1, '2026-01-01 00:00:00'
        FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
        INSERT INTO prescriptions (number, institution_id, patient_id, prescribed_on,
            medicament_id, dose, dose_unit, route, frequency, quantity, start_on, prescriber_id,
            status, version, created_at, updated_by, updated_at)
        SELECT printf('2026-%06d', i), 1 + i % 20, 1 + i % 5000,
            date('2026-01-01', '+' || (i % 365) || ' days'), 1 + (i / 20) % 40, 1, 'mg', 'oral',
            'daily', 10, date('2026-01-01', '+' || (i % 365) || ' days'), 1,
            CASE WHEN i % 20 = 0 THEN 'cancelled' ELSE 'active' END,
            1, '2026-01-01 00:00:00', 1, '2026-01-01 00:00:00'
        FROM n;
        ANALYZE;";

    /// The summary's aggregates read the patients and the prescriptions through covering
    /// indexes only, never row by row (migration `covering_report_indexes`): at 1M patients and
    /// 5M prescriptions that was 80 s against a few. The statements are the report's own, as
    /// diesel sends them; the build has the planner stability guarantee, so the plan does not
    /// depend on the values bound at run time. The server gives the planner its statistics at
    /// start-up and every few seconds (`db::refresh_statistics`); here, `ANALYZE` does.
    #[test]
    fn the_summary_reads_only_covering_indexes() {
        use diesel::connection::SimpleConnection;
        let (_dir, mut conn) = crate::db::testing::migrated_sqlite("plans.db");
        conn.batch_execute(REGISTER).unwrap();
        let (from, to) = (
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        );
        let institutions = [1, 2, 3];
        let statements = crate::db::testing::plans_of(&mut conn, |conn| {
            movement(conn, &institutions, from, to).unwrap();
            by_icd10_block(conn, &institutions, from, to).unwrap();
            by_birth_year_sex(conn, &institutions, from, to).unwrap();
            by_care_form(conn, &institutions, from, to).unwrap();
            by_need(conn, &institutions, from, to, &|name, _| name.into()).unwrap();
            medicament_needs(conn, &institutions, from, to, &|name, _| name.into()).unwrap();
        });

        let mut checked = 0;
        for (sql, plan) in &statements {
            for step in plan {
                let reads = ["patients", "prescriptions"].iter().any(|table| {
                    step.starts_with(&format!("SEARCH {table} "))
                        || step.starts_with(&format!("SCAN {table} "))
                        || step == &format!("SCAN {table}")
                });
                if reads {
                    checked += 1;
                    assert!(
                        step.contains("USING COVERING INDEX"),
                        "{step}\nin the plan {plan:#?}\nof {sql}"
                    );
                }
            }
        }
        assert_eq!(
            checked, 6,
            "one read of a table per aggregate: {statements:#?}"
        );
    }
}
