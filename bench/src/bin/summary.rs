//! The summary-report benchmark (issue #5): seeds a register of non-identifying rows straight
//! through SQL, then times `GET /api/v1/reports/summary.pdf` (and `.json`) for one year over all
//! institutions as a ministry user, against the bare SQL aggregate of the same numbers measured
//! in alternating rounds of the same run. See bench/README.md.

#[path = "../summary/bare.rs"]
mod bare;
#[path = "../summary/seed.rs"]
mod seed;

use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate};
use clap::Parser;
use client_crypto::{InstitutionKey, Passport, Pseudonym, Sex};
use diesel::prelude::*;
use palreg_bench::server::{self, ADMIN_PASSWORD, RegisterFlags, Server};
use palreg_server::db::models::refs;
use palreg_server::db::models::reports as aggregates;
use palreg_server::db::schema::patients;
use palreg_server::db::{DatabaseUrl, DbConn};
use serde_json::{Value, json};

const USER_PASSWORD: &str = "bench-user-password-1";
const MINISTRY_LOGIN: &str = "bench.ministry";
/// The target of issue #5: the report's total time at most this multiple of the bare aggregate.
const TARGET: f64 = 1.5;

/// Seeds a register and times the summary report against the bare SQL aggregate.
#[derive(Parser, Debug)]
#[command(name = "summary")]
struct Args {
    /// What to seed (patients through POST /api/v1/patients/import, prescriptions through the
    /// storage layer in the register bench; both directly through SQL in the summary bench).
    #[command(flatten)]
    register: RegisterFlags,
    /// Keep the data directory (database, secrets) here instead of a temporary one; a database
    /// seeded by an earlier run with the same sizes is measured again without reseeding.
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
    /// Measuring rounds (each: the bare aggregate, the report's own queries, the PDF and the
    /// JSON endpoint, in an order that alternates between rounds).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Server worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Only seed (and keep) the database; measure nothing.
    #[arg(long)]
    seed_only: bool,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .new_agent()
}

/// One HTTP exchange: status and body.
fn call(
    a: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let resp = match (method, body) {
        ("GET", _) => {
            let mut r = a.get(url);
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r.call()
        }
        (_, body) => {
            let mut r = a.post(url).header("Content-Type", "application/json");
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r.send(serde_json::to_vec(body.unwrap_or(&Value::Null))?.as_slice())
        }
    };
    let mut resp = resp?;
    let status = resp.status().as_u16();
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_vec()?;
    Ok((status, bytes))
}

fn expect(reply: (u16, Vec<u8>), status: u16, what: &str) -> anyhow::Result<Value> {
    anyhow::ensure!(
        reply.0 == status,
        "{what}: HTTP {} (expected {status}): {}",
        reply.0,
        String::from_utf8_lossy(&reply.1[..reply.1.len().min(500)])
    );
    Ok(serde_json::from_slice(&reply.1).unwrap_or(Value::Null))
}

fn login(base: &str, login: &str, password: &str) -> anyhow::Result<String> {
    let r = expect(
        call(
            &agent(),
            "POST",
            &format!("{base}/api/v1/auth/login"),
            None,
            Some(&json!({"login": login, "password": password})),
        )?,
        200,
        "login",
    )?;
    r["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no access_token"))
}

fn create_user(
    base: &str,
    admin: &str,
    login_name: &str,
    role: &str,
    institution: Option<i64>,
) -> anyhow::Result<i64> {
    let r = expect(
        call(
            &agent(),
            "POST",
            &format!("{base}/api/v1/admin/users"),
            Some(admin),
            Some(&json!({
                "login": login_name,
                "full_name": format!("Bench {login_name}"),
                "password": USER_PASSWORD,
                "roles": [role],
                "institution_id": institution,
            })),
        )?,
        201,
        "create user",
    )?;
    r["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no user id"))
}

/// Institutions, one clinician each (the author and prescriber of its rows) and the ministry
/// analyst, through the admin API.
fn setup_through_api(base: &str, admin: &str, n: usize) -> anyhow::Result<Vec<seed::Clinic>> {
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            % 0xF_FFFF
    );
    let mut clinics = Vec::with_capacity(n);
    for k in 0..n {
        let id = expect(
            call(
                &agent(),
                "POST",
                &format!("{base}/api/v1/refs/institutions"),
                Some(admin),
                Some(&json!({"code": format!("S{run}{k:03}"), "name": format!("Hospice {k:02}")})),
            )?,
            201,
            "create institution",
        )?["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("no institution id"))?;
        let user_id = create_user(base, admin, &format!("bench.{run}.{k}"), "user", Some(id))?;
        clinics.push(seed::Clinic { id, user_id });
    }
    create_user(base, admin, MINISTRY_LOGIN, "ministry", None)?;
    Ok(clinics)
}

