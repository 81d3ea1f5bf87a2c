//! Seeding for the summary bench: institutions, clinicians and the ministry user through the
//! admin API; the non-identifying register (patients, their needs, prescriptions) straight
//! through SQL in multi-row inserts, big transactions. The summary report never reads a
//! passport, a blind index or a version row, so patients carry one shape-valid sealed
//! passport envelope (a real one, of the real size, sealed once under a throwaway key) and no
//! blind indexes or versions.

use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use palreg_server::db::DbConn;
use palreg_server::db::models::patients::NeedIds;
use palreg_server::db::schema::{
    care_forms, diagnoses, districts, medicaments, needs, patient_needs, patient_statuses,
    patients, prescriptions, settings,
};

/// Rows per INSERT statement (19 columns: below SQLite's 32 766 bound parameters).
const ROWS_PER_STATEMENT: usize = 1000;
/// Rows per transaction.
const ROWS_PER_TX: usize = 50_000;
/// The `settings` row that records what a kept database holds.
pub const MARKER: &str = "bench.summary.seed";

/// xorshift64*: fast, seedable; deterministic data for the same sizes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Skewed towards the start of the range (a few diagnoses are very common).
    pub fn skewed(&mut self, n: usize) -> usize {
        self.below(n) * self.below(n) / n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What the seeded register holds, recorded in the database for `--keep` reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub patients: usize,
    pub prescriptions: usize,
    pub institutions: Vec<i64>,
    /// The date the register was seeded "on": the reporting year ends here.
    pub today: NaiveDate,
}

impl Marker {
    pub fn encode(&self) -> String {
        let ids: Vec<String> = self.institutions.iter().map(i64::to_string).collect();
        format!(
            "patients={};prescriptions={};today={};institutions={}",
            self.patients,
            self.prescriptions,
            self.today,
            ids.join(",")
        )
    }

    pub fn decode(text: &str) -> anyhow::Result<Self> {
        let mut m = Marker {
            patients: 0,
            prescriptions: 0,
            institutions: Vec::new(),
            today: NaiveDate::MIN,
        };
        for part in text.split(';') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("bad marker {text}"))?;
            match k {
                "patients" => m.patients = v.parse()?,
                "prescriptions" => m.prescriptions = v.parse()?,
                "today" => m.today = v.parse()?,
                "institutions" => {
                    m.institutions = v.split(',').map(str::parse).collect::<Result<_, _>>()?;
                }
                _ => {}
            }
        }
        Ok(m)
    }
}

pub fn read_marker(conn: &mut DbConn) -> anyhow::Result<Option<Marker>> {
    let v: Option<String> = settings::table
        .filter(settings::name.eq(MARKER))
        .select(settings::value)
        .first(conn)
        .optional()?;
    v.map(|v| Marker::decode(&v)).transpose()
}

pub fn write_marker(conn: &mut DbConn, m: &Marker) -> anyhow::Result<()> {
    diesel::insert_into(settings::table)
        .values((settings::name.eq(MARKER), settings::value.eq(m.encode())))
        .execute(conn)?;
    Ok(())
}

/// The reference books' ids, as the seed needs them.
pub struct Books {
    pub diagnoses: Vec<i64>,
    pub districts: Vec<i64>,
    pub care_forms: Vec<i64>,
    pub needs: Vec<i64>,
    /// (id, controlled)
    pub medicaments: Vec<(i64, bool)>,
    pub registered: i64,
    pub discharged: i64,
    pub deceased: i64,
}

