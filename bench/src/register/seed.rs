//! Seeding: institutions and clinicians through the admin API, patients through the real
//! import endpoint (sealed passports, blind indexes), prescriptions directly through the storage
//! layer (there is no batch endpoint for them).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate};
use client_crypto::{BlindIndexBits, InstitutionKey, Pseudonym, UserKeyPair};
use diesel::Connection;
use palreg_server::db::models::prescriptions::{
    self, NewPrescription, Prescription, PrescriptionFields,
};
use palreg_server::db::{DbConn, Pool};
use serde_json::{Value, json};

use super::http::{self, agent};
use super::synth::{self, Books, Rng};

pub const CLINICIAN_PASSWORD: &str = "bench-clinician-password-1";
/// How often the clinician of [`import`] reads a patient while the import runs.
const READ_EVERY: Duration = Duration::from_millis(50);

/// One imported batch: the institution's index, the new ids, and its search probes.
type BatchResult = (usize, Vec<i64>, Vec<Probe>);

/// A seeded passport's surname token and its year of birth, for the searches.
#[derive(Debug, Clone)]
pub struct Probe {
    pub surname: String,
    pub birth_year: i32,
}
/// Search probes kept per institution (passports whose tokens the searches use).
const PROBES: usize = 256;

/// What a clinician's browser would know for one institution.
pub struct Institution {
    pub id: i64,
    pub user_id: i64,
    pub token: String,
    pub key: InstitutionKey,
    pub bits: BlindIndexBits,
    /// Patients to seed here.
    pub target: usize,
    pub patient_ids: Vec<i64>,
    /// Seeded passports to search for.
    pub probes: Vec<Probe>,
}

