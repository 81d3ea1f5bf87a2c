//! The client against a real server (SQLite): keys, CSV import with a bad-line report,
//! resume after a lost answer, search with false positives dropped, export round trip, no
//! identifying value in any request body, and the key chain (a planted key version seals,
//! searches and is granted nothing).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use client_crypto::key_chain::Untrusted;
use client_crypto::{BlindIndexBits, BlindIndexField, InstitutionKey, Pseudonym, UserKeyPair};
use palreg_client::api::Api;
use palreg_client::csvfile::Encoding;
use palreg_client::http::{Recording, Request, Response, Transport, Trust, UreqTransport};
use palreg_client::keys::{self, Clinic, PinScope, Pins};
use palreg_client::patients::{self, Query};
use palreg_client::refs::Books;
use palreg_client::row::{self, Row};
use palreg_client::{Error, csvfile, export, import};
use palreg_tests::{Backend, PASSWORD, TestApp, spawn_app};

const PASSPHRASE: &str = "correct horse battery";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/register.csv")
}

/// The lines of the example that are faulty, and why (by column).
const BAD_LINES: [u64; 4] = [8, 9, 10, 11];
const GOOD_ROWS: usize = 7;

fn transport(app: &TestApp) -> UreqTransport {
    UreqTransport::new(&app.base, &Trust::WebPki).expect("transport")
}

fn signed_in(app: &TestApp, login: &str, transport: Arc<dyn Transport>) -> Api {
    Api::new(&app.base, transport)
        .login(login, PASSWORD, None)
        .expect("login")
}

/// The example's good lines, parsed as the import parses them.
fn parsed(path: &Path, books: &Books) -> Vec<Row> {
    let (lines, _) = csvfile::read(&std::fs::read(path).unwrap(), Encoding::Utf8).unwrap();
    lines
        .iter()
        .filter_map(|l| row::parse(l, books, "2100-01-01").ok())
        .collect()
}

fn canonical(rows: &[Row], books: &Books) -> BTreeSet<Vec<String>> {
    rows.iter()
        .map(|r| {
            // The server may list needs in another order.
            let mut record = r.record.clone();
            record.needs.sort_unstable();
            row::to_cells(&r.passport, &record, books)
        })
        .collect()
}

/// Forwards everything, but reports the `n`-th import call (0-based) as lost after the server
/// has handled it: the interruption that must not duplicate patients on resume.
struct LoseImportAnswer {
    inner: UreqTransport,
    seen: AtomicUsize,
    lose: usize,
}

impl Transport for LoseImportAnswer {
    fn send(&self, request: &Request<'_>) -> palreg_client::Result<Response> {
        let response = self.inner.send(request)?;
        if request.url.ends_with("/api/v1/patients/import")
            && self.seen.fetch_add(1, Ordering::SeqCst) == self.lose
        {
            return Err(Error::Http("connection reset (simulated)".into()));
        }
        Ok(response)
    }
}

/// A proxy in front of the server that answers the `n`-th import call (0-based) with a 5xx:
/// after passing the batch on (a 502 or 504 once the server has committed it) or without
/// passing it on (a 503).
struct ProxyFailsImport {
    inner: UreqTransport,
    seen: AtomicUsize,
    fail: usize,
    status: u16,
    passed_on: bool,
}

impl Transport for ProxyFailsImport {
    fn send(&self, request: &Request<'_>) -> palreg_client::Result<Response> {
        let failing = request.url.ends_with("/api/v1/patients/import")
            && self.seen.fetch_add(1, Ordering::SeqCst) == self.fail;
        if !failing {
            return self.inner.send(request);
        }
        if self.passed_on {
            self.inner.send(request)?;
        }
        Ok(Response {
            status: self.status,
            body: format!("<html><body>{} from the proxy</body></html>", self.status),
        })
    }
}

/// Forwards everything, and keeps the body of every import call: how the client cut its
/// batches.
struct ImportBodies {
    inner: UreqTransport,
    bodies: Mutex<Vec<String>>,
}

impl ImportBodies {
    fn new(inner: UreqTransport) -> Self {
        Self {
            inner,
            bodies: Mutex::new(Vec::new()),
        }
    }

    /// The import requests' bodies, parsed, with their lengths in bytes.
    fn sent(&self) -> Vec<(usize, serde_json::Value)> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| (b.len(), serde_json::from_str(b).unwrap()))
            .collect()
    }
}

impl Transport for ImportBodies {
    fn send(&self, request: &Request<'_>) -> palreg_client::Result<Response> {
        if request.url.ends_with("/api/v1/patients/import") {
            let body = request.body.unwrap_or_default().to_string();
            self.bodies.lock().unwrap().push(body);
        }
        self.inner.send(request)
    }
}

/// A compromised server: it lists its own fingerprint for every member's key.
struct ForgesFingerprints {
    inner: UreqTransport,
}

impl Transport for ForgesFingerprints {
    fn send(&self, request: &Request<'_>) -> palreg_client::Result<Response> {
        let mut response = self.inner.send(request)?;
        if request.url.ends_with("/members") {
            let mut members: serde_json::Value = serde_json::from_str(&response.body).unwrap();
            for m in members["members"].as_array_mut().unwrap() {
                m["fingerprint"] = "00000000".into();
            }
            response.body = members.to_string();
        }
        Ok(response)
    }
}

/// The palreg-client binary as a clinician runs it against the test server: its own folder,
/// the password, the key file and its passphrase given in the environment.
fn client(app: &TestApp, dir: &Path, key_file: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_palreg-client"));
    command
        .env("PALREG_CLIENT_DIR", dir)
        .env("PALREG_SERVER", &app.base)
        .env("PALREG_PASSWORD", PASSWORD)
        .env("PALREG_KEY_PASSPHRASE", PASSPHRASE)
        .env("PALREG_KEY_FILE", key_file);
    command
}

fn journal_of(csv: &Path) -> import::Journal {
    import::Journal::read(&import::journal_path(csv))
        .unwrap()
        .expect("a journal")
}

/// The keys of the journal's event lines (after its header), in order.
fn journal_events(bytes: &[u8]) -> Vec<String> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let keys: Vec<&String> = event.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 1, "{line}");
            keys[0].clone()
        })
        .collect()
}

/// How many entries the journal's event line `n` (counting the header as 0) carries.
fn entries_on(bytes: &[u8], n: usize) -> usize {
    let line = std::str::from_utf8(bytes).unwrap().lines().nth(n).unwrap();
    let event: serde_json::Value = serde_json::from_str(line).unwrap();
    let (_, entries) = event.as_object().unwrap().iter().next().unwrap();
    entries.as_array().unwrap().len()
}

/// An import of `csv` (the example's lines) in batches of 2 whose second answer is lost after
/// the server stored it (two batches on the server, the journal holding the second as
/// pending); then the institution's clinic over a sound connection, to resume with.
fn interrupted_import(
    app: &TestApp,
    login: &str,
    dir: &Path,
    csv: &Path,
) -> (Clinic, import::Options) {
    let admin = app.admin_token();
    let institution = app.create_institution(&admin, "H40", "Hospice forty");
    app.create_user(&admin, login, &["user"], Some(institution));
    let key_file = dir.join(format!("{login}.json"));
    let flaky = Arc::new(LoseImportAnswer {
        inner: transport(app),
        seen: AtomicUsize::new(0),
        lose: 1,
    });
    let api = signed_in(app, login, flaky);
    keys::init(&api, &key_file, PASSPHRASE).unwrap();
    let pair = keys::load(&key_file, PASSPHRASE).unwrap();
    keys::bootstrap(&api, &pair).unwrap();
    let clinic = Clinic::open(api, &pair, 8, &mut Pins::in_memory()).unwrap();
    let options = import::Options {
        batch_size: 2,
        progress: false,
        ..import::Options::default()
    };
    let interrupted = import::run(&clinic, csv, &options);
    assert!(
        matches!(interrupted, Err(Error::Http(_))),
        "{interrupted:?}"
    );
    assert_eq!(total(&clinic), 4, "two batches reached the server");
    let api = signed_in(app, login, Arc::new(transport(app)));
    let clinic = Clinic::open(api, &pair, 8, &mut Pins::in_memory()).unwrap();
    (clinic, options)
}

/// The temporary files (`*.tmp`) in `dir`: a file written through one and renamed leaves none.
fn temporary_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// A copy of the example beside `dir`'s other files.
fn example_in(dir: &Path) -> PathBuf {
    let csv = dir.join("register.csv");
    std::fs::copy(example(), &csv).unwrap();
    csv
}

fn total(clinic: &Clinic) -> i64 {
    clinic
        .api
        .search(&serde_json::json!({"limit": 1}))
        .unwrap()
        .total
}