pub fn books(conn: &mut DbConn) -> anyhow::Result<Books> {
    let statuses: Vec<(i64, String)> = patient_statuses::table
        .select((patient_statuses::id, patient_statuses::code))
        .load(conn)?;
    let status = |code: &str| {
        statuses
            .iter()
            .find(|(_, c)| c == code)
            .map(|(id, _)| *id)
            .ok_or_else(|| anyhow::anyhow!("no patient status {code}"))
    };
    let b = Books {
        diagnoses: diagnoses::table
            .select(diagnoses::id)
            .order(diagnoses::code)
            .load(conn)?,
        districts: districts::table.select(districts::id).load(conn)?,
        care_forms: care_forms::table.select(care_forms::id).load(conn)?,
        needs: needs::table.select(needs::id).load(conn)?,
        medicaments: medicaments::table
            .select((medicaments::id, medicaments::controlled))
            .order(medicaments::code)
            .load(conn)?,
        registered: status("registered")?,
        discharged: status("discharged")?,
        deceased: status("deceased")?,
    };
    anyhow::ensure!(
        !b.diagnoses.is_empty() && !b.medicaments.is_empty() && !b.needs.is_empty(),
        "the reference books are empty"
    );
    Ok(b)
}

#[derive(Insertable)]
#[diesel(table_name = patients, treat_none_as_default_value = false)]
struct PatientRow<'a> {
    id: i64,
    pseudonym: String,
    institution_id: i64,
    passport: &'a str,
    passport_key_version: i32,
    sex: &'static str,
    birth_year: i32,
    district_id: Option<i64>,
    diagnosis_id: i64,
    care_form_id: Option<i64>,
    status_id: i64,
    registered_on: NaiveDate,
    discharged_on: Option<NaiveDate>,
    deceased_on: Option<NaiveDate>,
    version: i32,
    created_by: i64,
    created_at: NaiveDateTime,
    updated_by: i64,
    updated_at: NaiveDateTime,
    /// The row's copy of its needs (`NeedIds::to_column`), as the server writes it.
    needs: String,
}

#[derive(Insertable)]
#[diesel(table_name = patient_needs)]
struct NeedRow {
    patient_id: i64,
    need_id: i64,
}

#[derive(Insertable)]
#[diesel(table_name = prescriptions, treat_none_as_default_value = false)]
struct PrescriptionRow {
    number: String,
    institution_id: i64,
    patient_id: i64,
    prescribed_on: NaiveDate,
    medicament_id: i64,
    dose: f64,
    dose_unit: &'static str,
    route: &'static str,
    frequency: &'static str,
    quantity: f64,
    start_on: NaiveDate,
    end_on: Option<NaiveDate>,
    prescriber_id: i64,
    status: &'static str,
    cancel_reason: Option<&'static str>,
    version: i32,
    created_at: NaiveDateTime,
    updated_by: i64,
    updated_at: NaiveDateTime,
}

/// Multi-row INSERTs of `rows` into `table`, `ROWS_PER_STATEMENT` at a time, on the backend's
/// own connection type (batch inserts are per backend in diesel).
macro_rules! insert_chunks {
    ($conn:expr, $table:expr, $rows:expr) => {{
        let mut n = 0usize;
        for chunk in $rows.chunks(ROWS_PER_STATEMENT) {
            n += match $conn {
                DbConn::Sqlite(c) => diesel::insert_into($table).values(chunk).execute(c)?,
                DbConn::Pg(c) => diesel::insert_into($table).values(chunk).execute(c)?,
            };
        }
        n
    }};
}

/// A clinician of an institution: the prescriber and author of its rows.
pub struct Clinic {
    pub id: i64,
    pub user_id: i64,
}

/// Figures of the seeding.
pub struct Seeded {
    pub patients: Duration,
    pub needs: usize,
    pub prescriptions: Duration,
    pub analyze: Duration,
}

/// Tunes the seeding connection for bulk loading (its own session only).
pub fn bulk_session(conn: &mut DbConn) -> anyhow::Result<()> {
    match conn {
        // A big page cache for the index maintenance; no fsync per commit (a crash during
        // seeding loses the bench database, nothing else).
        DbConn::Sqlite(c) => {
            c.batch_execute("PRAGMA cache_size = -1000000; PRAGMA synchronous = OFF;")?
        }
        DbConn::Pg(c) => c.batch_execute("SET synchronous_commit = off;")?,
    }
    Ok(())
}