/// A real sealed passport envelope (its size is the real one), under a throwaway key: every
/// seeded patient carries this same string. The summary never reads it.
fn dummy_passport() -> anyhow::Result<String> {
    let mut p = Passport::new(
        "Константинопольская",
        "Елизавета",
        "1941-03-17",
        Sex::Female,
    );
    p.patronymic = Some("Александровна".into());
    p.snils = Some("112-233-445 95".into());
    p.policy_number = Some("1234567890123456".into());
    p.phone = Some("+7 912 345-67-89".into());
    p.address = Some("г. Петрозаводск, ул. Ленина, д. 12, кв. 34".into());
    let key = InstitutionKey::generate(1)?;
    Ok(key.seal_passport(&p, &Pseudonym::generate()?, 1)?)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// The report's own aggregate queries (`palreg_server::db::models::reports`), called on a
/// connection with no HTTP around them: where the endpoint's time goes below the handler.
fn report_queries(
    conn: &mut DbConn,
    ids: &[i64],
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<[Duration; 6]> {
    let mut t = [Duration::ZERO; 6];
    let s = Instant::now();
    aggregates::movement(conn, ids, from, to)?;
    t[0] = s.elapsed();
    let s = Instant::now();
    aggregates::by_icd10_block(conn, ids, from, to)?;
    t[1] = s.elapsed();
    let s = Instant::now();
    aggregates::by_birth_year_sex(conn, ids, from, to)?;
    t[2] = s.elapsed();
    let s = Instant::now();
    aggregates::by_care_form(conn, ids, from, to)?;
    t[3] = s.elapsed();
    let s = Instant::now();
    aggregates::by_need(conn, ids, from, to, &|name, _| name.to_string())?;
    t[4] = s.elapsed();
    let s = Instant::now();
    aggregates::medicament_needs(conn, ids, from, to, &|name, _| name.to_string())?;
    t[5] = s.elapsed();
    Ok(t)
}

/// One run of the bare aggregate: its total time and each query's.
fn bare_round(conn: &mut DbConn, queries: &bare::Queries) -> anyhow::Result<(f64, [Duration; 6])> {
    let s = Instant::now();
    let (_, q) = bare::run(conn, queries)?;
    Ok((secs(s.elapsed()), q))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.register.check()?;
    let (_temp, data_dir) = server::data_dir(args.keep.as_deref())?;
    let settings = args.register.settings(&data_dir, args.workers, &[])?;
    let db_url: DatabaseUrl = settings.database_url.clone();
    let k_small = settings.small_cell_k;

    println!("palreg summary-report benchmark (issue #5)");
    println!(
        "  backend {}, {} patients, {} prescriptions, {} institutions; server workers {}; {} CPUs, load average {}",
        db_url.backend_name(),
        args.register.patients,
        args.register.prescriptions,
        args.register.institutions,
        args.workers,
        palreg_bench::measure::cpus(),
        palreg_bench::measure::load_average().unwrap_or_else(|| "?".into())
    );
    let server = Server::start(settings, |_, _| {})?;
    let base = server.base.clone();
    let admin = login(&base, "admin", ADMIN_PASSWORD)?;

    // --- The register: seeded once, or found in a kept database.
    let mut conn = db_url
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", db_url.redacted()))?;
    let wanted = (
        args.register.patients,
        args.register.prescriptions,
        args.register.institutions,
    );
    let marker = match seed::read_marker(&mut conn)? {
        Some(m) => {
            anyhow::ensure!(
                (m.patients, m.prescriptions, m.institutions.len()) == wanted,
                "this database was seeded with {} patients, {} prescriptions, {} institutions; \
                 use those sizes, or a fresh database / --keep directory",
                m.patients,
                m.prescriptions,
                m.institutions.len()
            );
            println!(
                "\nreusing the register seeded on {} in this database (no reseeding)",
                m.today
            );
            m
        }
        None => {
            let existing: i64 = patients::table.count().get_result(&mut conn)?;
            anyhow::ensure!(
                existing == 0,
                "the database already holds {existing} patients but no bench seed: give the bench an empty database"
            );
            let today = palreg_server::db::models::now().date();
            let clinics = setup_through_api(&base, &admin, args.register.institutions)?;
            let books = seed::books(&mut conn)?;
            let passport = dummy_passport()?;
            println!(
                "\nseeding DIRECTLY through SQL (multi-row INSERTs of 1000 rows, 50k rows per transaction; not through the API):"
            );
            println!(
                "  patients: non-identifying record columns as the register holds them; every passport column holds the SAME shape-valid sealed envelope ({} bytes, a real one under a throwaway key: the summary never reads it); no blind indexes or version rows (the summary reads neither)",
                passport.len()
            );
            let mut seed_conn = db_url
                .connect()
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", db_url.redacted()))?;
            seed::bulk_session(&mut seed_conn)?;
            let s = seed::register(
                &mut seed_conn,
                &clinics,
                &books,
                &passport,
                args.register.patients,
                args.register.prescriptions,
                today,
            )?;
            println!(
                "  patients: {} in {:.1} s = {:.0}/s (with {} needs)",
                args.register.patients,
                secs(s.patients),
                args.register.patients as f64 / secs(s.patients),
                s.needs
            );
            println!(
                "  prescriptions: {} in {:.1} s = {:.0}/s (dated within the reporting year; 5 % cancelled; a third controlled)",
                args.register.prescriptions,
                secs(s.prescriptions),
                args.register.prescriptions as f64 / secs(s.prescriptions).max(1e-9)
            );
            println!("  ANALYZE: {:.1} s", secs(s.analyze));
            let m = seed::Marker {
                patients: args.register.patients,
                prescriptions: args.register.prescriptions,
                institutions: clinics.iter().map(|c| c.id).collect(),
                today,
            };
            seed::write_marker(&mut conn, &m)?;
            m
        }
    };
    if args.seed_only {
        println!("\n--seed-only: nothing measured");
        server.stop();
        return Ok(());
    }

    // --- The question: one year ending on the seed's day, every bench institution.
    let to = marker.today;
    let from = to
        .with_year(to.year() - 1)
        .unwrap_or(to - chrono::Duration::days(365))
        + chrono::Duration::days(1);
    let ids = marker.institutions.clone();
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let query = format!("from={from}&to={to}&institutions={}", list.join(","));
    let ministry = login(&base, MINISTRY_LOGIN, USER_PASSWORD)?;
    let queries = bare::Queries::new(&ids, from, to);
    let names = bare::Names {
        medicaments: refs::medicament::list(&mut conn, false)?
            .into_iter()
            .map(|e| (e.id, e.name))
            .collect(),
        care_forms: refs::care_form::list(&mut conn, false)?
            .into_iter()
            .map(|e| (e.id, e.name))
            .collect(),
        needs: refs::need::list(&mut conn, false)?
            .into_iter()
            .map(|e| (e.id, e.name))
            .collect(),
    };
    let a = agent();
    let pdf_url = format!("{base}/api/v1/reports/summary.pdf?{query}");
    let json_url = format!("{base}/api/v1/reports/summary.json?{query}");
    let fetch = |url: &str| -> anyhow::Result<(Duration, Vec<u8>)> {
        let s = Instant::now();
        let (status, body) = call(&a, "GET", url, Some(&ministry), None)?;
        let took = s.elapsed();
        anyhow::ensure!(
            status == 200,
            "{url}: HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        );
        Ok((took, body))
    };

    println!(
        "\nperiod {from} .. {to}, {} institutions, as `{MINISTRY_LOGIN}` (role ministry: summary_reporting), k = {k_small}",
        ids.len()
    );
    println!("warm-up (one of each, not counted) and the numbers check:");
    let (bare_totals, _) = bare::run(&mut conn, &queries)?;
    report_queries(&mut conn, &ids, from, to)?;
    let (_, pdf) = fetch(&pdf_url)?;
    anyhow::ensure!(pdf.starts_with(b"%PDF-"), "summary.pdf is not a PDF");
    let (_, body) = fetch(&json_url)?;
    let report: Value = serde_json::from_slice(&body)?;
    let check = bare::check(&report, &bare_totals, &names);
    let (compared, skipped, bad) = (check.compared, check.skipped, check.mismatches);
    println!(
        "  summary.json totals vs the bare aggregate: {compared} numbers compared, {skipped} suppressed in the report (skipped), {} mismatches  {}",
        bad.len(),
        if bad.is_empty() { "AGREE" } else { "DISAGREE" }
    );
    for b in bad.iter().take(10) {
        println!("    {b}");
    }
    println!(
        "  population in the period {}; on the register at the end {}; PDF {} KiB, JSON {} KiB",
        bare_totals.population,
        bare_totals
            .register
            .get("on_register_at_end")
            .copied()
            .unwrap_or(0),
        pdf.len() / 1024,
        body.len() / 1024
    );

    println!(
        "\nmeasuring: {} rounds, each the bare aggregate, the report's queries, summary.pdf and summary.json once, in alternating order …",
        args.rounds
    );
    let (mut t_bare, mut t_rq, mut t_pdf, mut t_json) = (vec![], vec![], vec![], vec![]);
    let mut per_query_bare: Vec<[Duration; 6]> = vec![];
    let mut per_query_report: Vec<[Duration; 6]> = vec![];
    for round in 0..args.rounds {
        // Even rounds: bare first; odd rounds: bare last (a burst of load early or late in a
        // round does not always land on the same side).
        let bare_first = round % 2 == 0;
        if bare_first {
            let (t, q) = bare_round(&mut conn, &queries)?;
            t_bare.push(t);
            per_query_bare.push(q);
        }
        let q = report_queries(&mut conn, &ids, from, to)?;
        t_rq.push(secs(q.iter().sum::<Duration>()));
        per_query_report.push(q);
        t_pdf.push(secs(fetch(&pdf_url)?.0));
        t_json.push(secs(fetch(&json_url)?.0));
        if !bare_first {
            let (t, q) = bare_round(&mut conn, &queries)?;
            t_bare.push(t);
            per_query_bare.push(q);
        }
        eprintln!(
            "  round {}/{}: bare {:.3} s, report queries {:.3} s, pdf {:.3} s, json {:.3} s",
            round + 1,
            args.rounds,
            t_bare[round],
            t_rq[round],
            t_pdf[round],
            t_json[round]
        );
    }
    let ratios = |xs: &[f64]| -> Vec<f64> { xs.iter().zip(&t_bare).map(|(x, b)| x / b).collect() };
    let (r_pdf, r_json, r_rq) = (
        median(ratios(&t_pdf)),
        median(ratios(&t_json)),
        median(ratios(&t_rq)),
    );
    println!(
        "\nresults (median of {} rounds; best = fastest round):",
        args.rounds
    );
    println!(
        "  {:<44} median {:>8.3} s  best {:>8.3} s",
        "bare SQL aggregate (6 queries, one connection)",
        median(t_bare.clone()),
        min(&t_bare)
    );
    println!(
        "  {:<44} median {:>8.3} s  best {:>8.3} s  ratio {:.2}× (best {:.2}×)",
        "report's own queries (storage layer, no HTTP)",
        median(t_rq.clone()),
        min(&t_rq),
        r_rq,
        min(&t_rq) / min(&t_bare)
    );
    println!(
        "  {:<44} median {:>8.3} s  best {:>8.3} s  ratio {:.2}× (best {:.2}×)",
        "GET /api/v1/reports/summary.pdf",
        median(t_pdf.clone()),
        min(&t_pdf),
        r_pdf,
        min(&t_pdf) / min(&t_bare)
    );
    println!(
        "  {:<44} median {:>8.3} s  best {:>8.3} s  ratio {:.2}× (best {:.2}×)",
        "GET /api/v1/reports/summary.json",
        median(t_json.clone()),
        min(&t_json),
        r_json,
        min(&t_json) / min(&t_bare)
    );
    println!("\n  per query, median ms (bare SQL | the report's):");
    let labels = queries.labelled();
    let report_labels = [
        "movement",
        "by_icd10_block",
        "by_birth_year_sex",
        "by_care_form",
        "by_need",
        "medicament_needs",
    ];
    for i in 0..6 {
        let b = median(per_query_bare.iter().map(|q| secs(q[i]) * 1e3).collect());
        let r = median(per_query_report.iter().map(|q| secs(q[i]) * 1e3).collect());
        println!(
            "    {:<22} {:>9.1} ms | {:<20} {:>9.1} ms",
            labels[i].0, b, report_labels[i], r
        );
    }
    println!(
        "\ntarget (issue #5): summary report total time ≤ {TARGET}× the bare SQL aggregate (median of per-round ratios):"
    );
    println!(
        "  summary.pdf:  {:.2}×  {}",
        r_pdf,
        verdict(r_pdf <= TARGET && bad.is_empty())
    );
    println!(
        "  summary.json: {:.2}×  {}",
        r_json,
        verdict(r_json <= TARGET && bad.is_empty())
    );
    if !bad.is_empty() {
        println!("  (the numbers disagree: no PASS)");
    }
    println!(
        "  load average at the end {}",
        palreg_bench::measure::load_average().unwrap_or_else(|| "?".into())
    );

    drop(conn);
    server.stop();
    if let Some(dir) = &args.keep {
        println!("\ndata kept in {}", dir.display());
    }
    Ok(())
}