#[test]
fn two_clinicians_import_search_and_export_without_sending_names() {
    // Arrange: an institution with two clinicians, every request body recorded.
    let app = spawn_app(Backend::Sqlite);
    let admin = app.admin_token();
    let institution = app.create_institution(&admin, "H1", "Hospice one");
    app.create_user(&admin, "anna", &["user"], Some(institution));
    app.create_user(&admin, "boris", &["user"], Some(institution));
    let recorder = Arc::new(Recording::new(transport(&app)));
    let dir = tempfile::tempdir().unwrap();
    let a = signed_in(&app, "anna", recorder.clone());
    let b = signed_in(&app, "boris", recorder.clone());

    // Keys: both make key pairs; anna creates the institution key and grants it to boris
    // after comparing the fingerprint boris reads out.
    let a_fp = keys::init(&a, &dir.path().join("anna.json"), PASSPHRASE).unwrap();
    let b_fp = keys::init(&b, &dir.path().join("boris.json"), PASSPHRASE).unwrap();
    assert_ne!(a_fp, b_fp);
    assert!(
        keys::init(&a, &dir.path().join("anna.json"), PASSPHRASE).is_err(),
        "an existing key file is never overwritten"
    );
    let a_keys = keys::load(&dir.path().join("anna.json"), PASSPHRASE).unwrap();
    let b_keys = keys::load(&dir.path().join("boris.json"), PASSPHRASE).unwrap();
    assert!(keys::load(&dir.path().join("boris.json"), "wrong passphrase").is_err());
    assert!(
        Clinic::open(b.clone(), &b_keys, 1, &mut Pins::in_memory()).is_err(),
        "no institution key before a grant"
    );
    assert_eq!(keys::bootstrap(&a, &a_keys).unwrap(), 1);
    assert!(
        keys::bootstrap(&a, &a_keys).is_err(),
        "bootstrap happens once"
    );
    let forged = signed_in(
        &app,
        "anna",
        Arc::new(ForgesFingerprints {
            inner: transport(&app),
        }),
    );
    let refused = keys::grant(
        &forged,
        &a_keys,
        "boris",
        &mut Pins::in_memory(),
        &mut |_, _| true,
    );
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("another fingerprint")),
        "a key whose listed fingerprint differs is not granted: {refused:?}"
    );
    let refused = keys::grant(&a, &a_keys, "boris", &mut Pins::in_memory(), &mut |_, _| {
        false
    });
    assert!(
        refused.is_err(),
        "an unconfirmed fingerprint grants nothing"
    );
    let mut shown = None;
    let granted = keys::grant(
        &a,
        &a_keys,
        "boris",
        &mut Pins::in_memory(),
        &mut |member, fp| {
            shown = Some((member.login.clone(), fp.clone()));
            true
        },
    )
    .unwrap();
    assert_eq!((granted.versions, granted.skipped), (vec![1], vec![]));
    assert_eq!(shown, Some(("boris".to_string(), b_fp.clone())));
    let members = a.members(institution).unwrap();
    assert!(members.members.iter().all(|m| m.holds == vec![1]));

    // One blind-index bit: every token matches about half the register, so searches must
    // drop false positives.
    let anna = Clinic::open(a, &a_keys, 1, &mut Pins::in_memory()).unwrap();
    let boris = Clinic::open(b, &b_keys, 1, &mut Pins::in_memory()).unwrap();
    let books = Books::load(&anna.api).unwrap();

    // Act: import the example; bad lines are reported, good ones imported.
    let csv_dir = tempfile::tempdir().unwrap();
    let csv = example_in(csv_dir.path());
    let quiet = import::Options {
        batch_size: 3,
        progress: false,
        ..import::Options::default()
    };
    let report = import::run(&anna, &csv, &quiet).unwrap();

    // Assert: the report names the bad lines with their columns.
    assert_eq!(report.imported, GOOD_ROWS);
    let bad: BTreeSet<u64> = report.errors.iter().map(|e| e.line).collect();
    assert_eq!(bad, BAD_LINES.into_iter().collect(), "{:?}", report.errors);
    let has = |line: u64, column: &str| {
        report
            .errors
            .iter()
            .any(|e| e.line == line && e.column == column)
    };
    assert!(has(8, "date_of_birth"), "31.02.1950 is no date");
    assert!(has(9, "first_name") && has(9, "sex") && has(9, "diagnosis"));
    assert!(has(10, "discharged_on"), "discharged without a date");
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.line == 11 && e.reason.contains("cells")),
        "a short line"
    );
    assert_eq!(total(&anna), GOOD_ROWS as i64);

    // A second run imports nothing again.
    let again = import::run(&anna, &csv, &quiet).unwrap();
    assert_eq!((again.imported, again.already_done), (0, GOOD_ROWS));
    assert_eq!(total(&anna), GOOD_ROWS as i64);

    // Search (as boris, who was granted the key): true matches only.
    let found = patients::search(
        &boris,
        &Query {
            surname: Some("ИВАНОВА".into()),
            ..Query::default()
        },
    )
    .unwrap();
    let names: BTreeSet<String> = found
        .matches
        .iter()
        .map(|(_, p)| format!("{} {}", p.surname, p.first_name))
        .collect();
    assert_eq!(
        names,
        ["Иванова Анна", "Иванова Елена"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    // Six distinct surnames share two token values: some query must meet strangers.
    let mut dropped = 0;
    for surname in [
        "Иванова",
        "Фёдоров",
        "Федорова",
        "Smith",
        "Кузнецова",
        "Orlova",
    ] {
        let query = Query {
            surname: Some(surname.into()),
            ..Query::default()
        };
        let found = patients::search(&boris, &query).unwrap();
        assert!(found.matches.iter().all(|(_, p)| p.surname == surname));
        assert!(!found.matches.is_empty(), "{surname} is found");
        dropped += found.candidates - found.matches.len();
    }
    assert!(dropped > 0, "false positives were dropped");
    let by_dob = patients::search(
        &boris,
        &Query {
            date_of_birth: Some("1939-07-12".into()),
            ..Query::default()
        },
    )
    .unwrap();
    assert_eq!(by_dob.matches.len(), 1);
    assert_eq!(by_dob.matches[0].1.surname, "Фёдоров");
    // The date's token is short (its year is in clear on the record): the search sends the
    // date's year as the birth_year filter, and a --birth-year beside it must agree.
    let dob_and_year = |year| Query {
        date_of_birth: Some("12.07.1939".into()),
        birth_year: Some(year),
        ..Query::default()
    };
    assert_eq!(
        patients::search(&boris, &dob_and_year(1939))
            .unwrap()
            .matches
            .len(),
        1
    );
    let disagree = patients::search(&boris, &dob_and_year(1940))
        .err()
        .unwrap()
        .to_string();
    assert!(disagree.contains("disagree"), "{disagree}");

    // Export round trip: the exported passports and records equal the imported ones.
    let out = csv_dir.path().join("export.csv");
    assert_eq!(
        export::run(&boris, &out, false, export::Layout::default()).unwrap(),
        GOOD_ROWS
    );
    assert_eq!(
        canonical(&parsed(&out, &books), &books),
        canonical(&parsed(&example(), &books), &books)
    );

    // An existing file is not overwritten without --force.
    std::fs::write(&out, "another register").unwrap();
    let refused = export::run(&boris, &out, false, export::Layout::default())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("--force"), "{refused}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "another register");
    assert_eq!(
        export::run(&boris, &out, true, export::Layout::default()).unwrap(),
        GOOD_ROWS
    );
    assert_eq!(parsed(&out, &books).len(), GOOD_ROWS);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a replaced export is private too");
    }

    // Nothing identifying went over the wire.
    let bodies = recorder.bodies();
    assert!(bodies.iter().any(|b| b.contains("\"patients\"")));
    for row in parsed(&example(), &books) {
        let p = &row.passport;
        let mut secrets = vec![p.surname.clone(), p.first_name.clone()];
        secrets.extend(p.patronymic.clone());
        secrets.extend(p.snils.clone());
        secrets.extend(p.phone.clone());
        secrets.extend(p.address.clone());
        secrets.extend(p.policy_number.clone());
        for secret in secrets {
            assert!(
                bodies.iter().all(|b| !b.contains(&secret)),
                "a request body contains a passport value"
            );
        }
    }
}

#[test]
fn semicolon_file_resumes_after_a_lost_answer_without_duplicates() {
    let app = spawn_app(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();

    // The example as Russian Excel writes it: `;` between cells.
    let csv = dir.path().join("register;excel.csv");
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(example())
        .unwrap();
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b';')
        .flexible(true)
        .from_path(&csv)
        .unwrap();
    writer.write_record(reader.headers().unwrap()).unwrap();
    for record in reader.records() {
        writer.write_record(&record.unwrap()).unwrap();
    }
    writer.flush().unwrap();
    drop(writer);

    // The answer to the second batch is lost after the server stored it.
    let (clinic, options) = interrupted_import(&app, "vera", dir.path(), &csv);
    let journal = journal_of(&csv);
    assert_eq!((journal.done.len(), journal.pending.len()), (2, 2));

    // Resume with a sound connection.
    let resumed = import::run(&clinic, &csv, &options).unwrap();
    assert_eq!(
        resumed.recovered, 2,
        "the lost batch is found by its pseudonyms"
    );
    assert_eq!(resumed.already_done, 4);
    assert_eq!(resumed.imported, GOOD_ROWS - 4);
    assert_eq!(total(&clinic), GOOD_ROWS as i64, "nothing duplicated");
    let bad: BTreeSet<u64> = resumed.errors.iter().map(|e| e.line).collect();
    assert_eq!(bad, BAD_LINES.into_iter().collect());
}

#[test]
fn the_binary_signs_in_and_keeps_the_token_private() {
    let app = spawn_app(Backend::Sqlite);
    let admin = app.admin_token();
    let institution = app.create_institution(&admin, "H3", "Hospice three");
    app.create_user(&admin, "galina", &["user"], Some(institution));
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        client(&app, dir.path(), &dir.path().join("key.json"))
            .args(args)
            .output()
            .unwrap()
    };
    let login = run(&["login", "--login", "galina"]);
    assert!(login.status.success(), "{login:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("session.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let whoami = run(&["whoami"]);
    assert!(String::from_utf8_lossy(&whoami.stdout).contains("galina"));
    let init = run(&["keys", "init"]);
    assert!(
        String::from_utf8_lossy(&init.stdout).contains("fingerprint"),
        "{init:?}"
    );
    assert!(run(&["keys", "bootstrap"]).status.success());
    let add = run(&[
        "patient",
        "add",
        "--surname",
        "Лебедева",
        "--first-name",
        "Нина",
        "--dob",
        "01.02.1940",
        "--sex",
        "Ж",
        "--diagnosis",
        "C50",
        "--need",
        "functional_bed",
    ]);
    assert!(add.status.success(), "{add:?}");
    let found = run(&["patient", "search", "--surname", "лебедева"]);
    let text = String::from_utf8_lossy(&found.stdout);
    assert!(
        text.contains("Лебедева Нина") && text.contains("1 found"),
        "{text}"
    );
    // By surname and year of birth: the surname's token and the record's birth year.
    for (year, found) in [("1940", "1 found"), ("1941", "0 found")] {
        let out = run(&[
            "patient",
            "search",
            "--surname",
            "Лебедева",
            "--birth-year",
            year,
        ]);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(found), "born in {year}: {text}");
    }
    let logout = run(&["logout"]);
    assert!(logout.status.success());
    assert!(!run(&["whoami"]).status.success(), "signed out");
}