pub fn refs(base: &str, admin: &str, book: &str) -> anyhow::Result<Vec<(i64, String)>> {
    let list = http::get(&agent(), &format!("{base}/api/v1/refs/{book}"), Some(admin))?
        .expect(200, book)?;
    Ok(list
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["active"].as_bool() != Some(false))
                .filter_map(|e| Some((e["id"].as_i64()?, e["code"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

pub fn books(base: &str, admin: &str) -> anyhow::Result<Books> {
    let ids = |book: &str| -> anyhow::Result<Vec<i64>> {
        Ok(refs(base, admin, book)?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    };
    let books = Books {
        diagnoses: ids("diagnoses")?,
        districts: ids("districts")?,
        care_forms: ids("care-forms")?,
        needs: ids("needs")?,
        medicaments: ids("medicaments")?,
    };
    anyhow::ensure!(
        !books.diagnoses.is_empty() && !books.medicaments.is_empty() && !books.needs.is_empty(),
        "the reference books are empty"
    );
    Ok(books)
}

pub fn login(base: &str, login: &str, password: &str) -> anyhow::Result<String> {
    let r = http::post(
        &agent(),
        &format!("{base}/api/v1/auth/login"),
        None,
        &json!({"login": login, "password": password}),
    )?
    .expect(200, "login")?;
    r["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no access_token"))
}

/// An institution, its clinician (key pair published) and institution key version 1, as
/// `tests/clinic.rs` sets them up.
pub fn institution(
    base: &str,
    admin: &str,
    run: &str,
    k: usize,
    target: usize,
) -> anyhow::Result<Institution> {
    let a = agent();
    let code = format!("B{run}{k:03}");
    let id = http::post(
        &a,
        &format!("{base}/api/v1/refs/institutions"),
        Some(admin),
        &json!({"code": code, "name": format!("Bench hospital {k} ({run})")}),
    )?
    .expect(201, "create institution")?["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no institution id"))?;
    let login_name = format!("bench{run}.{k}");
    let user_id = http::post(
        &a,
        &format!("{base}/api/v1/admin/users"),
        Some(admin),
        &json!({
            "login": login_name,
            "full_name": format!("Bench clinician {k}"),
            "password": CLINICIAN_PASSWORD,
            "roles": ["user"],
            "institution_id": id,
        }),
    )?
    .expect(201, "create user")?["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no user id"))?;
    let token = login(base, &login_name, CLINICIAN_PASSWORD)?;
    let keys = UserKeyPair::generate()?;
    http::put(
        &a,
        &format!("{base}/api/v1/me/public-key"),
        Some(&token),
        &json!({"public_key": keys.public_key().encode()}),
    )?
    .expect(200, "publish public key")?;
    let key = InstitutionKey::generate(1)?;
    http::post(
        &a,
        &format!("{base}/api/v1/institutions/{id}/keys"),
        Some(&token),
        &json!({"version": 1, "envelope": key.wrap_for(keys.public_key(), user_id, id)?}),
    )?
    .expect(201, "create institution key")?;
    let bits = client_crypto::recommend_bits(target.max(4) as u64, &[])?.recommended();
    Ok(Institution {
        id,
        user_id,
        token,
        key,
        bits: BlindIndexBits::new(bits)?,
        target,
        patient_ids: Vec::with_capacity(target),
        probes: Vec::new(),
    })
}

/// Figures of the import.
pub struct ImportFigures {
    pub patients: usize,
    /// Everything: generation, encryption, JSON and the requests.
    pub wall: Duration,
    /// The time spent sending ready request bodies (the clients do nothing else meanwhile):
    /// the server's import throughput is `patients / sending`.
    pub sending: Duration,
    /// Client CPU time sealing passports and computing blind indexes (all threads).
    pub crypto: Duration,
    /// Client CPU time generating passports and serializing JSON (all threads).
    pub build: Duration,
    /// Time waiting on HTTP (all threads).
    pub http: Duration,
    /// Latency of each batch request (ms).
    pub batch_ms: Vec<f64>,
    /// Latency of each read by id (`GET /api/v1/patients/{id}`, ms) that a clinician made,
    /// one every [`READ_EVERY`], from start to end within a sending phase.
    pub read_ms: Vec<f64>,
}

fn tokens(inst: &Institution, p: &client_crypto::Passport) -> anyhow::Result<Vec<String>> {
    // As the clients index: each field at its own length (the date of birth's is shorter).
    let indexes = inst.key.passport_blind_indexes(p, inst.bits)?;
    Ok(indexes.iter().map(|i| i.to_token()).collect())
}

/// A request body ready to send.
struct Prepared {
    institution: usize,
    size: usize,
    body: Vec<u8>,
    probes: Vec<Probe>,
}

/// Generates, seals and serializes one batch of `size` patients of institution `k`.
fn prepare(
    insts: &[Institution],
    (k, first, size): (usize, usize, usize),
    books: &Books,
    today: NaiveDate,
    crypto: &mut Duration,
    build: &mut Duration,
) -> anyhow::Result<Prepared> {
    let inst = &insts[k];
    let mut rng = Rng::new(((inst.id as u64) << 32) | first as u64);
    let mut items = Vec::with_capacity(size);
    let mut probes = Vec::new();
    for n in 0..size {
        let t0 = Instant::now();
        let p = synth::patient(&mut rng, books, today);
        let t1 = Instant::now();
        let pseudonym = Pseudonym::generate()?;
        let sealed = inst.key.seal_passport(&p.passport, &pseudonym, inst.id)?;
        let toks = tokens(inst, &p.passport)?;
        let t2 = Instant::now();
        if (first + n) % (inst.target / PROBES).max(1) == 0 {
            probes.push(Probe {
                surname: toks[0].clone(),
                birth_year: p.passport.date_of_birth[..4].parse()?,
            });
        }
        items.push(json!({
            "pseudonym": pseudonym.as_str(),
            "passport": sealed,
            "blind_indexes": toks,
            "record": p.record,
        }));
        *build += t1 - t0 + t2.elapsed();
        *crypto += t2 - t1;
    }
    let t = Instant::now();
    let body = serde_json::to_vec(&json!({"patients": items}))?;
    *build += t.elapsed();
    Ok(Prepared {
        institution: k,
        size,
        body,
        probes,
    })
}

/// Runs `work` on items `0..n` from `threads` threads; the first error wins.
fn in_parallel<T: Send>(
    n: usize,
    threads: usize,
    work: impl Fn(usize) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(n));
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    match work(i) {
                        Ok(v) => {
                            if let Ok(mut o) = out.lock() {
                                o.push((i, v));
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut out = out.into_inner().unwrap_or_default();
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

/// Imports every institution's patients in batches of `batch` from `clients` threads. Works in
/// rounds: first the clients generate and seal a round of batches, then they send them, so the
/// sending phases measure the server alone (on a 2-core machine the client's encryption would
/// otherwise take the server's CPU).
///
/// Meanwhile a clinician of another institution reads patients imported earlier, one every
/// [`READ_EVERY`]: the audit entry of each read waits for the write turn behind the batches,
/// and the figures keep how long those reads took while batches were being sent.
pub fn import(
    base: &str,
    institutions: &mut [Institution],
    books: &Books,
    clients: usize,
    batch: usize,
    today: NaiveDate,
) -> anyhow::Result<ImportFigures> {
    let batch = batch.max(1);
    // Jobs interleave institutions so that parallel batches hit different ones.
    let mut jobs: Vec<(usize, usize, usize)> = Vec::new(); // (institution, first, size)
    let max_target = institutions.iter().map(|i| i.target).max().unwrap_or(0);
    for first in (0..max_target).step_by(batch) {
        for (k, inst) in institutions.iter().enumerate() {
            if first < inst.target {
                jobs.push((k, first, batch.min(inst.target - first)));
            }
        }
    }
    let total_patients: usize = institutions.iter().map(|i| i.target).sum();
    let url = format!("{base}/api/v1/patients/import");
    let insts: &[Institution] = institutions;
    let mut results: Vec<BatchResult> = Vec::new();
    let (mut crypto, mut build, mut http, mut sending) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let mut batch_ms = Vec::new();
    let mut done = 0;
    let start = Instant::now();
    // (institution, id) of patients the clinician may read; whether batches are being sent.
    let readable: Mutex<Vec<(usize, i64)>> = Mutex::new(Vec::new());
    let sending_now = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let read_ms: Mutex<Vec<f64>> = Mutex::new(Vec::new());
    std::thread::scope(|s| -> anyhow::Result<()> {
        s.spawn(|| {
            clinician_reads(base, insts, &readable, &sending_now, &finished, &read_ms);
        });
        let imported = (|| -> anyhow::Result<()> {
            for round in jobs.chunks(clients.max(1) * 4) {
                let prepared = in_parallel(round.len(), clients, |i| {
                    let (mut c, mut b) = (Duration::ZERO, Duration::ZERO);
                    let p = prepare(insts, round[i], books, today, &mut c, &mut b)?;
                    Ok((p, c, b))
                })?;
                let prepared: Vec<Prepared> = prepared
                    .into_iter()
                    .map(|(p, c, b)| {
                        crypto += c;
                        build += b;
                        p
                    })
                    .collect();
                let t = Instant::now();
                sending_now.store(true, Ordering::SeqCst);
                let sent = in_parallel(prepared.len(), clients, |i| {
                    let a = agent();
                    let p = &prepared[i];
                    let t = Instant::now();
                    let reply =
                        http::post_raw(&a, &url, Some(&insts[p.institution].token), &p.body)?
                            .expect(201, "import")?;
                    let elapsed = t.elapsed();
                    let ids: Vec<i64> = reply["ids"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_i64).collect())
                        .unwrap_or_default();
                    anyhow::ensure!(ids.len() == p.size, "import returned {} ids", ids.len());
                    Ok((ids, elapsed))
                });
                sending_now.store(false, Ordering::SeqCst);
                let sent = sent?;
                sending += t.elapsed();
                for (p, (ids, elapsed)) in prepared.into_iter().zip(sent) {
                    http += elapsed;
                    batch_ms.push(elapsed.as_secs_f64() * 1e3);
                    done += p.size;
                    if let Ok(mut r) = readable.lock() {
                        r.extend(ids.iter().step_by(97).map(|&id| (p.institution, id)));
                    }
                    results.push((p.institution, ids, p.probes));
                }
                if done % 50_000 < round.len() * batch {
                    eprintln!(
                        "  imported {done}/{total_patients} ({:.0}/s sending, {:.0}/s end to end)",
                        done as f64 / sending.as_secs_f64(),
                        done as f64 / start.elapsed().as_secs_f64()
                    );
                }
            }
            Ok(())
        })();
        finished.store(true, Ordering::SeqCst);
        imported
    })?;
    let wall = start.elapsed();
    for (k, ids, probes) in results {
        institutions[k].patient_ids.extend(ids);
        institutions[k].probes.extend(probes);
    }
    Ok(ImportFigures {
        patients: total_patients,
        wall,
        sending,
        crypto,
        build,
        http,
        batch_ms,
        read_ms: read_ms.into_inner().unwrap_or_default(),
    })
}

/// The clinician of [`import`]: until `finished`, reads a patient every [`READ_EVERY`] as its
/// institution's clinician (the import's own token: any institution's read takes the same
/// write turn for its audit entry) and keeps the latency of each read made wholly within a
/// sending phase. A failed read is printed and ends the readings.
fn clinician_reads(
    base: &str,
    insts: &[Institution],
    readable: &Mutex<Vec<(usize, i64)>>,
    sending_now: &AtomicBool,
    finished: &AtomicBool,
    read_ms: &Mutex<Vec<f64>>,
) {
    let a = agent();
    let mut rng = Rng::new(0x0ead);
    while !finished.load(Ordering::SeqCst) {
        std::thread::sleep(READ_EVERY);
        let pick = readable
            .lock()
            .ok()
            .and_then(|r| (!r.is_empty()).then(|| r[rng.below(r.len())]));
        let Some((k, id)) = pick else { continue };
        let during = sending_now.load(Ordering::SeqCst);
        let t = Instant::now();
        let url = format!("{base}/api/v1/patients/{id}");
        match http::get(&a, &url, Some(&insts[k].token)).and_then(|r| r.expect(200, "read")) {
            Ok(_) if during && sending_now.load(Ordering::SeqCst) => {
                if let Ok(mut m) = read_ms.lock() {
                    m.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("  a read during the import failed: {e:#}");
                return;
            }
        }
    }
}

/// Writes `count` prescriptions spread over the institutions' patients straight through the
/// storage layer (the row and its "created" version, as the endpoint writes them), in
/// transactions of `per_tx` rows. Not HTTP: there is no batch endpoint for prescriptions.
pub fn prescriptions_direct(
    pool: &Pool,
    institutions: &[Institution],
    medicaments: &[i64],
    count: usize,
    today: NaiveDate,
) -> anyhow::Result<Duration> {
    const PER_TX: usize = 20_000;
    const ROUTES: [&str; 4] = ["oral", "subcutaneous", "transdermal", "intravenous"];
    const UNITS: [&str; 3] = ["mg", "ml", "mcg/h"];
    const FREQ: [&str; 4] = [
        "1 раз в день",
        "2 раза в день",
        "каждые 72 ч",
        "по требованию",
    ];
    let start = Instant::now();
    let mut pooled = pool.get()?;
    let conn: &mut DbConn = &mut pooled;
    let mut rng = Rng::new(0x5eed);
    let k = institutions.len();
    // Numbers are `YYYY-NNNNNN`, unique per institution and year.
    let mut counters: Vec<std::collections::HashMap<i32, u64>> = vec![Default::default(); k];
    let mut written = 0usize;
    while written < count {
        let n = PER_TX.min(count - written);
        conn.transaction::<(), diesel::result::Error, _>(|conn| {
            for i in 0..n {
                let ki = (written + i) % k;
                let inst = &institutions[ki];
                if inst.patient_ids.is_empty() {
                    continue;
                }
                let patient_id = *rng.pick(&inst.patient_ids);
                let prescribed_on = today - chrono::Duration::days(rng.below(730) as i64);
                let year = prescribed_on.year();
                let c = counters[ki].entry(year).or_insert(0);
                *c += 1;
                let number = format!("{year}-{c:06}");
                let fields = PrescriptionFields {
                    prescribed_on,
                    medicament_id: *rng.pick(medicaments),
                    dose: (1 + rng.below(100)) as f64,
                    dose_unit: rng.pick(&UNITS).to_string(),
                    route: rng.pick(&ROUTES).to_string(),
                    frequency: rng.pick(&FREQ).to_string(),
                    quantity: (1 + rng.below(60)) as f64,
                    start_on: prescribed_on,
                    end_on: Some(prescribed_on + chrono::Duration::days(rng.below(60) as i64)),
                };
                let now = palreg_server::db::models::now();
                let id = prescriptions::insert(
                    conn,
                    &NewPrescription {
                        number: &number,
                        institution_id: inst.id,
                        patient_id,
                        fields: fields.clone(),
                        prescriber_id: inst.user_id,
                        status: "active",
                        version: 1,
                        created_at: now,
                        updated_by: inst.user_id,
                        updated_at: now,
                    },
                )?;
                let row = Prescription {
                    id,
                    number,
                    institution_id: inst.id,
                    patient_id,
                    prescribed_on: fields.prescribed_on,
                    medicament_id: fields.medicament_id,
                    dose: fields.dose,
                    dose_unit: fields.dose_unit,
                    route: fields.route,
                    frequency: fields.frequency,
                    quantity: fields.quantity,
                    start_on: fields.start_on,
                    end_on: fields.end_on,
                    prescriber_id: inst.user_id,
                    status: "active".into(),
                    cancel_reason: None,
                    version: 1,
                    created_at: now,
                    updated_by: inst.user_id,
                    updated_at: now,
                };
                prescriptions::insert_version(conn, &row, "created")?;
            }
            Ok(())
        })?;
        written += n;
        if written % 500_000 < n {
            eprintln!(
                "  prescriptions {written}/{count} ({:.0}/s)",
                written as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(start.elapsed())
}