/// Seeds `patients` patients (round-robin over the institutions, so an institution's rows are
/// spread over the whole table as concurrent registration leaves them) with 0–3 needs each,
/// and `count` prescriptions dated within the year that ends on `today`.
#[allow(clippy::too_many_arguments)]
pub fn register(
    conn: &mut DbConn,
    clinics: &[Clinic],
    books: &Books,
    passport: &str,
    patients_n: usize,
    count: usize,
    today: NaiveDate,
) -> anyhow::Result<Seeded> {
    let now = palreg_server::db::models::now();
    let first_id: i64 = patients::table
        .select(diesel::dsl::max(patients::id))
        .first::<Option<i64>>(conn)?
        .unwrap_or(0)
        + 1;
    let k = clinics.len();
    let mut rng = Rng::new(0x5eed_0001);
    // Per institution: the ids of its patients (for prescriptions).
    let mut owned: Vec<Vec<i64>> = vec![Vec::with_capacity(patients_n / k + 1); k];

    let start = Instant::now();
    let mut needs_written = 0usize;
    let mut done = 0usize;
    while done < patients_n {
        let n = ROWS_PER_TX.min(patients_n - done);
        let mut rows = Vec::with_capacity(n);
        let mut need_rows = Vec::with_capacity(n);
        for i in done..done + n {
            let ki = i % k;
            let c = &clinics[ki];
            let id = first_id + i as i64;
            owned[ki].push(id);
            let roll = rng.below(1000);
            let sex = match roll {
                0..5 => "U",
                5..485 => "M",
                _ => "F",
            };
            // Palliative patients are mostly old: birth years 1925..2005, skewed older.
            let birth_year = 1925 + rng.skewed(81) as i32;
            // Registered over the last eight years; 70 % still on the register, 15 %
            // discharged, 15 % deceased within a year of registration (never in the future).
            let registered_on = today - chrono::Duration::days(rng.below(2920) as i64);
            let gone = (registered_on + chrono::Duration::days(rng.below(365) as i64)).min(today);
            let (status_id, discharged_on, deceased_on) = match rng.below(100) {
                0..70 => (books.registered, None, None),
                70..85 => (books.discharged, Some(gone), None),
                _ => (books.deceased, None, Some(gone)),
            };
            let mut row = PatientRow {
                id,
                pseudonym: pseudonym(&mut rng),
                institution_id: c.id,
                passport,
                passport_key_version: 1,
                sex,
                birth_year,
                district_id: (rng.below(20) != 0).then(|| *rng.pick(&books.districts)),
                diagnosis_id: books.diagnoses[rng.skewed(books.diagnoses.len())],
                care_form_id: (rng.below(20) != 0).then(|| *rng.pick(&books.care_forms)),
                status_id,
                registered_on,
                discharged_on,
                deceased_on,
                version: 1,
                created_by: c.user_id,
                created_at: now,
                updated_by: c.user_id,
                updated_at: now,
                // Set below: the needs are drawn after the row's fields, so that a seed gives
                // the register it gave before the row kept its needs.
                needs: String::new(),
            };
            let mut mine: Vec<i64> = Vec::new();
            for _ in 0..rng.below(4) {
                let need = *rng.pick(&books.needs);
                if !mine.contains(&need) {
                    mine.push(need);
                    need_rows.push(NeedRow {
                        patient_id: id,
                        need_id: need,
                    });
                }
            }
            row.needs = NeedIds::new(&mine).to_column();
            rows.push(row);
        }
        conn.transaction::<_, anyhow::Error, _>(|conn| {
            insert_chunks!(conn, patients::table, rows);
            needs_written += insert_chunks!(conn, patient_needs::table, need_rows);
            Ok(())
        })?;
        done += n;
        if done % 200_000 < n {
            eprintln!(
                "  patients {done}/{patients_n} ({:.0}/s)",
                done as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    if let DbConn::Pg(c) = conn {
        // Ids were given explicitly: move the identity on past them.
        c.batch_execute(
            "SELECT setval(pg_get_serial_sequence('patients', 'id'), (SELECT max(id) FROM patients));",
        )?;
    }
    let patients_took = start.elapsed();

    const ROUTES: [&str; 4] = ["oral", "subcutaneous", "transdermal", "intravenous"];
    const UNITS: [&str; 3] = ["mg", "ml", "mcg/h"];
    const FREQ: [&str; 4] = [
        "1 раз в день",
        "2 раза в день",
        "каждые 72 ч",
        "по требованию",
    ];
    let controlled: Vec<i64> = books
        .medicaments
        .iter()
        .filter(|(_, c)| *c)
        .map(|(id, _)| *id)
        .collect();
    let all_meds: Vec<i64> = books.medicaments.iter().map(|(id, _)| *id).collect();
    let start = Instant::now();
    // Numbers are `YYYY-NNNNNNN`, unique per institution and year.
    let mut counters: Vec<std::collections::HashMap<i32, u64>> = vec![Default::default(); k];
    let mut done = 0usize;
    while done < count {
        let n = ROWS_PER_TX.min(count - done);
        let mut rows = Vec::with_capacity(n);
        for i in done..done + n {
            let ki = i % k;
            let c = &clinics[ki];
            let patient_id = *rng.pick(&owned[ki]);
            let prescribed_on = today - chrono::Duration::days(rng.below(365) as i64);
            let year = prescribed_on.year();
            let counter = counters[ki].entry(year).or_insert(0);
            *counter += 1;
            // A third of palliative prescriptions are controlled analgesics.
            let medicament_id = if !controlled.is_empty() && rng.below(3) == 0 {
                *rng.pick(&controlled)
            } else {
                *rng.pick(&all_meds)
            };
            let (status, cancel_reason) = match rng.below(100) {
                0..5 => ("cancelled", Some("bench: cancelled")),
                5..45 => ("active", None),
                _ => ("completed", None),
            };
            rows.push(PrescriptionRow {
                number: format!("{year}-{counter:07}"),
                institution_id: c.id,
                patient_id,
                prescribed_on,
                medicament_id,
                dose: (1 + rng.below(100)) as f64,
                dose_unit: UNITS[rng.below(UNITS.len())],
                route: ROUTES[rng.below(ROUTES.len())],
                frequency: FREQ[rng.below(FREQ.len())],
                // Some quantities with fractions (exact to thousandths in the report).
                quantity: (1 + rng.below(60)) as f64 + [0.0, 0.5, 0.25][rng.below(3)],
                start_on: prescribed_on,
                end_on: Some(prescribed_on + chrono::Duration::days(rng.below(60) as i64)),
                prescriber_id: c.user_id,
                status,
                cancel_reason,
                version: 1,
                created_at: now,
                updated_by: c.user_id,
                updated_at: now,
            });
        }
        conn.transaction::<_, anyhow::Error, _>(|conn| {
            insert_chunks!(conn, prescriptions::table, rows);
            Ok(())
        })?;
        done += n;
        if done % 500_000 < n {
            eprintln!(
                "  prescriptions {done}/{count} ({:.0}/s)",
                done as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    let prescriptions_took = start.elapsed();
    let start = Instant::now();
    analyze(conn)?;
    Ok(Seeded {
        patients: patients_took,
        needs: needs_written,
        prescriptions: prescriptions_took,
        analyze: start.elapsed(),
    })
}

/// Planner statistics after a bulk load (PostgreSQL's autovacuum would get there later;
/// SQLite's `ANALYZE` is what `PRAGMA optimize` runs).
pub fn analyze(conn: &mut DbConn) -> anyhow::Result<()> {
    match conn {
        DbConn::Sqlite(c) => c.batch_execute("ANALYZE;")?,
        DbConn::Pg(c) => c.batch_execute("ANALYZE;")?,
    }
    Ok(())
}

/// A pseudonym of the register's shape: 16 characters of the Crockford base32 alphabet.
fn pseudonym(rng: &mut Rng) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut bits = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
    (0..16)
        .map(|_| {
            let c = ALPHABET[(bits & 31) as usize];
            bits >>= 5;
            char::from(c)
        })
        .collect()
}
