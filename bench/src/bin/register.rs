//! The register benchmark: seeds patients through the real import path and prescriptions
//! through the storage layer, then measures search and read latency against same-run
//! baselines of the same server (`GET /bench/hello`, `GET /bench/patient/{id}`). See
//! bench/README.md.

#[path = "../register/http.rs"]
mod http;
#[path = "../register/probe.rs"]
mod probe;
#[path = "../register/seed.rs"]
mod seed;
#[path = "../register/synth.rs"]
mod synth;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use chrono::Datelike as _;
use clap::Parser;
use diesel::prelude::*;
use palreg_bench::server::{self, ADMIN_PASSWORD, RegisterFlags, Server};
use palreg_server::audit_queue::AuditQueueStats;
use palreg_server::db::models::patients::Patient;
use palreg_server::db::schema::patients as patients_table;
use palreg_server::state::AppState;
use serde_json::json;

use http::Latencies;
use seed::Institution;
use synth::Rng;

/// Seeds the register and measures search, read and import against same-run baselines.
#[derive(Parser, Debug)]
#[command(name = "register")]
struct Args {
    /// What to seed (patients through POST /api/v1/patients/import, prescriptions through the
    /// storage layer in the register bench; both directly through SQL in the summary bench).
    #[command(flatten)]
    register: RegisterFlags,
    /// Keep the data directory (database, secrets) here instead of a temporary one.
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
    /// Concurrent client threads of the measurements.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Client threads of the import.
    #[arg(long, default_value_t = 3)]
    import_clients: usize,
    /// Patients per import request (one transaction each); the server takes up to
    /// `IMPORT_BATCH_MAX`.
    #[arg(long, default_value_t = palreg_server::routes::patients::IMPORT_BATCH_MAX)]
    import_batch: usize,
    /// Seconds per scenario per round.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Rounds: the scenarios run in turn, round after round, so load hits them alike.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Server worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

/// The same-run baselines, on the same HttpServer as the API.
fn bench_routes(cfg: &mut web::ServiceConfig, _state: &web::Data<AppState>) {
    cfg.route(
        "/bench/hello",
        web::get().to(|| async { HttpResponse::Ok().body("hello world") }),
    )
    .route("/bench/patient/{id}", web::get().to(bare_patient));
}

/// A bare diesel lookup of a patient row by id: no auth, no audit, no scope. On the backend's
/// own connection, as the API's read runs its statements: through the server's
/// `MultiConnection`, diesel writes out the statement's SQL twice on every run.
async fn bare_patient(state: web::Data<AppState>, path: web::Path<i64>) -> HttpResponse {
    let pool = state.pool.clone();
    let id = path.into_inner();
    let found = web::block(move || -> anyhow::Result<Option<Patient>> {
        let mut conn = pool.get()?;
        Ok(palreg_server::per_backend!(&mut *conn, |c| {
            patients_table::table
                .find(id)
                .select(Patient::as_select())
                .first(c)
                .optional()
        })?)
    })
    .await;
    match found {
        Ok(Ok(Some(p))) => HttpResponse::Ok().json(p),
        Ok(Ok(None)) => HttpResponse::NotFound().finish(),
        _ => HttpResponse::InternalServerError().finish(),
    }
}

/// A cheap stable hash of a request number, to spread requests over ids.
fn spread(i: u64) -> usize {
    Rng::new(i.wrapping_add(1)).next_u64() as usize
}

/// One request of a scenario: `(agent, client, request number)`.
type Op<'a> = Box<dyn Fn(&ureq::Agent, usize, u64) -> Result<(), String> + Sync + 'a>;

struct Scenario<'a> {
    name: &'static str,
    op: Op<'a>,
}

fn line(name: &str, l: &Latencies) {
    println!(
        "  {name:<40} p50 {:>7.2} ms  p99 {:>7.2} ms  mean {:>7.2} ms  {:>8.0} req/s  ({} requests, {} errors)",
        l.quantile_ms(0.5),
        l.quantile_ms(0.99),
        l.mean_ms(),
        l.rate(),
        l.micros.len(),
        l.errors
    );
    if let Some(e) = &l.first_error {
        println!("      first error: {e}");
    }
}