/// An account with a second factor signs in with `login --totp` given one of its recovery codes
/// (a lost phone), once.
#[test]
fn the_binary_signs_in_with_a_recovery_code_once() {
    use palreg_server::totp;
    let app = spawn_app(Backend::Sqlite);
    let admin = app.admin_token();
    let institution = app.create_institution(&admin, "H4", "Hospice four");
    app.create_user(&admin, "olga", &["user"], Some(institution));
    let token = app.login("olga", PASSWORD);
    let started = app.post("/api/v1/me/totp", Some(&token), &serde_json::json!({}));
    let secret = totp::base32_decode(started.body["secret"].as_str().unwrap()).unwrap();
    let step = totp::step_at(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let confirmed = app.post(
        "/api/v1/me/totp/confirm",
        Some(&token),
        &serde_json::json!({"code": totp::code(&secret, step)}),
    );
    assert_eq!(confirmed.status, 200, "{:?}", confirmed.body);
    let code = confirmed.body["recovery_codes"][0]
        .as_str()
        .unwrap()
        .to_string();

    let dir = tempfile::tempdir().unwrap();
    let login = |code: &str| {
        client(&app, dir.path(), &dir.path().join("key.json"))
            .args(["login", "--login", "olga", "--totp", code])
            .output()
            .unwrap()
    };
    let first = login(&code);
    assert!(first.status.success(), "{first:?}");
    let again = login(&code);
    assert!(!again.status.success(), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("invalid_totp"),
        "{again:?}"
    );
}

#[test]
fn a_proxy_5xx_keeps_the_batch_pending_and_the_resume_does_not_duplicate() {
    let app = spawn_app(Backend::Sqlite);
    let admin = app.admin_token();
    let institution = app.create_institution(&admin, "H5", "Hospice five");
    app.create_user(&admin, "zoya", &["user"], Some(institution));
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("zoya.json");
    let csv = example_in(dir.path());
    let options = import::Options {
        batch_size: 2,
        progress: false,
        ..import::Options::default()
    };
    let clinic_behind = |proxy: ProxyFailsImport| {
        let api = signed_in(&app, "zoya", Arc::new(proxy));
        let pair = keys::load(&key_file, PASSPHRASE).unwrap();
        Clinic::open(api, &pair, 8, &mut Pins::in_memory()).unwrap()
    };
    // A proxy that fails the first import it sees with `status`, after passing it on or not.
    let failing = |status, passed_on| ProxyFailsImport {
        inner: transport(&app),
        seen: AtomicUsize::new(0),
        fail: 1,
        status,
        passed_on,
    };
    let setup = signed_in(&app, "zoya", Arc::new(transport(&app)));
    keys::init(&setup, &key_file, PASSPHRASE).unwrap();
    keys::bootstrap(&setup, &keys::load(&key_file, PASSPHRASE).unwrap()).unwrap();

    // Act: the second batch is committed, but the proxy answers 502.
    let clinic = clinic_behind(failing(502, true));
    let failed = import::run(&clinic, &csv, &options);

    // Assert: the run stops, and the journal still holds the batch as pending.
    assert!(
        matches!(failed, Err(Error::Api { status: 502, .. })),
        "{failed:?}"
    );
    assert_eq!(total(&clinic), 4);
    let journal = journal_of(&csv);
    assert_eq!((journal.done.len(), journal.pending.len()), (2, 2));

    // A re-run finds that batch on the server; then a 503 stops it before the server saw the
    // next-but-one batch.
    let clinic = clinic_behind(failing(503, false));
    let failed = import::run(&clinic, &csv, &options);
    assert!(
        matches!(failed, Err(Error::Api { status: 503, .. })),
        "{failed:?}"
    );
    assert_eq!(total(&clinic), 6, "the 502 batch was not sent again");
    let journal = journal_of(&csv);
    assert_eq!((journal.done.len(), journal.pending.len()), (6, 1));

    // The last run finds the 503 batch absent and sends it.
    let clinic = clinic_behind(ProxyFailsImport {
        inner: transport(&app),
        seen: AtomicUsize::new(0),
        fail: usize::MAX,
        status: 500,
        passed_on: false,
    });
    let resumed = import::run(&clinic, &csv, &options).unwrap();
    assert_eq!(
        (resumed.recovered, resumed.already_done, resumed.imported),
        (0, 6, 1)
    );
    assert_eq!(total(&clinic), GOOD_ROWS as i64, "nothing duplicated");
    assert!(journal_of(&csv).pending.is_empty());
}

#[test]
fn the_import_journal_grows_by_appends_only() {
    // Arrange: an import interrupted after its second batch was sent.
    let app = spawn_app(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let csv = example_in(dir.path());
    let (clinic, options) = interrupted_import(&app, "alla", dir.path(), &csv);
    let path = import::journal_path(&csv);
    let interrupted = std::fs::read(&path).unwrap();

    // The header, then a pending and a done line for the first batch, and a pending line for
    // the second.
    let header: serde_json::Value =
        serde_json::from_slice(interrupted.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(header["journal"], "palreg-import");
    assert_eq!(header["version"], 2);
    assert_eq!(header["server"], app.base.as_str());
    assert_eq!(header["institution_id"], clinic.institution_id);
    assert_eq!(journal_events(&interrupted), ["pending", "done", "pending"]);

    // Act: resume, then run once more with nothing left to do.
    let resumed = import::run(&clinic, &csv, &options).unwrap();
    let after_resume = std::fs::read(&path).unwrap();
    let again = import::run(&clinic, &csv, &options).unwrap();
    let after_again = std::fs::read(&path).unwrap();

    // Assert: every earlier state is a prefix of the later ones; the resume appended the
    // settled batch (as done) and a pending and a done line for each of its own two batches.
    assert_eq!(
        (resumed.recovered, resumed.already_done, resumed.imported),
        (2, 4, GOOD_ROWS - 4)
    );
    assert_eq!((again.already_done, again.imported), (GOOD_ROWS, 0));
    assert_eq!(total(&clinic), GOOD_ROWS as i64, "nothing duplicated");
    assert!(
        after_resume.starts_with(&interrupted),
        "a line was rewritten"
    );
    assert_eq!(after_again, after_resume, "nothing to record");
    assert_eq!(
        journal_events(&after_resume),
        [
            "pending", "done", "pending", "done", "pending", "done", "pending", "done"
        ]
    );
    assert_eq!(entries_on(&after_resume, 4), 2, "the lost batch, found");
    let journal = journal_of(&csv);
    assert_eq!((journal.done.len(), journal.pending.len()), (GOOD_ROWS, 0));
}

#[test]
fn an_import_journal_in_the_earlier_format_resumes_and_is_rewritten_once() {
    // Arrange: an interrupted import whose journal is in the format an earlier palreg-client
    // wrote, one JSON object, two lines done and two pending.
    let app = spawn_app(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let csv = example_in(dir.path());
    let (clinic, options) = interrupted_import(&app, "nina", dir.path(), &csv);
    let path = import::journal_path(&csv);
    let old = journal_of(&csv);
    assert_eq!((old.done.len(), old.pending.len()), (2, 2));
    std::fs::write(&path, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    assert_eq!(journal_of(&csv), old, "the earlier format is read");

    // Act
    let resumed = import::run(&clinic, &csv, &options).unwrap();

    // Assert: the pending batch is found on the server, nothing is sent twice, and the journal
    // is now the header, the old state (done, then pending) and the appended events.
    assert_eq!(
        (resumed.recovered, resumed.already_done, resumed.imported),
        (2, 4, GOOD_ROWS - 4)
    );
    assert_eq!(total(&clinic), GOOD_ROWS as i64, "nothing duplicated");
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"{\"journal\":\"palreg-import\",\"version\":2,"));
    assert_eq!(
        journal_events(&bytes),
        [
            "done", "pending", "done", "pending", "done", "pending", "done"
        ]
    );
    assert_eq!((entries_on(&bytes, 1), entries_on(&bytes, 2)), (2, 2));
    let journal = journal_of(&csv);
    assert_eq!((journal.done.len(), journal.pending.len()), (GOOD_ROWS, 0));
    let found: BTreeSet<&str> = journal.done.iter().map(|e| e.pseudonym.as_str()).collect();
    assert!(
        old.pending
            .iter()
            .all(|e| found.contains(e.pseudonym.as_str()))
    );
    assert_eq!(found.len(), GOOD_ROWS);
}

/// The serialized size of every good line of `csv` once sealed by `clinic`, as an import
/// request carries it: measured, since padding and blind indexes make it hard to foresee.
fn sealed_sizes(clinic: &Clinic, csv: &Path, books: &Books) -> Vec<usize> {
    parsed(csv, books)
        .iter()
        .map(|row| {
            let pseudonym = Pseudonym::generate().unwrap();
            let sealed =
                patients::seal(clinic, &pseudonym, &row.passport, row.record.clone()).unwrap();
            serde_json::to_vec(&sealed).unwrap().len()
        })
        .collect()
}

/// The patients of an import request's body.
fn patients_of(body: &serde_json::Value) -> &[serde_json::Value] {
    body["patients"].as_array().unwrap()
}

#[test]
fn batches_are_cut_by_the_size_of_the_request_body() {
    // Arrange: a budget that holds any two sealed patients of the example, and a batch size
    // that would take the whole file in one request.
    let app = spawn_app(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(ImportBodies::new(transport(&app)));
    let clinic = library_clinician(&app, "H18", "galina", dir.path(), recorder.clone());
    let books = Books::load(&clinic.api).unwrap();
    let csv = example_in(dir.path());
    let mut sizes = sealed_sizes(&clinic, &csv, &books);
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let framing = serde_json::json!({ "patients": [] }).to_string().len();
    let budget = framing + sizes[0] + 1 + sizes[1];
    assert!(
        sizes.iter().sum::<usize>() > budget,
        "the example does not fit one request"
    );
    let options = import::Options {
        batch_size: GOOD_ROWS,
        batch_bytes: budget,
        progress: false,
        ..import::Options::default()
    };

    // Act
    let report = import::run(&clinic, &csv, &options).unwrap();

    // Assert: several requests, none over the budget, each closed only before a patient that
    // would have taken it over.
    let sent = recorder.sent();
    assert!(sent.len() > 1, "{} import requests", sent.len());
    for (len, body) in &sent {
        assert!(*len <= budget, "a body of {len} bytes, over {budget}");
        assert!(!patients_of(body).is_empty());
    }
    for pair in sent.windows(2) {
        let (len, _) = &pair[0];
        let next = patients_of(&pair[1].1)[0].to_string().len();
        assert!(
            len + 1 + next > budget,
            "a batch of {len} bytes was closed before a patient of {next} that fitted"
        );
    }
    // Every good line arrives once.
    let carried: usize = sent.iter().map(|(_, body)| patients_of(body).len()).sum();
    assert_eq!((report.imported, carried), (GOOD_ROWS, GOOD_ROWS));
    assert_eq!(total(&clinic), GOOD_ROWS as i64);
    assert_eq!(
        register_of(&clinic, &books),
        canonical(&parsed(&example(), &books), &books)
    );
    assert!(journal_of(&csv).pending.is_empty());
    // The journal was created through a temporary file (then appended to): none is left.
    let leftovers = temporary_files(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_patient_alone_over_the_byte_budget_is_still_sent_alone() {
    // Arrange: a budget no sealed patient fits in.
    let app = spawn_app(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(ImportBodies::new(transport(&app)));
    let clinic = library_clinician(&app, "H19", "daria", dir.path(), recorder.clone());
    let books = Books::load(&clinic.api).unwrap();
    let csv = example_in(dir.path());
    let options = import::Options {
        batch_bytes: 1,
        progress: false,
        ..import::Options::default()
    };

    // Act
    let report = import::run(&clinic, &csv, &options).unwrap();

    // Assert: one request a patient, every good line imported once, none dropped.
    let sent = recorder.sent();
    assert_eq!(sent.len(), GOOD_ROWS);
    assert!(sent.iter().all(|(_, body)| patients_of(body).len() == 1));
    assert_eq!(report.imported, GOOD_ROWS);
    let bad: BTreeSet<u64> = report.errors.iter().map(|e| e.line).collect();
    assert_eq!(bad, BAD_LINES.into_iter().collect());
    assert_eq!(total(&clinic), GOOD_ROWS as i64);
    assert_eq!(
        register_of(&clinic, &books),
        canonical(&parsed(&example(), &books), &books)
    );
}

/// The binary's `patient edit` against a passport written with the fields only the browser
/// has (notes, identity document, contact person).
#[test]
fn the_binary_edits_a_patient_without_losing_the_browser_s_fields() {
    use client_crypto::{ContactPerson, IdentityDocument};
    let app = spawn_app(Backend::Sqlite);
    let (_, dir) = binary_user(&app, "H6", "dina", &["user"]);
    let key_file = dir.path().join("key.json");
    let run = |args: &[&str]| run_ok(&app, dir.path(), args);
    // Typed on a Russian keyboard: a Cyrillic С in the diagnosis code.
    let added = run(&[
        "patient",
        "add",
        "--surname",
        "Лебедева",
        "--first-name",
        "Нина",
        "--dob",
        "01.02.1940",
        "--sex",
        "Ж",
        "--diagnosis",
        "С50",
        "--phone",
        "+7 900 111-22-33",
    ]);
    let id: i64 = added
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{added}"));

    // The surname typed at the terminal, not given as an argument.
    let mut search = client(&app, dir.path(), &key_file)
        .args(["patient", "search", "--ask"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut search.stdin.take().unwrap(),
        "Лебедева\n\n\n\n".as_bytes(),
    )
    .unwrap();
    let found = search.wait_with_output().unwrap();
    assert!(found.status.success(), "{found:?}");
    let listed = String::from_utf8(found.stdout).unwrap();
    assert!(
        listed.contains(&id.to_string()) && listed.contains("Лебедева"),
        "{listed}"
    );
    assert!(
        String::from_utf8(found.stderr)
            .unwrap()
            .contains("Surname: ")
    );

    // The browser adds the notes, an identity document and a contact person.
    let api = signed_in(&app, "dina", Arc::new(transport(&app)));
    let pair = keys::load(&key_file, PASSPHRASE).unwrap();
    let clinic = Clinic::open(
        api,
        &pair,
        keys::default_bits(10_000),
        &mut Pins::in_memory(),
    )
    .unwrap();
    let books = Books::load(&clinic.api).unwrap();
    let (patient, mut passport) = patients::show(&clinic, id).unwrap();
    assert_eq!(books.diagnoses.code(patient.record.diagnosis_id), "C50");
    passport.notes = Some("ключ у соседки".into());
    passport.identity_document = Some(IdentityDocument {
        kind: "паспорт РФ".into(),
        series: Some("8600".into()),
        number: "123456".into(),
        issued_by: None,
        issued_on: None,
    });
    passport.contact_person = Some(ContactPerson {
        name: "Лебедев Пётр".into(),
        relation: Some("сын".into()),
        phone: None,
    });
    patients::edit(
        &clinic,
        id,
        patient.version,
        Some(&passport),
        patient.record.clone(),
    )
    .unwrap();
    let (before, browser_passport) = patients::show(&clinic, id).unwrap();

    // Act: a change of status only.
    let today = palreg_client::dates::today_iso();
    run(&[
        "patient",
        "edit",
        &id.to_string(),
        "--status",
        "discharged",
        "--discharged-on",
        &today,
    ]);

    // Assert: the record changed; the passport was not even sealed again.
    let (after, opened) = patients::show(&clinic, id).unwrap();
    assert_eq!(after.record.status, "discharged");
    assert!(after.version > before.version);
    assert_eq!(
        after.passport, before.passport,
        "the passport is not re-sealed"
    );
    assert!(opened == browser_passport);

    // Act: a change of the phone.
    run(&[
        "patient",
        "edit",
        &id.to_string(),
        "--phone",
        "+7 900 999-88-77",
    ]);

    // Assert: the phone changed, everything else of the passport stayed.
    let (_, opened) = patients::show(&clinic, id).unwrap();
    assert_eq!(opened.phone.as_deref(), Some("+7 900 999-88-77"));
    let mut expected = browser_passport.clone();
    expected.phone = opened.phone.clone();
    assert!(
        opened == expected,
        "notes, document and contact person are kept"
    );
    assert_eq!(opened.notes.as_deref(), Some("ключ у соседки"));

    // Act: the notes and the contact's phone by their flags (a note of two lines).
    run(&[
        "patient",
        "edit",
        &id.to_string(),
        "--notes",
        "ключ у соседки\nкв. 5",
        "--contact-phone",
        "+7 900 555-44-33",
    ]);

    // Assert: those two changed; the contact's name and relation and the document stayed.
    let (_, edited) = patients::show(&clinic, id).unwrap();
    assert_eq!(edited.notes.as_deref(), Some("ключ у соседки\nкв. 5"));
    let contact = edited.contact_person.clone().unwrap();
    assert_eq!(contact.phone.as_deref(), Some("+7 900 555-44-33"));
    assert_eq!(
        (contact.name.as_str(), contact.relation.as_deref()),
        ("Лебедев Пётр", Some("сын"))
    );
    assert!(edited.identity_document == browser_passport.identity_document);
    let shown = run(&["patient", "show", &id.to_string()]);
    for line in [
        "id_document_kind      паспорт РФ",
        "contact_phone         +7 900 555-44-33",
        "notes                 ключ у соседки\n                        кв. 5",
    ] {
        assert!(shown.contains(line), "{line:?} in {shown}");
    }

    // A patient added with a document by its flags; a document without its number is refused
    // with the column named, never the value.
    let added = run(&[
        "patient",
        "add",
        "--surname",
        "Орлова",
        "--first-name",
        "Вера",
        "--dob",
        "1944-08-30",
        "--sex",
        "F",
        "--diagnosis",
        "C50",
        "--id-document-kind",
        "паспорт РФ",
        "--id-document-series",
        "8601",
        "--id-document-number",
        "654321",
        "--id-document-issued-on",
        "02.03.2005",
    ]);
    let orlova: i64 = added.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (_, shown) = patients::show(&clinic, orlova).unwrap();
    let document = shown.identity_document.clone().unwrap();
    assert_eq!(
        (document.number.as_str(), document.issued_on.as_deref()),
        ("654321", Some("2005-03-02"))
    );
    let refused = client(&app, dir.path(), &key_file)
        .args(["patient", "add", "--surname", "Зуева", "--first-name", "Ия"])
        .args(["--dob", "1950-01-01", "--sex", "F", "--diagnosis", "C50"])
        .args([
            "--id-document-kind",
            "паспорт РФ",
            "--id-document-series",
            "8602",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--id-document-number: required"), "{said}");
    assert!(!said.contains("8602") && !said.contains("Зуева"), "{said}");
}

/// `patient add --ask` and `patient edit --ask` take the whole passport at the terminal: the
/// document, the contact person and the notes too, so that no identifying value is an argument
/// of the process (nor lands in the shell's history).
#[test]
fn the_binary_takes_the_whole_passport_at_the_terminal() {
    let app = spawn_app(Backend::Sqlite);
    let (_, dir) = binary_user(&app, "H7", "rita", &["user"]);
    let key_file = dir.path().join("key.json");
    let run = |args: &[&str]| run_ok(&app, dir.path(), args);
    // The client run with `answers` typed at the terminal; its arguments as the process list
    // shows them to every local account.
    let ask = |args: &[&str], answers: &[&str]| {
        let mut child = client(&app, dir.path(), &key_file)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Read while the client waits for its answers. Right after `spawn` the new program may
        // not have laid out its arguments yet: the list reads empty for a moment.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let mut listed = String::new();
        for _ in 0..500 {
            match std::fs::read(&cmdline) {
                Ok(c) if c.is_empty() => std::thread::sleep(std::time::Duration::from_millis(10)),
                Ok(c) => {
                    listed = String::from_utf8_lossy(&c).replace('\0', " ");
                    break;
                }
                // No /proc here: the arguments as given.
                Err(_) => {
                    listed = args.join(" ");
                    break;
                }
            }
        }
        let typed: String = answers.iter().map(|a| format!("{a}\n")).collect();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), typed.as_bytes()).unwrap();
        (child.wait_with_output().unwrap(), listed)
    };

    // Act: everything identifying typed at the terminal; only the record given as flags.
    let answers = [
        "Лебедева",
        "Нина",
        "Петровна",
        "01.02.1940",
        "112-233-445 95",
        "1000000000000001",
        "+7 900 111-22-33",
        "Петрозаводск, ул. Ленина, 1",
        "паспорт РФ",
        "8600",
        "123456",
        "ОВД г. Петрозаводска",
        "02.03.2005",
        "Лебедев Пётр",
        "сын",
        "+7 900 555-44-33",
        "ключ у соседки",
    ];
    let (added, listed) = ask(
        &[
            "patient",
            "add",
            "--ask",
            "--sex",
            "Ж",
            "--diagnosis",
            "C50",
        ],
        &answers,
    );

    // Assert: registered, asked for in turn, nothing identifying among the arguments and so
    // nothing to warn about.
    assert!(added.status.success(), "{added:?}");
    let prompts = String::from_utf8(added.stderr).unwrap();
    for prompt in [
        "Identity document kind (empty: none): ",
        "Document number: ",
        "Contact person's name (empty: none): ",
        "Contact person's relation: ",
        "Notes (empty: none): ",
    ] {
        assert!(prompts.contains(prompt), "{prompt:?} in {prompts}");
    }
    assert!(!prompts.contains("note:"), "{prompts}");
    assert!(listed.contains("--ask"), "{listed}");
    for value in answers {
        assert!(!listed.contains(value), "{value:?} in {listed}");
    }
    let added = String::from_utf8(added.stdout).unwrap();
    let id = added
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("{added}"))
        .to_string();
    let line = |column: &str, value: &str| format!("  {column:<21} {value}\n");
    let shown = run(&["patient", "show", &id]);
    for (column, value) in [
        ("surname", "Лебедева"),
        ("snils", "112-233-445 95"),
        ("id_document_kind", "паспорт РФ"),
        ("id_document_series", "8600"),
        ("id_document_number", "123456"),
        ("id_document_issued_by", "ОВД г. Петрозаводска"),
        ("id_document_issued_on", "2005-03-02"),
        ("contact_name", "Лебедев Пётр"),
        ("contact_relation", "сын"),
        ("contact_phone", "+7 900 555-44-33"),
        ("notes", "ключ у соседки"),
    ] {
        assert!(shown.contains(&line(column, value)), "{column} in {shown}");
    }

    // Act: an edit at the terminal of the document's number and the contact's phone alone;
    // every other answer empty.
    let mut answers = [""; 17];
    answers[10] = "654321";
    answers[15] = "+7 900 777-66-55";
    let (edited, listed) = ask(&["patient", "edit", &id, "--ask"], &answers);

    // Assert: those two changed, everything else as it was.
    assert!(edited.status.success(), "{edited:?}");
    let prompts = String::from_utf8(edited.stderr).unwrap();
    assert!(
        prompts.contains("Identity document kind (empty: unchanged): Document series: "),
        "{prompts}"
    );
    assert!(!listed.contains("654321") && !listed.contains("777-66-55"));
    let after = run(&["patient", "show", &id]);
    let expected = shown
        .replace(
            &line("id_document_number", "123456"),
            &line("id_document_number", "654321"),
        )
        .replace(
            &line("contact_phone", "+7 900 555-44-33"),
            &line("contact_phone", "+7 900 777-66-55"),
        );
    // The first line names the version, which the edit moved on.
    let fields = |shown: &str| shown.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(fields(&after), fields(&expected));

    // A document without its number, typed at the terminal, is refused as its flags would be:
    // the column named, never the value.
    let answers = [
        "Зуева",
        "Ия",
        "",
        "1950-01-01",
        "",
        "",
        "",
        "",
        "паспорт РФ",
        "8602",
        "",
        "",
        "",
        "",
        "",
    ];
    let (refused, _) = ask(
        &[
            "patient",
            "add",
            "--ask",
            "--sex",
            "F",
            "--diagnosis",
            "C50",
        ],
        &answers,
    );
    assert!(!refused.status.success(), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--id-document-number: required"), "{said}");
    assert!(!said.contains("8602") && !said.contains("Зуева"), "{said}");
}

/// Passports still under the older version during an unfinished rotation open and are found.
#[test]
fn a_rotation_in_progress_leaves_older_passports_readable_and_findable() {
    let app = spawn_app(Backend::Sqlite);
    let admin = app.admin_token();
    let institution = app.create_institution(&admin, "H7", "Hospice seven");
    app.create_user(&admin, "rita", &["user", "admin"], Some(institution));
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("rita.json");
    let api = signed_in(&app, "rita", Arc::new(transport(&app)));
    keys::init(&api, &key_file, PASSPHRASE).unwrap();
    let pair = keys::load(&key_file, PASSPHRASE).unwrap();
    keys::bootstrap(&api, &pair).unwrap();
    let v1 = Clinic::open(api.clone(), &pair, 8, &mut Pins::in_memory()).unwrap();
    let books = Books::load(&api).unwrap();
    let old = row::parse(
        &Cells(&[
            ("surname", "Орлова"),
            ("first_name", "Ирина"),
            ("date_of_birth", "1966-06-16"),
            ("sex", "F"),
            ("diagnosis", "C50"),
            ("status", "registered"),
            ("registered_on", "2025-07-07"),
        ]),
        &books,
        "2100-01-01",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let old_id = patients::add(&v1, &old.passport, old.record.clone()).unwrap();

    // A rotation starts: version 2, linked to version 1 and wrapped to rita; the old passport
    // is not re-sealed yet.
    rotate(&api, &pair, v1.key().unwrap());
    let clinic = Clinic::open(api, &pair, 8, &mut Pins::in_memory()).unwrap();
    assert_eq!(clinic.key().unwrap().version(), 2);
    let new_id = patients::add(&clinic, &old.passport, old.record.clone()).unwrap();

    // Show, search and export reach both.
    let (patient, passport) = patients::show(&clinic, old_id).unwrap();
    assert_eq!(patient.passport_key_version, 1);
    assert_eq!(passport.surname, "Орлова");
    let found = patients::search(
        &clinic,
        &Query {
            surname: Some("орлова".into()),
            ..Query::default()
        },
    )
    .unwrap();
    let ids: BTreeSet<i64> = found.matches.iter().map(|(p, _)| p.id).collect();
    assert_eq!(ids, [old_id, new_id].into_iter().collect());
    let out = dir.path().join("export.csv");
    assert_eq!(
        export::run(&clinic, &out, false, export::Layout::default()).unwrap(),
        2
    );

    // A colleague joining mid-rotation is granted both versions: the old passport opens.
    app.create_user(&admin, "sveta", &["user"], Some(institution));
    let sveta_api = signed_in(&app, "sveta", Arc::new(transport(&app)));
    let sveta_file = dir.path().join("sveta.json");
    keys::init(&sveta_api, &sveta_file, PASSPHRASE).unwrap();
    let granted = keys::grant(
        &clinic.api,
        &pair,
        "sveta",
        &mut Pins::in_memory(),
        &mut |_, _| true,
    )
    .unwrap();
    assert_eq!((granted.versions, granted.skipped), (vec![1, 2], vec![]));
    assert_eq!(
        keys::grant(
            &clinic.api,
            &pair,
            "sveta",
            &mut Pins::in_memory(),
            &mut |_, _| true
        )
        .unwrap()
        .versions,
        Vec::<u32>::new(),
        "nothing left to grant"
    );
    let sveta = Clinic::open(
        sveta_api,
        &keys::load(&sveta_file, PASSPHRASE).unwrap(),
        8,
        &mut Pins::in_memory(),
    )
    .unwrap();
    assert_eq!(patients::show(&sveta, old_id).unwrap().1.surname, "Орлова");

    // An edit of the passport seals it under the newest version.
    patients::edit(
        &clinic,
        old_id,
        patient.version,
        Some(&passport),
        patient.record,
    )
    .unwrap();
    assert_eq!(
        patients::show(&clinic, old_id)
            .unwrap()
            .0
            .passport_key_version,
        2
    );
}

/// Cells of one line, by column.
struct Cells<'a>(&'a [(&'a str, &'a str)]);

impl row::Cells for Cells<'_> {
    fn cell(&self, column: &str) -> &str {
        self.0
            .iter()
            .find(|(c, _)| *c == column)
            .map_or("", |(_, v)| v)
    }
}

/// The binary run in `dir` (its client folder, with `key.json` the key file).
fn run_client(app: &TestApp, dir: &Path, args: &[&str]) -> std::process::Output {
    client(app, dir, &dir.join("key.json"))
        .args(args)
        .output()
        .unwrap()
}

/// A user of `roles` in a new institution `code`, using the binary in a folder of its own (its
/// key file `key.json` there): signed in, key pair made, the institution's first key version
/// created. Returns the institution and the folder.
fn binary_user(app: &TestApp, code: &str, login: &str, roles: &[&str]) -> (i64, tempfile::TempDir) {
    let admin = app.admin_token();
    let institution = app.create_institution(&admin, code, &format!("Hospice {code}"));
    app.create_user(&admin, login, roles, Some(institution));
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["login", "--login", login][..],
        &["keys", "init"],
        &["keys", "bootstrap"],
    ] {
        run_ok(app, dir.path(), args);
    }
    (institution, dir)
}

/// [`run_client`], which must succeed: its standard output.
fn run_ok(app: &TestApp, dir: &Path, args: &[&str]) -> String {
    let output = run_client(app, dir, args);
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// A clinician allowed to rotate keys, using the binary in a folder of its own: signed in, key
/// pair made, the institution's first key version created. Returns the institution, the
/// folder, a signed-in API client of the same account and the key pair.
fn binary_clinician(
    app: &TestApp,
    code: &str,
    login: &str,
) -> (i64, tempfile::TempDir, Api, UserKeyPair) {
    let (institution, dir) = binary_user(app, code, login, &["user", "admin"]);
    let api = signed_in(app, login, Arc::new(transport(app)));
    let pair = keys::load(&dir.path().join("key.json"), PASSPHRASE).unwrap();
    (institution, dir, api, pair)
}

/// The key versions the account of `api` holds.
fn held(api: &Api, pair: &UserKeyPair) -> keys::HeldKeys {
    keys::institution_keys(api, &api.me().unwrap(), pair, &mut Pins::in_memory()).unwrap()
}

/// Creates the next key version after `linked_by`'s through the API, wrapped to the caller,
/// with its link made by `linked_by`: the current version for a genuine rotation, another key
/// for a planted one (a well-formed link the server cannot tell from a good one).
fn rotate(api: &Api, pair: &UserKeyPair, linked_by: &InstitutionKey) -> InstitutionKey {
    let me = api.me().unwrap();
    let institution = me.institution.as_ref().unwrap().id;
    let next = InstitutionKey::generate(linked_by.version() + 1).unwrap();
    let _: serde_json::Value = api
        .post(
            &format!("/api/v1/institutions/{institution}/keys"),
            &serde_json::json!({
                "version": next.version(),
                "envelope": next.wrap_for(pair.public_key(), me.id, institution).unwrap(),
                "link": linked_by.link_to(&next, institution).unwrap(),
            }),
        )
        .unwrap();
    next
}

/// `patient add` of a patient with this surname, identifying values as arguments.
fn add_patient(surname: &str) -> [&str; 12] {
    [
        "patient",
        "add",
        "--surname",
        surname,
        "--first-name",
        "Нина",
        "--dob",
        "01.02.1940",
        "--sex",
        "Ж",
        "--diagnosis",
        "C50",
    ]
}

/// The id `patient add` printed (`patient 12 registered`).
fn added_id(output: &std::process::Output) -> i64 {
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{output:?}"))
}

/// The line of `keys status` about a held key version.
fn status_line(status: &str, version: u32) -> &str {
    status
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("version {version} ")))
        .unwrap_or_else(|| panic!("no version {version} in {status}"))
}

/// The key pins the binary keeps in `dir` (none: `null`).
fn pins_of(dir: &Path) -> serde_json::Value {
    match std::fs::read_to_string(palreg_client::config::pins_path(dir)) {
        Ok(text) => serde_json::from_str(&text).unwrap(),
        Err(_) => serde_json::Value::Null,
    }
}

/// The pin-file key of `api`'s account and institution on the test server.
fn pin_scope(app: &TestApp, api: &Api) -> String {
    let me = api.me().unwrap();
    PinScope::new(&app.base, me.id, me.institution.unwrap().id).key()
}

fn patients_on_server(api: &Api) -> i64 {
    api.search(&serde_json::json!({"limit": 1})).unwrap().total
}

/// A rotation made as it should be (version 2 linked by version 1): both versions are
/// trusted, and new passports are sealed under version 2.
#[test]
fn the_binary_trusts_a_linked_rotation_and_seals_under_it() {
    let app = spawn_app(Backend::Sqlite);
    let (institution, dir, api, pair) = binary_clinician(&app, "H8", "lena");
    let run = |args: &[&str]| run_client(&app, dir.path(), args);
    let old = run(&add_patient("Лебедева"));
    assert!(old.status.success(), "{old:?}");

    // Act: the rotation, through the API.
    let v2 = rotate(&api, &pair, held(&api, &pair).get(1).unwrap());

    // Assert: `keys status` shows each version's fingerprint, both trusted.
    let status = run(&["keys", "status"]);
    assert!(status.status.success(), "{status:?}");
    let text = String::from_utf8(status.stdout).unwrap();
    let v1_fingerprint = held(&api, &pair).get(1).unwrap().fingerprint(institution);
    let line = status_line(&text, 1);
    assert!(
        line.contains(v1_fingerprint.as_str()) && line.contains("this client remembers"),
        "version 1 was pinned by the first `add`: {text}"
    );
    let line = status_line(&text, 2);
    assert!(
        line.contains(v2.fingerprint(institution).as_str())
            && line.contains("trusted: linked to version 1"),
        "{text}"
    );
    assert!(!text.contains("NOT TRUSTED"), "{text}");

    // `add` seals under version 2; the search finds both patients.
    let add = run(&add_patient("Лебедева"));
    assert!(add.status.success(), "{add:?}");
    let new = api.patient(added_id(&add)).unwrap();
    assert_eq!(new.passport_key_version, 2);
    assert_eq!(api.patient(added_id(&old)).unwrap().passport_key_version, 1);
    let found = run(&["patient", "search", "--surname", "Лебедева"]);
    assert!(
        String::from_utf8_lossy(&found.stdout).contains("2 found"),
        "{found:?}"
    );
    assert!(
        !String::from_utf8_lossy(&found.stderr).contains("warning"),
        "{found:?}"
    );
}

/// A key version planted by whoever can write to the server's database (here: a version 2
/// wrapped to the clinician, with a well-formed link made by a key that is not version 1):
/// nothing is sealed under it, no token is computed with it, it is not granted, and the
/// patients under version 1 are still found.
#[test]
fn a_planted_key_version_seals_nothing_searches_nothing_and_is_not_granted() {
    let app = spawn_app(Backend::Sqlite);
    let (institution, dir, api, pair) = binary_clinician(&app, "H9", "mila");
    let run = |args: &[&str]| run_client(&app, dir.path(), args);
    let old = run(&add_patient("Лебедева"));
    assert!(old.status.success(), "{old:?}");
    let old_id = added_id(&old);
    let admin = app.admin_token();
    app.create_user(&admin, "nika", &["user"], Some(institution));
    let nika = signed_in(&app, "nika", Arc::new(transport(&app)));
    keys::init(&nika, &dir.path().join("nika.json"), PASSPHRASE).unwrap();

    // Arrange: the attack.
    let stranger = InstitutionKey::generate(1).unwrap();
    let planted = rotate(&api, &pair, &stranger);
    let before = patients_on_server(&api);

    // Act + assert: `add` refuses, naming the version and the reason; nothing reaches the server.
    let add = run(&add_patient("Орлова"));
    assert!(!add.status.success(), "{add:?}");
    let error = String::from_utf8_lossy(&add.stderr);
    for expected in [
        "version 2",
        "key_chain_broken",
        "does not verify under version 1",
        "Do not use version 2",
        "tell your administrator",
    ] {
        assert!(error.contains(expected), "{expected:?} in {error}");
    }
    assert_eq!(patients_on_server(&api), before, "no patient created");

    // Import refuses before it reads the file or writes a journal.
    let csv = example_in(dir.path());
    let import = run(&["import", csv.to_str().unwrap()]);
    assert!(!import.status.success(), "{import:?}");
    assert!(String::from_utf8_lossy(&import.stderr).contains("key_chain_broken"));
    assert!(!import::journal_path(&csv).exists());
    assert_eq!(patients_on_server(&api), before);

    // An edit that would re-seal the passport refuses; one of the record only goes through.
    let id = old_id.to_string();
    let edit = run(&["patient", "edit", &id, "--phone", "+7 900 111-22-33"]);
    assert!(!edit.status.success(), "{edit:?}");
    assert!(String::from_utf8_lossy(&edit.stderr).contains("key_chain_broken"));
    let today = palreg_client::dates::today_iso();
    let edit = run(&[
        "patient",
        "edit",
        &id,
        "--status",
        "discharged",
        "--discharged-on",
        &today,
    ]);
    assert!(edit.status.success(), "{edit:?}");
    assert_eq!(api.patient(old_id).unwrap().passport_key_version, 1);

    // The search still finds the patient under version 1, with a warning.
    let found = run(&["patient", "search", "--surname", "Лебедева"]);
    assert!(found.status.success(), "{found:?}");
    let listed = String::from_utf8_lossy(&found.stdout);
    assert!(
        listed.contains("Лебедева Нина") && listed.contains("1 found"),
        "{listed}"
    );
    assert!(String::from_utf8_lossy(&found.stderr).contains("version 2 is not trusted"));

    // Its tokens are version 1's only.
    let recorder = Arc::new(Recording::new(transport(&app)));
    let bits = keys::default_bits(10_000);
    let clinic = Clinic::open(
        signed_in(&app, "mila", recorder.clone()),
        &pair,
        bits,
        &mut Pins::in_memory(),
    )
    .unwrap();
    assert_eq!(clinic.keys().len(), 2, "both open passports");
    let trusted: Vec<u32> = clinic.token_keys().iter().map(|k| k.version()).collect();
    assert_eq!(trusted, [1]);
    assert!(
        matches!(clinic.key(), Err(Error::UntrustedKey(d))
            if (d.version, d.refused, d.reason) == (2, 2, Untrusted::BadLink)),
        "sealing is refused"
    );
    let query = Query {
        surname: Some("Лебедева".into()),
        ..Query::default()
    };
    assert_eq!(patients::search(&clinic, &query).unwrap().matches.len(), 1);
    let token = |key: &InstitutionKey| {
        key.blind_index(
            BlindIndexField::Surname,
            "Лебедева",
            BlindIndexBits::new(bits).unwrap(),
        )
        .unwrap()
        .to_token()
    };
    let sent: Vec<serde_json::Value> = recorder
        .bodies()
        .iter()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .filter_map(|b| b.get("blind_indexes").cloned())
        .collect();
    let v1 = held(&api, &pair);
    let v1 = v1.get(1).unwrap();
    assert_eq!(sent, [serde_json::json!([token(v1)])]);
    assert_ne!(token(v1), token(&planted));

    // `keys status` names the planted version as untrusted.
    let status = run(&["keys", "status"]);
    assert!(status.status.success(), "{status:?}");
    let text = String::from_utf8(status.stdout).unwrap();
    let line = status_line(&text, 2);
    assert!(
        line.contains(planted.fingerprint(institution).as_str())
            && line.contains("NOT TRUSTED (key_chain_broken)"),
        "{text}"
    );
    assert!(status_line(&text, 1).contains("this client remembers"));

    // A planted version is not pinned by hand either.
    let trust = run(&["keys", "trust", "--version", "2", "--yes"]);
    assert!(!trust.status.success(), "{trust:?}");
    let refused = String::from_utf8_lossy(&trust.stderr);
    assert!(
        refused.contains("key_chain_broken") && refused.contains("palreg keys withdraw"),
        "{refused}"
    );
    assert!(
        !pins_of(dir.path())
            .to_string()
            .contains(planted.fingerprint(institution).as_str())
    );

    // `keys grant` gives version 1 only, and says why not version 2.
    let grant = run(&["keys", "grant", "--user", "nika", "--yes"]);
    assert!(grant.status.success(), "{grant:?}");
    let said = String::from_utf8_lossy(&grant.stdout);
    assert!(
        said.contains("granted key version 1 to nika")
            && said.contains("not granted: key version 2 (key_chain_broken)"),
        "{said}"
    );
    let members = api.members(institution).unwrap();
    let nika = members.members.iter().find(|m| m.login == "nika").unwrap();
    assert_eq!(nika.holds, [1]);
}

/// A version made before links were kept (link NULL, set here in the database since the API
/// makes none any more): `keys link` shows its fingerprint and stores nothing without
/// `--yes`, links it with `--yes`, and never twice.
#[test]
fn keys_link_vouches_for_a_legacy_version_once_confirmed() {
    let app = spawn_app(Backend::Sqlite);
    let (institution, dir, api, pair) = binary_clinician(&app, "H10", "ksenia");
    let run = |args: &[&str]| run_client(&app, dir.path(), args);
    let v2 = rotate(&api, &pair, held(&api, &pair).get(1).unwrap());
    app.raw_sql(&format!(
        "UPDATE institution_keys SET link = NULL WHERE institution_id = {institution} AND version = 2"
    ));
    let stored_link = || {
        app.query_texts(&format!(
            "SELECT COALESCE(link, '') AS t FROM institution_keys \
             WHERE institution_id = {institution} AND version = 2"
        ))
    };
    assert_eq!(stored_link(), [""]);

    // Not linked: nothing is sealed under it, and the refusal says what to do.
    let add = run(&add_patient("Лебедева"));
    assert!(!add.status.success(), "{add:?}");
    let error = String::from_utf8_lossy(&add.stderr);
    assert!(
        error.contains("key_chain_missing") && error.contains("keys link --version 2"),
        "{error}"
    );

    // Without --yes: the fingerprint to compare, nothing stored, a failure.
    let unconfirmed = run(&["keys", "link", "--version", "2"]);
    assert!(!unconfirmed.status.success(), "{unconfirmed:?}");
    let shown = String::from_utf8_lossy(&unconfirmed.stdout);
    assert!(
        shown.contains(v2.fingerprint(institution).as_str()) && shown.contains("Compare"),
        "{shown}"
    );
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    assert_eq!(stored_link(), [""]);

    // Versions that cannot be linked.
    for version in ["1", "3"] {
        let refused = run(&["keys", "link", "--version", version, "--yes"]);
        assert!(!refused.status.success(), "{version}: {refused:?}");
    }
    assert_eq!(stored_link(), [""]);

    // Confirmed: linked with version 1, trusted, sealed under.
    let linked = run(&["keys", "link", "--version", "2", "--yes"]);
    assert!(linked.status.success(), "{linked:?}");
    assert!(String::from_utf8_lossy(&linked.stdout).contains("linked to version 1"));
    let link = stored_link().remove(0);
    let keys = held(&api, &pair);
    keys.get(1)
        .unwrap()
        .verify_link(&v2, institution, &link)
        .unwrap();
    let add = run(&add_patient("Лебедева"));
    assert!(add.status.success(), "{add:?}");
    assert_eq!(api.patient(added_id(&add)).unwrap().passport_key_version, 2);

    // A link, once there, is not made again.
    let again = run(&["keys", "link", "--version", "2", "--yes"]);
    assert!(!again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("linked already"));
    assert_eq!(stored_link(), [link]);
}

/// The gap pins close: a holder of version 1 (or whoever can write to the database) replaces
/// the envelope of a version the binary already trusted with a key of their own. Without pins
/// it would be trusted on first use; with them it is `key_changed`: nothing is sealed or
/// searched with it, `keys status` names it, and `keys trust` does not accept it.
#[test]
fn a_replaced_envelope_of_a_trusted_version_is_key_changed() {
    let app = spawn_app(Backend::Sqlite);
    let (institution, dir, api, pair) = binary_clinician(&app, "H11", "tamara");
    let run = |args: &[&str]| run_client(&app, dir.path(), args);
    let first = run(&add_patient("Лебедева"));
    assert!(first.status.success(), "{first:?}");
    let genuine = held(&api, &pair).get(1).unwrap().fingerprint(institution);
    let scope = pin_scope(&app, &api);
    assert_eq!(
        pins_of(dir.path()),
        serde_json::json!({ &scope: {"1": genuine.as_str()} }),
        "the first use pinned version 1"
    );

    // Arrange: a colleague granted version 1 posts another "version 1" for tamara; the server
    // replaces her envelope.
    let admin = app.admin_token();
    app.create_user(&admin, "ulyana", &["user"], Some(institution));
    let ulyana = signed_in(&app, "ulyana", Arc::new(transport(&app)));
    keys::init(&ulyana, &dir.path().join("ulyana.json"), PASSPHRASE).unwrap();
    keys::grant(
        &api,
        &pair,
        "ulyana",
        &mut Pins::in_memory(),
        &mut |_, _| true,
    )
    .unwrap();
    let me = api.me().unwrap();
    let fake = InstitutionKey::generate(1).unwrap();
    let _: serde_json::Value = ulyana
        .post(
            &format!("/api/v1/institutions/{institution}/keys/1/envelopes"),
            &serde_json::json!({
                "recipient_id": me.id,
                "envelope": fake.wrap_for(pair.public_key(), me.id, institution).unwrap(),
            }),
        )
        .unwrap();
    let fresh = held(&api, &pair);
    assert_eq!(
        fresh.get(1).unwrap().fingerprint(institution),
        fake.fingerprint(institution)
    );
    assert_eq!(
        fresh.trusted().len(),
        1,
        "a client without pins would trust the replaced key on first use"
    );
    let before = patients_on_server(&api);

    // Act + assert: `add` refuses, naming the version and the reason.
    let add = run(&add_patient("Орлова"));
    assert!(!add.status.success(), "{add:?}");
    let error = String::from_utf8_lossy(&add.stderr);
    for expected in [
        "version 1 is not trusted (key_changed)",
        "replaced",
        "tell your administrator",
    ] {
        assert!(error.contains(expected), "{expected:?} in {error}");
    }
    assert_eq!(patients_on_server(&api), before, "no patient created");

    // No token is computed with it: a search by surname refuses rather than ask for all.
    let search = run(&["patient", "search", "--surname", "Лебедева"]);
    assert!(!search.status.success(), "{search:?}");
    assert!(String::from_utf8_lossy(&search.stderr).contains("key_changed"));

    // `keys status` shows it.
    let status = run(&["keys", "status"]);
    assert!(status.status.success(), "{status:?}");
    let text = String::from_utf8(status.stdout).unwrap();
    let line = status_line(&text, 1);
    assert!(
        line.contains(fake.fingerprint(institution).as_str())
            && line.contains("NOT TRUSTED (key_changed)"),
        "{text}"
    );
    assert!(
        text.contains("key chain: version 1 (key_changed)")
            && text.contains("New passports cannot be saved"),
        "{text}"
    );

    // `keys trust` refuses it, and the pin stays the genuine key's.
    let trust = run(&["keys", "trust", "--version", "1", "--yes"]);
    assert!(!trust.status.success(), "{trust:?}");
    assert!(String::from_utf8_lossy(&trust.stderr).contains("key_changed"));
    assert_eq!(
        pins_of(dir.path()),
        serde_json::json!({ &scope: {"1": genuine.as_str()} })
    );

    // An envelope stored for tamara that her key does not open (wrapped to ulyana's): the
    // refusal says what it is.
    let ulyana_key = ulyana.me().unwrap();
    let members = api.members(institution).unwrap();
    let ulyana_public = members
        .members
        .iter()
        .find(|m| m.user_id == ulyana_key.id)
        .and_then(|m| m.public_key.clone())
        .unwrap();
    let _: serde_json::Value = ulyana
        .post(
            &format!("/api/v1/institutions/{institution}/keys/1/envelopes"),
            &serde_json::json!({
                "recipient_id": me.id,
                "envelope": fake.wrap_for(&ulyana_public.parse().unwrap(), me.id, institution).unwrap(),
            }),
        )
        .unwrap();
    let add = run(&add_patient("Орлова"));
    assert!(!add.status.success(), "{add:?}");
    let error = String::from_utf8_lossy(&add.stderr);
    assert!(
        error.contains("version 1 stored for you does not open with your key"),
        "{error}"
    );
    assert_eq!(patients_on_server(&api), before, "no patient created");
}

/// Every version the binary knew is taken from its user on the server (here: version 1's
/// envelope deleted) and a version it never saw is the only one left: not trusted on first use
/// again (`key_unpinned`) until the user compares its fingerprint and pins it with
/// `keys trust`.
#[test]
fn a_new_oldest_version_is_trusted_only_once_pinned_by_hand() {
    let app = spawn_app(Backend::Sqlite);
    let (institution, dir, api, pair) = binary_clinician(&app, "H12", "yana");
    let run = |args: &[&str]| run_client(&app, dir.path(), args);
    let first = run(&add_patient("Лебедева"));
    assert!(first.status.success(), "{first:?}");
    let scope = pin_scope(&app, &api);
    let v1 = held(&api, &pair).get(1).unwrap().fingerprint(institution);
    let v2 = rotate(&api, &pair, held(&api, &pair).get(1).unwrap());
    let me = api.me().unwrap();
    app.raw_sql(&format!(
        "DELETE FROM key_envelopes WHERE institution_id = {institution} AND key_version = 1 \
         AND recipient_id = {}",
        me.id
    ));
    let v2_fingerprint = v2.fingerprint(institution);
    let before = patients_on_server(&api);

    // Act + assert: refused, saying what to do.
    let add = run(&add_patient("Орлова"));
    assert!(!add.status.success(), "{add:?}");
    let error = String::from_utf8_lossy(&add.stderr);
    for expected in [
        "version 2 is not trusted (key_unpinned)",
        "keys trust --version 2",
    ] {
        assert!(error.contains(expected), "{expected:?} in {error}");
    }
    assert_eq!(patients_on_server(&api), before);
    let status = run(&["keys", "status"]);
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(
        status_line(&text, 2).contains(v2_fingerprint.as_str())
            && status_line(&text, 2).contains("NOT TRUSTED (key_unpinned)"),
        "{text}"
    );

    // Without --yes: the fingerprint to compare, nothing pinned, a failure.
    let unconfirmed = run(&["keys", "trust", "--version", "2"]);
    assert!(!unconfirmed.status.success(), "{unconfirmed:?}");
    let shown = String::from_utf8_lossy(&unconfirmed.stdout);
    assert!(
        shown.contains(v2_fingerprint.as_str())
            && shown.contains("key_unpinned")
            && shown.contains("Compare"),
        "{shown}"
    );
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    assert_eq!(
        pins_of(dir.path()),
        serde_json::json!({ &scope: {"1": v1.as_str()} })
    );

    // Compared: pinned, and `add` seals under version 2.
    let trusted = run(&["keys", "trust", "--version", "2", "--yes"]);
    assert!(trusted.status.success(), "{trusted:?}");
    assert!(String::from_utf8_lossy(&trusted.stdout).contains("trusted from now on"));
    assert_eq!(
        pins_of(dir.path()),
        serde_json::json!({ &scope: {"1": v1.as_str(), "2": v2_fingerprint.as_str()} })
    );
    let add = run(&add_patient("Орлова"));
    assert!(add.status.success(), "{add:?}");
    assert_eq!(api.patient(added_id(&add)).unwrap().passport_key_version, 2);
    let again = run(&["keys", "trust", "--version", "2", "--yes"]);
    assert!(again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("trusted already"));
}

/// The pin file: created on the first command that opens keys, private, rewritten only when
/// a version is trusted for the first time; a second run trusts from it without asking
/// anything (stdin is closed) and leaves it as it is.
#[test]
fn the_pin_file_is_private_and_a_second_run_leaves_it_alone() {
    let app = spawn_app(Backend::Sqlite);
    let (institution, dir, api, pair) = binary_clinician(&app, "H13", "zlata");
    let run = |args: &[&str]| run_client(&app, dir.path(), args);
    let file = palreg_client::config::pins_path(dir.path());
    assert!(!file.exists(), "bootstrap opens no key");

    let first = run(&["keys", "status"]);
    assert!(first.status.success(), "{first:?}");
    let text = String::from_utf8(first.stdout).unwrap();
    assert!(
        status_line(&text, 1).contains("trusted on first use"),
        "{text}"
    );
    let v1 = held(&api, &pair).get(1).unwrap().fingerprint(institution);
    let scope = pin_scope(&app, &api);
    assert_eq!(
        pins_of(dir.path()),
        serde_json::json!({ &scope: {"1": v1.as_str()} })
    );
    let pinned = std::fs::read(&file).unwrap();
    #[cfg(unix)]
    let inode = {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        meta.ino()
    };

    // A second run: trusted from the pin, nothing asked, the file untouched.
    for args in [&["keys", "status"][..], &add_patient("Лебедева")] {
        let again = run(args);
        assert!(again.status.success(), "{args:?}: {again:?}");
        let said = String::from_utf8_lossy(&again.stdout);
        assert!(!said.contains("first use"), "{said}");
    }
    let text = String::from_utf8(run(&["keys", "status"]).stdout).unwrap();
    assert!(
        status_line(&text, 1).contains("this client remembers"),
        "{text}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), pinned);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().ino(),
            inode,
            "not rewritten"
        );
    }

    // A linked rotation is pinned once, by the next command that opens keys.
    let v2 = rotate(&api, &pair, held(&api, &pair).get(1).unwrap());
    let add = run(&add_patient("Орлова"));
    assert!(add.status.success(), "{add:?}");
    assert_eq!(
        pins_of(dir.path()),
        serde_json::json!({ &scope: {"1": v1.as_str(), "2": v2.fingerprint(institution).as_str()} })
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "private after a rewrite too");
    }
    let leftovers = temporary_files(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A register that fills every column, the identity document, the contact person and notes
/// of several lines too (in Cyrillic, all of it within Windows-1251), as cells by column.
fn whole_register() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![
            ("surname", "Иванова"),
            ("first_name", "Анна"),
            ("patronymic", "Петровна"),
            ("date_of_birth", "12.03.1948"),
            ("sex", "Ж"),
            ("snils", "112-233-445 95"),
            ("policy_number", "7700000000000011"),
            ("phone", "+7 900 111-22-33"),
            ("address", "г. Петрозаводск, ул. Ленина, д. 1"),
            ("diagnosis", "C50"),
            ("status", "registered"),
            ("registered_on", "01.02.2025"),
            ("care_form", "home_visiting"),
            ("district", "petrozavodsk"),
            ("needs", "functional_bed|antidecubitus_mattress"),
            ("id_document_kind", "паспорт РФ"),
            ("id_document_series", "86 00"),
            ("id_document_number", "123456"),
            (
                "id_document_issued_by",
                "ОВД Октябрьского района г. Петрозаводска",
            ),
            ("id_document_issued_on", "05.04.2003"),
            ("contact_name", "Иванов Пётр Сергеевич"),
            ("contact_relation", "сын"),
            ("contact_phone", "+7 911 222-33-44"),
            (
                "notes",
                "ключ у соседки, кв. 5;\nзвонить после 18:00, \"не будить\"\r\nсобака",
            ),
        ],
        vec![
            ("surname", "Фёдоров"),
            ("first_name", "Иван"),
            ("date_of_birth", "1939-07-12"),
            ("sex", "М"),
            ("diagnosis", "C34"),
            ("status", "registered"),
            ("registered_on", "15.03.2025"),
            ("id_document_kind", "свидетельство о рождении"),
            ("id_document_number", "I-ГИ 654321"),
        ],
        vec![
            ("surname", "Кузнецова"),
            ("first_name", "Ольга"),
            ("date_of_birth", "05.05.1960"),
            ("sex", "Ж"),
            ("diagnosis", "C50"),
            ("status", "discharged"),
            ("registered_on", "04.04.2025"),
            ("discharged_on", "01.06.2025"),
            ("contact_name", "Кузнецов Олег"),
            ("notes", "«не звонить» № 2"),
        ],
    ]
}

/// The register as a CSV file's text with `separator` between cells, every column present.
fn register_text(rows: &[Vec<(&str, &str)>], separator: u8) -> String {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(separator)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    writer.write_record(row::COLUMNS).unwrap();
    for cells in rows {
        writer
            .write_record(row::COLUMNS.iter().map(|column| {
                cells
                    .iter()
                    .find(|(c, _)| c == column)
                    .map_or("", |(_, v)| v)
            }))
            .unwrap();
    }
    String::from_utf8(writer.into_inner().unwrap()).unwrap()
}

/// The register of `clinic`, decrypted, as export would write its lines (needs sorted: the
/// server may list them in another order).
fn register_of(clinic: &Clinic, books: &Books) -> BTreeSet<Vec<String>> {
    let mut lines = BTreeSet::new();
    patients::for_each_page(clinic, serde_json::json!({"limit": 500}), |patient| {
        let passport = patients::open(clinic, &patient)?;
        let mut record = patient.record.clone();
        record.needs.sort_unstable();
        lines.insert(row::to_cells(&passport, &record, books));
        Ok(())
    })
    .unwrap();
    lines
}

/// A clinician of a new institution holding its first key version, through the library,
/// sending through `transport`.
fn library_clinician(
    app: &TestApp,
    code: &str,
    login: &str,
    dir: &Path,
    transport: Arc<dyn Transport>,
) -> Clinic {
    let admin = app.admin_token();
    let institution = app.create_institution(&admin, code, &format!("Hospice {code}"));
    app.create_user(&admin, login, &["user"], Some(institution));
    let api = signed_in(app, login, transport);
    let key_file = dir.join(format!("{login}.json"));
    keys::init(&api, &key_file, PASSPHRASE).unwrap();
    let pair = keys::load(&key_file, PASSPHRASE).unwrap();
    keys::bootstrap(&api, &pair).unwrap();
    Clinic::open(api, &pair, 8, &mut Pins::in_memory()).unwrap()
}

/// Export and import carry the whole passport: a register imported into one institution,
/// exported, and the export imported into another gives the same passports there, identity
/// document, contact person and notes of several lines included; none of which goes over the
/// wire in clear.
#[test]
fn an_export_carries_the_whole_passport_into_another_institution() {
    let app = spawn_app(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recording::new(transport(&app)));
    let first = library_clinician(&app, "H15", "alla", dir.path(), recorder.clone());
    let second = library_clinician(&app, "H16", "bella", dir.path(), recorder.clone());
    let books = Books::load(&first.api).unwrap();
    let quiet = import::Options {
        progress: false,
        ..import::Options::default()
    };

    // Arrange: the register imported into the first institution.
    let original = dir.path().join("register.csv");
    std::fs::write(&original, register_text(&whole_register(), b',')).unwrap();
    let report = import::run(&first, &original, &quiet).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.imported, 3);
    let expected = canonical(&parsed(&original, &books), &books);
    assert_eq!(register_of(&first, &books), expected);

    // Act: export it, and import the export into the second institution.
    let export = dir.path().join("export.csv");
    assert_eq!(
        export::run(&first, &export, false, export::Layout::default()).unwrap(),
        3
    );
    let report = import::run(&second, &export, &quiet).unwrap();

    // Assert: the same passports, every field.
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.imported, 3);
    assert_eq!(register_of(&second, &books), expected);
    let rows = parsed(&export, &books);
    let ivanova = rows
        .iter()
        .find(|r| r.passport.surname == "Иванова")
        .unwrap();
    let document = ivanova.passport.identity_document.as_ref().unwrap();
    assert_eq!(document.issued_on.as_deref(), Some("2003-04-05"));
    assert_eq!(
        ivanova
            .passport
            .contact_person
            .as_ref()
            .unwrap()
            .relation
            .as_deref(),
        Some("сын")
    );
    assert_eq!(
        ivanova.passport.notes.as_deref(),
        Some("ключ у соседки, кв. 5;\nзвонить после 18:00, \"не будить\"\r\nсобака")
    );
    let bytes = std::fs::read(&export).unwrap();
    assert!(bytes.starts_with(csvfile::UTF8_BOM), "for Excel");

    // Nothing of the new columns went over the wire in clear.
    let bodies = recorder.bodies();
    assert!(bodies.iter().any(|b| b.contains("\"patients\"")));
    for cells in whole_register() {
        for (column, value) in cells {
            if row::DOCUMENT_COLUMNS.contains(&column)
                || row::CONTACT_COLUMNS.contains(&column)
                || column == "notes"
            {
                assert!(
                    bodies.iter().all(|b| !b.contains(value)),
                    "a request body contains the {column} of a passport"
                );
            }
        }
    }
}

/// Windows-1251, Excel's plain "CSV" on a Russian Windows, through the binary: refused
/// without the flag (naming it), imported with it into the same passports as the UTF-8
/// original, resumed by a re-run; a UTF-8 file with the flag is refused; the export writes it
/// too, and refuses (writing nothing) a character it cannot hold, without showing it.
#[test]
fn the_binary_imports_and_exports_windows_1251() {
    let app = spawn_app(Backend::Sqlite);
    let (_, dir, api, pair) = binary_clinician(&app, "H17", "vlada");
    let run = |args: &[&str]| run_client(&app, dir.path(), args);
    let text = register_text(&whole_register(), b';');
    let utf8 = dir.path().join("register-utf8.csv");
    std::fs::write(&utf8, &text).unwrap();
    let (cp1251, _, unmappable) = encoding_rs::WINDOWS_1251.encode(&text);
    assert!(!unmappable);
    let csv = dir.path().join("register-1251.csv");
    std::fs::write(&csv, &cp1251).unwrap();
    let path = csv.to_str().unwrap();

    // Without the flag: refused, naming it; nothing read, no journal.
    let refused = run(&["import", path]);
    assert!(!refused.status.success(), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--encoding windows-1251"), "{said}");
    assert!(!import::journal_path(&csv).exists());

    // A UTF-8 file with the flag: refused, saying to drop it.
    let refused = run(&["import", utf8.to_str().unwrap(), "--encoding", "cp1251"]);
    assert!(!refused.status.success(), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("without --encoding"), "{said}");
    assert!(!said.contains("Иванова"), "{said}");
    assert_eq!(patients_on_server(&api), 0);

    // With the flag: imported, and the passports are those of the UTF-8 original.
    let imported = run(&["import", path, "--encoding", "windows-1251"]);
    assert!(imported.status.success(), "{imported:?}");
    assert!(String::from_utf8_lossy(&imported.stdout).contains("imported 3,"));
    let clinic = Clinic::open(api.clone(), &pair, 8, &mut Pins::in_memory()).unwrap();
    let books = Books::load(&api).unwrap();
    let register = register_of(&clinic, &books);
    assert_eq!(register, canonical(&parsed(&utf8, &books), &books));
    assert!(register.iter().any(|cells| cells[0] == "Фёдоров"));

    // A re-run resumes from the journal: nothing imported twice.
    let again = run(&["import", path, "--encoding", "cp1251"]);
    assert!(again.status.success(), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("imported 0, already imported earlier 3"),
        "{again:?}"
    );
    assert_eq!(patients_on_server(&api), 3);

    // Export: UTF-8 with a byte-order mark by default; Windows-1251 when asked.
    let out = dir.path().join("export.csv");
    let exported = run(&["export", out.to_str().unwrap()]);
    assert!(exported.status.success(), "{exported:?}");
    assert!(std::fs::read(&out).unwrap().starts_with(csvfile::UTF8_BOM));
    // Windows-1251 when asked, here with Russian Excel's `;` between cells.
    let out_1251 = dir.path().join("export-1251.csv");
    let exported = run(&[
        "export",
        out_1251.to_str().unwrap(),
        "--encoding",
        "windows-1251",
        "--separator",
        "semicolon",
    ]);
    assert!(exported.status.success(), "{exported:?}");
    let bytes = std::fs::read(&out_1251).unwrap();
    assert!(bytes.starts_with(b"surname;first_name;"));
    let (lines, _) = csvfile::read(&bytes, Encoding::Windows1251).unwrap();
    let rows: Vec<_> = lines
        .iter()
        .filter_map(|l| row::parse(l, &books, "2100-01-01").ok())
        .collect();
    assert_eq!(canonical(&rows, &books), register);

    // A name Windows-1251 cannot hold: the export fails, names line and column, writes nothing.
    let added = run(&add_patient("Müller"));
    assert!(added.status.success(), "{added:?}");
    let id = added_id(&added);
    let refused_out = dir.path().join("export-refused.csv");
    let refused = run(&[
        "export",
        refused_out.to_str().unwrap(),
        "--encoding",
        "windows-1251",
    ]);
    assert!(!refused.status.success(), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("column surname") && said.contains(&format!("(patient {id})")),
        "{said}"
    );
    assert!(said.contains("line "), "{said}");
    assert!(!said.contains("Müller") && !said.contains('ü'), "{said}");
    assert!(!refused_out.exists(), "nothing written");
    let forced = run(&[
        "export",
        out_1251.to_str().unwrap(),
        "--force",
        "--encoding",
        "windows-1251",
    ]);
    assert!(!forced.status.success(), "{forced:?}");
    assert_eq!(std::fs::read(&out_1251).unwrap(), bytes, "left as it was");
}
