//! The bare SQL aggregate: the fewest plain SQL queries that compute every number the summary
//! report shows, run straight on a connection (no HTTP, no auth, no rendering, no audit). One
//! pass over the patients for the register movement (conditional sums), one GROUP BY per
//! breakdown of the patients on the register in the period, one over the prescriptions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use palreg_server::db::DbConn;
use serde_json::Value;

#[derive(QueryableByName)]
struct Movement {
    #[diesel(sql_type = BigInt)]
    inst: i64,
    #[diesel(sql_type = BigInt)]
    at_start: i64,
    #[diesel(sql_type = BigInt)]
    at_end: i64,
    #[diesel(sql_type = BigInt)]
    new: i64,
    #[diesel(sql_type = BigInt)]
    discharged: i64,
    #[diesel(sql_type = BigInt)]
    deceased: i64,
}

#[derive(QueryableByName)]
struct Keyed {
    #[diesel(sql_type = BigInt)]
    inst: i64,
    #[diesel(sql_type = Nullable<Text>)]
    key: Option<String>,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A count keyed by a reference book's id (`None`: not set).
#[derive(QueryableByName)]
struct IdKeyed {
    #[diesel(sql_type = BigInt)]
    inst: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    key: Option<i64>,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct YearSex {
    #[diesel(sql_type = BigInt)]
    inst: i64,
    #[diesel(sql_type = Integer)]
    birth_year: i32,
    #[diesel(sql_type = Text)]
    sex: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Med {
    #[diesel(sql_type = BigInt)]
    inst: i64,
    #[diesel(sql_type = BigInt)]
    medicament_id: i64,
    #[diesel(sql_type = Double)]
    quantity: f64,
    #[diesel(sql_type = BigInt)]
    patients: i64,
}

fn load<T>(conn: &mut DbConn, sql: &str) -> QueryResult<Vec<T>>
where
    T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
{
    match conn {
        DbConn::Sqlite(c) => diesel::sql_query(sql).load(c),
        DbConn::Pg(c) => diesel::sql_query(sql).load(c),
    }
}

/// The SQL texts, for a period and a set of institutions (numbers and dates only: literals).
pub struct Queries {
    pub movement: String,
    pub icd10: String,
    pub year_sex: String,
    pub care_form: String,
    pub needs: String,
    pub medicaments: String,
}

impl Queries {
    pub fn new(institutions: &[i64], from: NaiveDate, to: NaiveDate) -> Self {
        let ids: Vec<String> = institutions.iter().map(i64::to_string).collect();
        let ids = ids.join(",");
        let (f, t) = (format!("'{from}'"), format!("'{to}'"));
        // On the register at some time in [from, to]: registered by `to`, not gone before `from`.
        let in_period = format!(
            "p.institution_id IN ({ids}) AND p.registered_on <= {t} \
             AND (p.discharged_on IS NULL OR p.discharged_on >= {f}) \
             AND (p.deceased_on IS NULL OR p.deceased_on >= {f})"
        );
        Queries {
            movement: format!(
                "SELECT p.institution_id AS inst, \
                 SUM(CASE WHEN p.registered_on < {f} AND (p.discharged_on IS NULL OR p.discharged_on >= {f}) AND (p.deceased_on IS NULL OR p.deceased_on >= {f}) THEN 1 ELSE 0 END) AS at_start, \
                 SUM(CASE WHEN p.registered_on <= {t} AND (p.discharged_on IS NULL OR p.discharged_on > {t}) AND (p.deceased_on IS NULL OR p.deceased_on > {t}) THEN 1 ELSE 0 END) AS at_end, \
                 SUM(CASE WHEN p.registered_on BETWEEN {f} AND {t} THEN 1 ELSE 0 END) AS new, \
                 SUM(CASE WHEN p.discharged_on BETWEEN {f} AND {t} THEN 1 ELSE 0 END) AS discharged, \
                 SUM(CASE WHEN p.deceased_on BETWEEN {f} AND {t} THEN 1 ELSE 0 END) AS deceased \
                 FROM patients p WHERE p.institution_id IN ({ids}) GROUP BY p.institution_id"
            ),
            icd10: format!(
                "SELECT p.institution_id AS inst, d.block AS key, COUNT(*) AS n \
                 FROM patients p JOIN diagnoses d ON d.id = p.diagnosis_id \
                 WHERE {in_period} GROUP BY p.institution_id, d.block"
            ),
            year_sex: format!(
                "SELECT p.institution_id AS inst, p.birth_year, p.sex, COUNT(*) AS n \
                 FROM patients p WHERE {in_period} \
                 GROUP BY p.institution_id, p.birth_year, p.sex"
            ),
            // By the book's id (narrow keys, no join); named from the book after timing.
            care_form: format!(
                "SELECT p.institution_id AS inst, p.care_form_id AS key, COUNT(*) AS n \
                 FROM patients p \
                 WHERE {in_period} GROUP BY p.institution_id, p.care_form_id"
            ),
            needs: format!(
                "SELECT p.institution_id AS inst, pn.need_id AS key, COUNT(*) AS n \
                 FROM patients p JOIN patient_needs pn ON pn.patient_id = p.id \
                 WHERE {in_period} GROUP BY p.institution_id, pn.need_id"
            ),
            medicaments: format!(
                "SELECT r.institution_id AS inst, r.medicament_id, SUM(r.quantity) AS quantity, \
                 COUNT(DISTINCT r.patient_id) AS patients \
                 FROM prescriptions r \
                 WHERE r.institution_id IN ({ids}) AND r.prescribed_on BETWEEN {f} AND {t} \
                 AND r.status <> 'cancelled' \
                 GROUP BY r.institution_id, r.medicament_id"
            ),
        }
    }

    pub fn labelled(&self) -> [(&'static str, &str); 6] {
        [
            ("movement (one pass)", &self.movement),
            ("ICD-10 blocks", &self.icd10),
            ("birth year × sex", &self.year_sex),
            ("care forms", &self.care_form),
            ("needs", &self.needs),
            ("medicaments", &self.medicaments),
        ]
    }
}

/// Every number the report shows, summed over the institutions (what the check compares).
#[derive(Default, Debug)]
pub struct Totals {
    pub register: BTreeMap<&'static str, u64>,
    pub icd10: BTreeMap<String, u64>,
    /// Patients in the period (the sum of the birth-year × sex groups).
    pub population: u64,
    /// care form id (`None`: not set) → patients
    pub care_forms: BTreeMap<Option<i64>, u64>,
    /// need id → patients
    pub needs: BTreeMap<i64, u64>,
    /// medicament id → (quantity, patients)
    pub medicaments: BTreeMap<i64, (f64, u64)>,
}

/// One run of the bare aggregate: the totals and the time of each query.
pub fn run(conn: &mut DbConn, q: &Queries) -> anyhow::Result<(Totals, [Duration; 6])> {
    let mut times = [Duration::ZERO; 6];
    let mut t = Totals::default();
    let timed = |i: usize, times: &mut [Duration; 6], start: Instant| times[i] = start.elapsed();

    let s = Instant::now();
    let rows: Vec<Movement> = load(conn, &q.movement)?;
    timed(0, &mut times, s);
    for r in rows {
        let _ = r.inst;
        for (k, v) in [
            ("on_register_at_start", r.at_start),
            ("on_register_at_end", r.at_end),
            ("newly_registered", r.new),
            ("discharged", r.discharged),
            ("deceased", r.deceased),
        ] {
            *t.register.entry(k).or_default() += v.unsigned_abs();
        }
    }
    let s = Instant::now();
    let rows: Vec<Keyed> = load(conn, &q.icd10)?;
    timed(1, &mut times, s);
    for r in rows {
        let _ = r.inst;
        *t.icd10.entry(r.key.unwrap_or_default()).or_default() += r.n.unsigned_abs();
    }
    let s = Instant::now();
    let rows: Vec<YearSex> = load(conn, &q.year_sex)?;
    timed(2, &mut times, s);
    for r in rows {
        let _ = (r.inst, r.birth_year, r.sex);
        t.population += r.n.unsigned_abs();
    }
    let s = Instant::now();
    let rows: Vec<IdKeyed> = load(conn, &q.care_form)?;
    timed(3, &mut times, s);
    for r in rows {
        let _ = r.inst;
        *t.care_forms.entry(r.key).or_default() += r.n.unsigned_abs();
    }
    let s = Instant::now();
    let rows: Vec<IdKeyed> = load(conn, &q.needs)?;
    timed(4, &mut times, s);
    for r in rows {
        let _ = r.inst;
        *t.needs.entry(r.key.unwrap_or_default()).or_default() += r.n.unsigned_abs();
    }
    let s = Instant::now();
    let rows: Vec<Med> = load(conn, &q.medicaments)?;
    timed(5, &mut times, s);
    for r in rows {
        let _ = r.inst;
        let e = t.medicaments.entry(r.medicament_id).or_default();
        e.0 += r.quantity;
        e.1 += r.patients.unsigned_abs();
    }
    Ok((t, times))
}

/// The outcome of [`check`].
#[derive(Default)]
pub struct Check {
    /// Numbers compared.
    pub compared: usize,
    /// Numbers suppressed in the report, so not compared.
    pub skipped: usize,
    pub mismatches: Vec<String>,
}

impl Check {
    fn count(&mut self, what: String, shown: &Value, expected: u64) {
        match shown.as_u64() {
            Some(v) => {
                self.compared += 1;
                if v != expected {
                    self.mismatches
                        .push(format!("{what}: report {v}, bare SQL {expected}"));
                }
            }
            None => self.skipped += 1,
        }
    }
}

/// English names by id of the books the report names its rows by (its row keys).
#[derive(Default)]
pub struct Names {
    pub medicaments: BTreeMap<i64, String>,
    pub care_forms: BTreeMap<i64, String>,
    pub needs: BTreeMap<i64, String>,
}

/// Sums counts keyed by id into counts keyed by the name of that id (`None`: the report's
/// "—"); an id missing from the book keeps its number under a name no row has.
fn by_name<K: Copy + std::fmt::Debug>(
    counts: &BTreeMap<K, u64>,
    name: impl Fn(K) -> Option<String>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (&id, &n) in counts {
        let key = name(id).unwrap_or_else(|| format!("(no name for {id:?})"));
        *out.entry(key).or_default() += n;
    }
    out
}

/// Compares the report's JSON totals (the `total` column of every table) with the bare
/// aggregate's, named as the report names its rows.
pub fn check(json: &Value, bare: &Totals, names: &Names) -> Check {
    let s = &json["summary"];
    let mut c = Check::default();
    let rows = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let care_forms = by_name(&bare.care_forms, |id: Option<i64>| match id {
        None => Some("—".to_string()),
        Some(id) => names.care_forms.get(&id).cloned(),
    });
    let needs = by_name(&bare.needs, |id: i64| names.needs.get(&id).cloned());
    for r in rows(&s["register"]) {
        let key = r["key"].as_str().unwrap_or_default().to_string();
        let expected = bare.register.get(key.as_str()).copied().unwrap_or(0);
        c.count(format!("register {key}"), &r["total"], expected);
    }
    for (table, map) in [
        ("icd10_blocks", &bare.icd10),
        ("care_forms", &care_forms),
        ("needs", &needs),
    ] {
        let report_rows = rows(&s[table]["rows"]);
        if report_rows.len() != map.len() {
            c.mismatches.push(format!(
                "{table}: report has {} rows, bare SQL {}",
                report_rows.len(),
                map.len()
            ));
        }
        for r in report_rows {
            let key = r["key"].as_str().unwrap_or_default().to_string();
            let expected = map.get(&key).copied().unwrap_or(0);
            c.count(format!("{table} {key}"), &r["total"], expected);
        }
    }
    // The age × sex table's grand total is the population in the period.
    c.count(
        "age_sex grand total".into(),
        &s["age_sex"]["totals"]["total"],
        bare.population,
    );
    let mut by_name: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
    for (id, (q, p)) in &bare.medicaments {
        if let Some(name) = names.medicaments.get(id) {
            let e = by_name.entry(name.as_str()).or_default();
            e.0 += q;
            e.1 += p;
        }
    }
    let mut report_meds = 0usize;
    for list in ["medicaments", "controlled_medicaments"] {
        for r in rows(&s[list]) {
            report_meds += 1;
            let name = r["medicament"].as_str().unwrap_or_default();
            let (q, p) = by_name.get(name).copied().unwrap_or_default();
            c.count(format!("{list} {name} patients"), &r["patients_total"], p);
            match r["quantity_total"]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
            {
                Some(v) => {
                    c.compared += 1;
                    if (v - q).abs() > 0.001 {
                        c.mismatches
                            .push(format!("{list} {name} quantity: report {v}, bare SQL {q}"));
                    }
                }
                None => c.skipped += 1,
            }
        }
    }
    if report_meds != by_name.len() {
        c.mismatches.push(format!(
            "medicaments: report has {report_meds} rows, bare SQL {}",
            by_name.len()
        ));
    }
    c
}