/// Waits until the seed is at rest (SQLite): the whole WAL copied into the database file and
/// the WAL emptied (a TRUNCATE checkpoint, retried while the server's own checkpointer or a
/// straggling reader holds it up), then every written page flushed to the disk (`sync`).
/// Right after a large seed the server's checkpointer is still copying hundreds of megabytes
/// and the kernel still writing them back; the measurements would time that instead.
fn settle(pool: &palreg_server::db::Pool) -> anyhow::Result<Duration> {
    let start = std::time::Instant::now();
    let mut conn = pool.get()?;
    let palreg_server::db::DbConn::Sqlite(c) = &mut *conn else {
        return Ok(Duration::ZERO);
    };
    loop {
        let round: palreg_server::db::Checkpoint =
            diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result(c)?;
        if round.busy == 0 {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(600),
            "the WAL could not be checkpointed in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(conn);
    let synced = std::process::Command::new("sync").status()?;
    anyhow::ensure!(synced.success(), "sync failed: {synced}");
    Ok(start.elapsed())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.register.check()?;
    let (_temp, data_dir) = server::data_dir(args.keep.as_deref())?;
    let settings = args
        .register
        .settings(&data_dir, args.workers, &["--db-pool", "16"])?;
    let db_url = settings.database_url.clone();
    let sqlite = db_url.backend_name() == "sqlite";

    println!("palreg register benchmark");
    println!(
        "  backend {}, {} patients, {} prescriptions, {} institutions; server workers {}, {} measuring clients, {} import clients; {} CPUs, load average {}",
        db_url.backend_name(),
        args.register.patients,
        args.register.prescriptions,
        args.register.institutions,
        args.workers,
        args.clients,
        args.import_clients,
        bench_cpus(),
        palreg_bench::measure::load_average().unwrap_or_else(|| "?".into())
    );
    // The server's state, caught by the first worker that mounts the baselines: the bench
    // reads the audit queue's counts around each scenario.
    let state: Arc<OnceLock<web::Data<AppState>>> = Arc::default();
    let caught = state.clone();
    let server = Server::start(settings, move |cfg, s| {
        caught.get_or_init(|| s.clone());
        bench_routes(cfg, s)
    })?;
    let audit_stats = || state.get().map(|s| s.audit.stats()).unwrap_or_default();
    let base = server.base.clone();
    let today = palreg_server::db::models::now().date();

    // --- Setup through the admin API, as an administrator and the clinicians would.
    let admin = seed::login(&base, "admin", ADMIN_PASSWORD)?;
    let books = seed::books(&base, &admin)?;
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            % 0xF_FFFF
    );
    let mut institutions: Vec<Institution> = (0..args.register.institutions)
        .map(|k| {
            let share = args.register.patients / args.register.institutions
                + usize::from(k < args.register.patients % args.register.institutions);
            seed::institution(&base, &admin, &run, k, share)
        })
        .collect::<anyhow::Result<_>>()?;
    println!(
        "  blind-index bits per field (recommend_bits for {} patients per institution): {}",
        institutions[0].target,
        institutions[0].bits.get()
    );

    // --- Patients through the real import path.
    println!(
        "\nseeding patients through POST /api/v1/patients/import (batches of {}) …",
        args.import_batch
    );
    let imp = seed::import(
        &base,
        &mut institutions,
        &books,
        args.import_clients,
        args.import_batch,
        today,
    )?;
    let import_rate = imp.patients as f64 / imp.sending.as_secs_f64();
    let end_to_end_rate = imp.patients as f64 / imp.wall.as_secs_f64();
    let thread_time = imp.wall.as_secs_f64() * args.import_clients as f64;
    let mut batch = Latencies {
        micros: imp.batch_ms.iter().map(|ms| (ms * 1000.0) as u32).collect(),
        ..Default::default()
    };
    batch.wall = imp.wall;
    println!(
        "  import: {} patients in {:.1} s = {:.0} patients/s end to end (generation, encryption, JSON, HTTP, storage; client and server share the machine)",
        imp.patients,
        imp.wall.as_secs_f64(),
        end_to_end_rate
    );
    println!(
        "  server import: {:.1} s sending ready bodies = {:.0} patients/s (the figure the target is judged on)",
        imp.sending.as_secs_f64(),
        import_rate
    );
    println!(
        "  client encryption (seal + 5 blind indexes): {:.1} µs/patient = {:.0} patients/s per core; {:.1} % of the client threads' time",
        imp.crypto.as_secs_f64() * 1e6 / imp.patients as f64,
        imp.patients as f64 / imp.crypto.as_secs_f64(),
        100.0 * imp.crypto.as_secs_f64() / thread_time
    );
    println!(
        "  client generation + JSON: {:.1} µs/patient ({:.1} %); waiting on the server: {:.1} % of the client threads' time",
        imp.build.as_secs_f64() * 1e6 / imp.patients as f64,
        100.0 * imp.build.as_secs_f64() / thread_time,
        100.0 * imp.http.as_secs_f64() / thread_time
    );
    println!(
        "  one batch of {} on the server: p50 {:.0} ms, p99 {:.0} ms (= {:.0} patients/s per in-flight batch)",
        args.import_batch,
        batch.quantile_ms(0.5),
        batch.quantile_ms(0.99),
        args.import_batch as f64 / (batch.quantile_ms(0.5) / 1000.0)
    );
    let reads = Latencies {
        micros: imp.read_ms.iter().map(|ms| (ms * 1000.0) as u32).collect(),
        ..Default::default()
    };
    println!(
        "  a clinician's read by id while batches were sent ({} reads, one every 50 ms): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        imp.read_ms.len(),
        reads.quantile_ms(0.5),
        reads.quantile_ms(0.99),
        imp.read_ms.iter().copied().fold(0.0, f64::max)
    );

    // --- Prescriptions straight through the storage layer.
    let pool = palreg_server::db::open(&db_url, 2, Default::default())?;
    if args.register.prescriptions > 0 {
        println!(
            "\nseeding {} prescriptions DIRECTLY through the storage layer (diesel inserts of the row and its version, 20k per transaction; NOT through HTTP: there is no batch endpoint) …",
            args.register.prescriptions
        );
        let took = seed::prescriptions_direct(
            &pool,
            &institutions,
            &books.medicaments,
            args.register.prescriptions,
            today,
        )?;
        println!(
            "  prescriptions: {} in {:.1} s = {:.0}/s (storage layer only)",
            args.register.prescriptions,
            took.as_secs_f64(),
            args.register.prescriptions as f64 / took.as_secs_f64()
        );
    }

    if sqlite {
        let took = settle(&pool)?;
        println!(
            "\nsettled in {:.1} s: the seed's WAL folded into the database file and written to disk, so the measurements below find the register at rest, not a checkpoint of the seed in full flow",
            took.as_secs_f64()
        );
    }

    // --- Measurements.
    let k = institutions.len();
    let inst = |i: u64| &institutions[(i % k as u64) as usize];
    let pick_id = |i: u64| {
        let ins = inst(i);
        ins.patient_ids[spread(i) % ins.patient_ids.len()]
    };
    let statuses = seed::refs(&base, &admin, "patient-statuses")?;
    let registered = statuses
        .iter()
        .find(|(_, c)| c == "registered")
        .map(|(id, _)| *id)
        .ok_or_else(|| anyhow::anyhow!("no status `registered`"))?;
    // Common diagnoses (the generator skews towards the start of the book).
    let common_diagnoses: Vec<i64> = books.diagnoses.iter().take(8).copied().collect();
    let (age_from, age_to) = (60, 80);
    let search_body = |i: u64, which: usize| -> Vec<u8> {
        let ins = inst(i);
        let body = match which {
            0 => {
                let probe = &ins.probes[spread(i) % ins.probes.len()];
                json!({"blind_indexes": [probe.surname], "limit": 50})
            }
            1 => {
                let probe = &ins.probes[spread(i) % ins.probes.len()];
                json!({"blind_indexes": [probe.surname], "birth_year": probe.birth_year, "limit": 50})
            }
            _ => json!({
                "diagnosis_id": common_diagnoses[spread(i) % common_diagnoses.len()],
                "status": "registered",
                "age_from": age_from,
                "age_to": age_to,
                "limit": 50,
            }),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    };
    let search = |which: usize| {
        let base = &base;
        let search_body = &search_body;
        move |a: &ureq::Agent, _c: usize, i: u64| {
            let body = search_body(i, which);
            http::check(
                http::post_raw(
                    a,
                    &format!("{base}/api/v1/patients/search"),
                    Some(&inst(i).token),
                    &body,
                ),
                200,
            )
        }
    };
    let scenarios: Vec<Scenario> = vec![
        Scenario {
            name: "GET /bench/hello (baseline)",
            op: Box::new(|a, _, _| {
                http::check(http::get(a, &format!("{base}/bench/hello"), None), 200)
            }),
        },
        Scenario {
            name: "GET /bench/patient/{id} (bare diesel)",
            op: Box::new(|a, _, i| {
                http::check(
                    http::get(a, &format!("{base}/bench/patient/{}", pick_id(i)), None),
                    200,
                )
            }),
        },
        Scenario {
            name: "GET /api/v1/me (auth + 2 queries)",
            op: Box::new(|a, _, i| {
                http::check(
                    http::get(a, &format!("{base}/api/v1/me"), Some(&inst(i).token)),
                    200,
                )
            }),
        },
        Scenario {
            name: "GET /api/v1/patients/{id} (real read)",
            op: Box::new(|a, _, i| {
                http::check(
                    http::get(
                        a,
                        &format!("{base}/api/v1/patients/{}", pick_id(i)),
                        Some(&inst(i).token),
                    ),
                    200,
                )
            }),
        },
        Scenario {
            name: "search: surname token",
            op: Box::new(search(0)),
        },
        Scenario {
            name: "search: surname token+birth year",
            op: Box::new(search(1)),
        },
        Scenario {
            name: "search: diagnosis+status+age 60-80",
            op: Box::new(search(2)),
        },
    ];
    println!(
        "\nmeasuring: {} rounds × {:.1} s per scenario, {} concurrent clients, first page of 50 …",
        args.rounds, args.seconds, args.clients
    );
    let duration = Duration::from_secs_f64(args.seconds);
    let mut totals: Vec<Latencies> = vec![Latencies::default(); scenarios.len()];
    let mut audits = vec![AuditQueueStats::default(); scenarios.len()];
    for round in 0..args.rounds {
        for ((s, total), audit) in scenarios.iter().zip(totals.iter_mut()).zip(&mut audits) {
            let before = audit_stats();
            let l = http::drive(args.clients, duration, &s.op);
            *audit += audit_stats().since(&before);
            total.merge(l);
        }
        eprintln!("  round {}/{} done", round + 1, args.rounds);
    }
    println!("\nresults (all rounds merged):");
    for ((s, l), audit) in scenarios.iter().zip(&totals).zip(&audits) {
        line(s.name, l);
        if audit.batches > 0 {
            println!(
                "      audit entries appended to the log: {} in {} transactions ({:.2} a transaction), {:.0} µs each (mean, write turn to COMMIT)",
                audit.entries,
                audit.batches,
                audit.entries_per_batch(),
                audit.mean_commit().as_secs_f64() * 1e6
            );
        }
    }
    let [hello, bare, me, read, s_surname, s_year, s_filter] = &totals[..] else {
        anyhow::bail!("scenario count");
    };
    let per_round = |a: &Latencies, b: &Latencies| {
        median(
            a.round_rates
                .iter()
                .zip(&b.round_rates)
                .map(|(x, y)| x / y)
                .collect(),
        )
    };
    let read_ratio = per_round(read, bare);
    println!("\ntargets:");
    for (name, l) in [
        ("surname token", s_surname),
        ("surname token+birth year", s_year),
        ("filters", s_filter),
    ] {
        let p99 = l.quantile_ms(0.99);
        println!(
            "  patient search p99 ≤ 10 ms ({name}): {p99:.2} ms  {}",
            verdict(p99 <= 10.0 && l.errors == 0)
        );
    }
    println!(
        "  read by id ≥ 80 % of the bare diesel lookup's throughput: {:.0} / {:.0} req/s = {:.1} % (median of per-round ratios)  {}",
        read.rate(),
        bare.rate(),
        100.0 * read_ratio,
        verdict(read_ratio >= 0.8 && read.errors == 0)
    );
    println!(
        "  import ≥ 20k patients/s (server, sending ready bodies): {:.0} patients/s  {}",
        import_rate,
        verdict(import_rate >= 20_000.0)
    );
    println!(
        "  (context: bare lookup = {:.1} % of hello world; /me = {:.1} % of hello world; read = {:.1} % of /me)",
        100.0 * per_round(bare, hello),
        100.0 * per_round(me, hello),
        100.0 * per_round(read, me)
    );

    // --- Where the time goes, from below HTTP.
    if sqlite {
        println!("\nbottleneck probes (SQLite, a separate connection, server idle):");
        let mut conn = pool.get()?;
        let ins = &institutions[0];
        let probe = &ins.probes[0];
        let year = today.year();
        let sqls = probe::searches(
            ins.id,
            probe,
            (
                common_diagnoses[0],
                registered,
                year - age_to,
                year - age_from,
            ),
        );
        // Warm: the same query again on an idle connection. Cold: another connection commits
        // before each run, as the audit appends of concurrent requests do under load, and
        // SQLite drops this connection's page cache.
        let mut other = pool.get()?;
        for q in &sqls {
            println!("  {}:", q.label);
            for (part, sql) in [("page", &q.page), ("count", &q.count)] {
                let warm = probe::time_sql(&mut conn, sql, 200, None);
                let cold = probe::time_sql(&mut conn, sql, 200, Some(&mut other));
                println!(
                    "    {part:<5} warm p50 {:.3} ms  p99 {:.3} ms; cold p50 {:.3} ms  p99 {:.3} ms   plan: {}",
                    warm.quantile_ms(0.5),
                    warm.quantile_ms(0.99),
                    cold.quantile_ms(0.5),
                    cold.quantile_ms(0.99),
                    probe::plan(&mut conn, sql).join(" | ")
                );
            }
        }
        drop(other);
        let audit = probe::audit_append(&mut conn, 2000);
        println!(
            "  audit append in its own write transaction: p50 {:.3} ms  p99 {:.3} ms  → at most {:.0} audited requests/s on one writer",
            audit.quantile_ms(0.5),
            audit.quantile_ms(0.99),
            1000.0 / audit.mean_ms()
        );
    }

    drop(pool);
    server.stop();
    if let Some(dir) = &args.keep {
        println!("\ndata kept in {}", dir.display());
    }
    Ok(())
}

fn bench_cpus() -> usize {
    palreg_bench::measure::cpus()
}
