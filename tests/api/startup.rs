use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palreg_server::config::SettingsArgs;
use palreg_server::startup::Application;
use palreg_tests::{
    ADMIN_PASSWORD, Backend, TestDatabase, on_both_backends, spawn_with, test_settings,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

fn restart_keeps_data_and_seeds_once(backend: Backend) {
    let db = TestDatabase::new(backend);
    let url = db.url.clone();
    let app = spawn_with(backend, db, |_| {});
    let admin = app.admin_token();
    app.create_institution(&admin, "H1", "Hospice");
    let diagnoses = app
        .get("/api/v1/refs/diagnoses", Some(&admin))
        .body
        .as_array()
        .unwrap()
        .len();
    let TestAppParts { db } = stop(app);
    assert_eq!(db.url, url);
    // Restarted with another admin password: the existing administrator is kept.
    let app = spawn_with(backend, db, |s| {
        s.admin_password = Some("another-password-9".into())
    });
    let admin = app.login("admin", ADMIN_PASSWORD);
    assert_eq!(
        app.get("/api/v1/refs/diagnoses", Some(&admin))
            .body
            .as_array()
            .unwrap()
            .len(),
        diagnoses
    );
    let inst = app.get("/api/v1/refs/institutions", Some(&admin));
    assert_eq!(inst.body.as_array().unwrap().len(), 1);
}

struct TestAppParts {
    db: TestDatabase,
}

fn stop(app: palreg_tests::TestApp) -> TestAppParts {
    let db = app.into_database();
    TestAppParts { db }
}

fn build_in_system(settings: SettingsArgs) -> Result<(), String> {
    let settings = settings.validate()?;
    actix_web::rt::System::new().block_on(async move {
        Application::build(settings)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    })
}

#[test]
fn an_unreachable_postgres_is_a_clear_error_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_settings("postgres://postgres@127.0.0.1:1/palreg", dir.path());
    args.listen = "127.0.0.1:0".into();
    let started = Instant::now();
    let err = build_in_system(args).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(err.to_lowercase().contains("connect"), "{err}");
}

/// Sends one `GET /healthz` on `stream` and reads the whole response (by its Content-Length).
fn healthz_on(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a Content-Length");
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the connection closed mid-response");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn an_idle_connection_is_kept_for_the_keep_alive_setting_then_closed() {
    let db = TestDatabase::new(Backend::Sqlite);
    let app = spawn_with(Backend::Sqlite, db, |s| s.keep_alive_secs = 2);
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(healthz_on(&mut stream).starts_with("HTTP/1.1 200"));
    // Idle for less than the setting: the same connection answers again.
    std::thread::sleep(Duration::from_millis(500));
    assert!(healthz_on(&mut stream).starts_with("HTTP/1.1 200"));
    // Idle for longer: the server has closed it (EOF, not a timeout).
    std::thread::sleep(Duration::from_millis(3000));
    let started = Instant::now();
    let mut buf = [0_u8; 16];
    let n = stream.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed by the server");
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut args = test_settings("sqlite://x.db", app.db.dir.path());
    args.keep_alive_secs = 0;
    assert!(
        args.validate()
            .unwrap_err()
            .contains("PALREG_KEEP_ALIVE_SECS")
    );
}

#[test]
fn the_sqlite_page_caches_are_set_on_the_writer_and_every_pooled_connection() {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct CacheSize {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        cache_size: i64,
    }
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_settings("sqlite://x.db", dir.path());
    args.sqlite_cache_mib = 0;
    assert!(
        args.validate()
            .unwrap_err()
            .contains("PALREG_SQLITE_CACHE_MIB")
    );
    let mut args = test_settings("sqlite://x.db", dir.path());
    args.sqlite_read_cache_mib = 65_537;
    assert!(
        args.validate()
            .unwrap_err()
            .contains("PALREG_SQLITE_READ_CACHE_MIB")
    );
    let url = palreg_server::db::DatabaseUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join("cache.db").display()
    ))
    .unwrap();
    let caches = palreg_server::db::SqliteCaches {
        writer_mib: 11,
        reader_mib: 7,
        report_mib: 13,
    };
    let pool = palreg_server::db::open(&url, 2, caches).unwrap();
    let cache_size = |conn: &mut palreg_server::db::DbConn| {
        diesel::sql_query("PRAGMA cache_size")
            .get_result::<CacheSize>(conn)
            .unwrap()
            .cache_size
    };
    let held: Vec<_> = (0..2).map(|_| pool.get().unwrap()).collect();
    for mut conn in held {
        assert_eq!(
            cache_size(&mut conn),
            -7 * 1024,
            "a negative cache_size is KiB"
        );
    }
    let gate = palreg_server::db::write_gate(&url, 1).unwrap().unwrap();
    let mut writer = gate.turn().unwrap();
    assert_eq!(
        cache_size(&mut writer),
        -11 * 1024,
        "the writer keeps the first opener's cache"
    );
    let reports = palreg_server::db::open_reports(&url, caches).unwrap();
    assert_eq!(reports.state().connections, 0, "opened when first needed");
    let mut conn = reports.get().unwrap();
    assert_eq!(cache_size(&mut conn), -13 * 1024);
}

#[test]
fn a_wrong_database_url_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let args = test_settings("mysql://localhost/palreg", dir.path());
    let err = args.validate().map(|_| ()).unwrap_err();
    assert!(
        err.contains("sqlite://") && err.contains("postgres://"),
        "{err}"
    );
    let mut args = test_settings("sqlite://x.db", dir.path());
    args.jwt_secret = Some("short".into());
    assert!(args.validate().is_err());
    let mut args = test_settings("sqlite://x.db", dir.path());
    args.admin_password = Some("short".into());
    assert!(
        args.validate()
            .unwrap_err()
            .contains("PALREG_ADMIN_PASSWORD")
    );
}

/// The permission bits others than the owner have on `path`.
#[cfg(unix)]
fn others_may(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o077
}

/// A new data directory, database, WAL and generated secrets are the server account's alone;
/// a secret cut short by a crash is refused, not taken for the key.
#[cfg(unix)]
#[test]
fn the_database_and_the_secrets_are_the_owners_alone() {
    let db = TestDatabase::new(Backend::Sqlite);
    let root = db.dir.path().to_path_buf();
    let (data, file) = (root.join("new/data"), root.join("new/db/palreg.db"));
    let url = format!("sqlite://{}", file.display());
    let (data_dir, db_url) = (data.clone(), url.clone());
    let app = spawn_with(Backend::Sqlite, db, move |s| {
        s.data_dir = Some(data_dir);
        s.database_url = db_url;
        s.jwt_secret = None;
    });
    app.admin_token();
    for path in [
        data.clone(),
        file.parent().unwrap().to_path_buf(),
        file.clone(),
        root.join("new/db/palreg.db-wal"),
        data.join("jwt.key"),
        data.join("totp.key"),
    ] {
        assert_eq!(others_may(&path), 0, "{} is private", path.display());
    }
    // Stopped, its directory kept.
    let _kept = stop(app);
    // A database made readable by others (as before palreg made it private) is said at start.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut args = test_settings(&url, &data);
    args.jwt_secret = None;
    build_in_system(args).unwrap();
    let log = palreg_tests::captured_log();
    assert!(
        log.contains("readable by other local accounts") && log.contains("chmod 600"),
        "{log}"
    );
    std::fs::write(data.join("jwt.key"), b"").unwrap();
    let mut args = test_settings(&url, &data);
    args.jwt_secret = None;
    let err = build_in_system(args).unwrap_err();
    assert!(err.contains("jwt.key is empty"), "{err}");
}

#[test]
fn tls_is_on_by_default_with_a_generated_certificate() {
    let db = TestDatabase::new(Backend::Sqlite);
    let dir = db.dir.path().to_path_buf();
    let app = spawn_with(Backend::Sqlite, db, |s| s.tls = "on".into());
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let cert_pem = std::fs::read(dir.join("tls/cert.pem")).expect("certificate generated");
    let key = std::fs::metadata(dir.join("tls/key.pem")).expect("key generated");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(key.permissions().mode() & 0o077, 0, "the key is private");
    }
    let cert = CertificateDer::from_pem_slice(&cert_pem).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = "localhost".try_into().unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    let _ = tls.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("strict-transport-security"), "{response}");
    assert!(response.contains("\"status\":\"ok\""), "{response}");
}

fn the_command_line_manages_users(backend: Backend) {
    let db = TestDatabase::new(backend);
    let app = spawn_with(backend, db, |_| {});
    let admin = app.admin_token();
    app.create_institution(&admin, "H1", "Hospice");
    let code = app.cli(&[
        "user",
        "create",
        "--login",
        "cli.doctor",
        "--full-name",
        "Доктор Айболит",
        "--role",
        "user",
        "--institution",
        "H1",
        "--password",
        "cli-password-1",
    ]);
    assert_eq!(code, 0);
    let doctor = app.login("cli.doctor", "cli-password-1");
    let me = app.get("/api/v1/me", Some(&doctor));
    assert_eq!(me.body["full_name"], "Доктор Айболит");
    assert_eq!(me.body["institution"]["code"], "H1");
    assert_eq!(app.cli(&["user", "list"]), 0);
    assert_eq!(app.cli(&["user", "deactivate", "cli.doctor"]), 0);
    assert_eq!(app.get("/api/v1/me", Some(&doctor)).status, 401);
    // Bad input is a clear failure, not a panic.
    assert_ne!(
        app.cli(&[
            "user",
            "create",
            "--login",
            "x",
            "--full-name",
            "X",
            "--password",
            "cli-password-1"
        ]),
        0
    );
    assert_ne!(
        app.cli(&[
            "user",
            "create",
            "--login",
            "nobody2",
            "--full-name",
            "X",
            "--institution",
            "NOPE",
            "--password",
            "cli-password-1"
        ]),
        0
    );
    assert_ne!(app.cli(&["user", "deactivate", "ghost"]), 0);
    let audit = app.get("/api/v1/admin/audit?actor=cli", Some(&admin));
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["admin.user.deactivate", "admin.user.create"]);
}

/// The down of `2026-11-30-000017_blind_index_birth_year`: undone first by the tests of the
/// earlier migrations of the same table.
fn birth_year_tokens_down(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            include_str!(
                "../../migrations/sqlite/2026-11-30-000017_blind_index_birth_year/down.sql"
            )
        }
        Backend::Postgres => {
            include_str!(
                "../../migrations/postgres/2026-11-30-000017_blind_index_birth_year/down.sql"
            )
        }
    }
}

/// Migration `2026-11-29-000006_compact_register` on a register that has data: the passports
/// leave the history's snapshots, and (SQLite) the blind indexes and needs move into tables
/// without rowids with every row kept. The migration's down runs first, and an old-style
/// snapshot is put back, so the migration meets what a register of the earlier schema holds.
fn the_compacting_migration_keeps_the_register_and_drops_history_passports(backend: Backend) {
    use palreg_tests::clinic::{clinic, passport, record, ref_id};
    use serde_json::json;
    const OLD_ENVELOPE: &str = "an-envelope-of-the-old-history";
    let db = TestDatabase::new(backend);
    let app = spawn_with(backend, db, |_| {});
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "MIG");
    let oxygen = ref_id(&app, &c.a.token, "needs", "oxygen_concentrator");
    let mut rec = record(&app, &c.a.token, 1944);
    rec["needs"] = json!([oxygen]);
    let someone = passport("Зуева", "Мария", "1944-02-03", client_crypto::Sex::Female);
    let (_, body) = c.new_patient(&someone, rec);
    let created = app.post("/api/v1/patients", Some(&c.a.token), &body);
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    let (down, put_back) = match backend {
        Backend::Sqlite => (
            include_str!("../../migrations/sqlite/2026-11-29-000006_compact_register/down.sql"),
            format!(
                "UPDATE patient_versions SET snapshot = json_set(snapshot, '$.record.passport', '{OLD_ENVELOPE}')"
            ),
        ),
        Backend::Postgres => (
            include_str!("../../migrations/postgres/2026-11-29-000006_compact_register/down.sql"),
            format!(
                "UPDATE patient_versions SET snapshot = jsonb_set(snapshot::jsonb, '{{record,passport}}', '\"{OLD_ENVELOPE}\"')::text"
            ),
        ),
    };
    // The later migration of the same table first.
    app.raw_sql(birth_year_tokens_down(backend));
    app.raw_sql(down);
    app.raw_sql(&put_back);
    app.raw_sql(
        "DELETE FROM __diesel_schema_migrations \
         WHERE version IN ('20261129000006', '20261130000016', '20261130000017')",
    );
    let old = app.query_texts("SELECT snapshot AS t FROM patient_versions");
    assert!(old[0].contains(OLD_ENVELOPE), "{old:?}");

    let TestAppParts { db } = stop(app);
    let app = spawn_with(backend, db, |_| {});
    let snapshots = app.query_texts("SELECT snapshot AS t FROM patient_versions");
    assert_eq!(snapshots.len(), 1);
    assert!(!snapshots[0].contains(OLD_ENVELOPE), "{snapshots:?}");
    assert!(!snapshots[0].contains("\"passport\""), "{snapshots:?}");
    if backend == Backend::Sqlite {
        for table in ["patient_blind_indexes", "patient_needs"] {
            let sql = app.query_texts(&format!(
                "SELECT sql AS t FROM sqlite_schema WHERE name = '{table}'"
            ));
            assert!(sql[0].contains("WITHOUT ROWID"), "{sql:?}");
        }
    }
    // The patient is found by each of its blind indexes, with its needs and its history.
    let token = app.login(&c.a.login, palreg_tests::PASSWORD);
    for blind in c.tokens(&c.key, &someone) {
        let found = app.post(
            "/api/v1/patients/search",
            Some(&token),
            &json!({"blind_indexes": [blind], "need_id": oxygen}),
        );
        assert_eq!(found.status, 200, "{:?}", found.body);
        assert_eq!(found.body["items"][0]["id"], id, "{blind}");
    }
    let history = app.get(&format!("/api/v1/patients/{id}/history"), Some(&token));
    assert_eq!(history.status, 200, "{:?}", history.body);
    assert_eq!(history.body[0]["change"], "created");
    assert_eq!(history.body[0]["record"]["needs"], json!([oxygen]));
    assert_eq!(history.body[0]["passport_key_version"], 1);
}

/// Migration `2026-11-30-000011_audit_rowid` on a log that has entries: every entry is kept and
/// the chain still verifies; on SQLite the sequence number is the table's rowid (no separate
/// primary-key index), and the actor filter has an index on the login it filters by.
fn the_audit_rowid_migration_keeps_the_chain(backend: Backend) {
    let db = TestDatabase::new(backend);
    let app = spawn_with(backend, db, |_| {});
    let admin = app.admin_token();
    app.create_institution(&admin, "R1", "Rowid hospice");
    let count = "SELECT CAST(COUNT(*) AS TEXT) AS t FROM audit_log";
    let indexes = match backend {
        Backend::Sqlite => {
            "SELECT name AS t FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'audit_log' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT indexname AS t FROM pg_indexes WHERE tablename = 'audit_log' ORDER BY indexname"
        }
    };
    let down = match backend {
        Backend::Sqlite => {
            include_str!("../../migrations/sqlite/2026-11-30-000011_audit_rowid/down.sql")
        }
        Backend::Postgres => {
            include_str!("../../migrations/postgres/2026-11-30-000011_audit_rowid/down.sql")
        }
    };
    // Back to the log as it was before 000011: the later migrations of the same table first.
    let later = match backend {
        Backend::Sqlite => [
            include_str!("../../migrations/sqlite/2026-11-30-000014_audit_object/down.sql"),
            include_str!("../../migrations/sqlite/2026-11-30-000013_audit_institution/down.sql"),
        ],
        Backend::Postgres => [
            include_str!("../../migrations/postgres/2026-11-30-000014_audit_object/down.sql"),
            include_str!("../../migrations/postgres/2026-11-30-000013_audit_institution/down.sql"),
        ],
    };
    for sql in later {
        app.raw_sql(sql);
    }
    app.raw_sql(down);
    app.raw_sql(
        "DELETE FROM __diesel_schema_migrations \
         WHERE version IN ('20261130000011', '20261130000013', '20261130000014')",
    );
    let before = app.query_texts(count);
    assert!(
        app.query_texts(indexes)
            .contains(&"audit_log_actor".to_string())
    );

    let TestAppParts { db } = stop(app);
    let app = spawn_with(backend, db, |_| {});
    assert_eq!(app.query_texts(count), before);
    assert_eq!(app.cli(&["audit", "verify"]), 0);
    let names = app.query_texts(indexes);
    assert!(
        names.contains(&"audit_log_actor_login".to_string()),
        "{names:?}"
    );
    assert!(!names.contains(&"audit_log_actor".to_string()), "{names:?}");
    if backend == Backend::Sqlite {
        assert_eq!(
            names,
            [
                "audit_log_action",
                "audit_log_actor_login",
                "audit_log_at",
                "audit_log_object"
            ],
            "no index of its own for the primary key"
        );
        let sql = app.query_texts("SELECT sql AS t FROM sqlite_schema WHERE name = 'audit_log'");
        assert!(sql[0].contains("seq INTEGER PRIMARY KEY"), "{sql:?}");
    }
    // The log goes on from where it was, and the viewer's actor filter finds the admin.
    let admin = app.admin_token();
    app.create_institution(&admin, "R2", "After the migration");
    assert_eq!(app.cli(&["audit", "verify"]), 0);
    let mine = app.get("/api/v1/admin/audit?actor=admin", Some(&admin));
    assert_eq!(mine.status, 200, "{:?}", mine.body);
    let items = mine.body["items"].as_array().unwrap();
    assert!(
        items.iter().any(|e| e["action"] == "refs.create"),
        "{items:?}"
    );
    assert!(
        items.iter().all(|e| e["actor_login"] == "admin"),
        "{items:?}"
    );
}

/// A command that would migrate a SQLite database is refused while a server holds it: the schema
/// never changes under a running server. Once the lock is free, the same command migrates.
#[test]
fn a_command_does_not_migrate_a_sqlite_database_in_use() {
    let db = TestDatabase::new(Backend::Sqlite);
    let path = db.dir.path().join("palreg.db");
    let held = palreg_server::db::lock::DatabaseLock::try_acquire(&path).unwrap();
    for args in [&["migrate"][..], &["user", "list"], &["audit", "verify"]] {
        let refused = db.palreg(args).unwrap_err();
        assert!(
            refused.contains("palreg.db.lock is locked") && refused.contains("stop the server"),
            "{args:?}: {refused}"
        );
    }
    let tables = {
        use diesel::{Connection, RunQueryDsl, sql_query};
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        sql_query(
            "SELECT COUNT(*) AS n FROM sqlite_schema WHERE tbl_name <> '__diesel_schema_migrations'",
        )
            .get_result::<N>(&mut conn)
            .unwrap()
            .n
    };
    assert_eq!(tables, 0, "no table but the list of applied migrations");
    drop(held);
    assert_eq!(db.palreg(&["migrate"]), Ok(0));
    // Migrated, a command runs beside a server (here: beside the lock).
    let _held = palreg_server::db::lock::DatabaseLock::try_acquire(&path).unwrap();
    assert_eq!(db.palreg(&["user", "list"]), Ok(0));
}

/// Migrations `2026-11-30-000016_retire_surname_birth_year` and `000017_blind_index_birth_year`
/// on a register of the schema before them: the compound surname and year of birth tokens are
/// deleted, every other token kept and given its patient's year of birth, and the patient is
/// found by surname and year of birth (the surname's token and the `birth_year` filter).
fn the_retiring_migration_deletes_the_surname_and_year_tokens(backend: Backend) {
    use palreg_tests::clinic::{clinic, passport, record};
    use serde_json::json;
    let db = TestDatabase::new(backend);
    let app = spawn_with(backend, db, |_| {});
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "RET");
    let someone = passport("Зуева", "Мария", "1944-02-03", client_crypto::Sex::Female);
    let (_, body) = c.new_patient(&someone, record(&app, &c.a.token, 1944));
    let created = app.post("/api/v1/patients", Some(&c.a.token), &body);
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    // What a client stored beside the others before the index was retired.
    let compound = c
        .key
        .blind_index_surname_birth_year(&someone.surname, &someone.date_of_birth, c.bits())
        .unwrap()
        .to_token();
    assert_eq!(
        &compound[2..4],
        "08",
        "the field id the migration looks for"
    );
    app.raw_sql(birth_year_tokens_down(backend));
    app.raw_sql(&format!(
        "INSERT INTO patient_blind_indexes (patient_id, institution_id, token) \
         VALUES ({id}, {}, '{compound}')",
        c.institution_id
    ));
    app.raw_sql(
        "DELETE FROM __diesel_schema_migrations \
         WHERE version IN ('20261130000016', '20261130000017')",
    );
    let tokens = "SELECT token AS t FROM patient_blind_indexes ORDER BY token";
    let before = app.query_texts(tokens);
    assert!(before.contains(&compound), "{before:?}");

    let TestAppParts { db } = stop(app);
    let app = spawn_with(backend, db, |_| {});
    let mut kept = c.tokens(&c.key, &someone);
    kept.sort();
    assert_eq!(
        app.query_texts(tokens),
        kept,
        "only the compound token is gone"
    );
    assert_eq!(
        app.query_texts("SELECT DISTINCT CAST(birth_year AS TEXT) AS t FROM patient_blind_indexes"),
        ["1944"],
        "each token has its patient's year of birth"
    );
    let token = app.login(&c.a.login, palreg_tests::PASSWORD);
    let surname = &c.tokens(&c.key, &someone)[0];
    for (year, found) in [(1944, 1), (1945, 0)] {
        let r = app.post(
            "/api/v1/patients/search",
            Some(&token),
            &json!({"blind_indexes": [surname], "birth_year": year}),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["total"], found, "born in {year}");
    }
}

/// Migration `2026-12-01-000018_shorter_date_of_birth_tokens` on tokens stored before the
/// date of birth's was shorter: each patient's date token is cut to 6 bits under the longest of
/// its other tokens (at least 1), whatever that length, and is then the very token a client
/// computes at the new length; a date token already short enough, and one with no other
/// token beside it, are kept; the other tokens are untouched.
fn the_date_of_birth_tokens_are_shortened_by_their_migration(backend: Backend) {
    use client_crypto::{BlindIndexBits, BlindIndexField};
    use palreg_tests::clinic::{clinic, passport, record};
    use serde_json::json;
    let db = TestDatabase::new(backend);
    let app = spawn_with(backend, db, |_| {});
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "DOB");
    let token = |field: BlindIndexField, value: &str, bits: u8| {
        let bits = BlindIndexBits::new(bits).unwrap();
        c.key.blind_index(field, value, bits).unwrap().to_token()
    };
    // (surname's length, or none; the date's length stored; the date's length expected)
    let cases: [(Option<u8>, u8, u8); 11] = [
        (Some(12), 12, 6),
        (Some(7), 7, 1),
        (Some(3), 3, 1),
        (Some(8), 8, 2),
        (Some(9), 9, 3),
        (Some(13), 13, 7),
        (Some(19), 19, 13),
        (Some(22), 22, 16),
        (Some(64), 64, 58),
        (Some(12), 6, 6),
        (None, 12, 12),
    ];
    let mut expected = Vec::new();
    for (i, (surname_bits, stored, after)) in cases.into_iter().enumerate() {
        let dob = format!("19{:02}-0{}-1{}", 30 + i, 1 + i % 9, i % 10);
        let year: i32 = dob[..4].parse().unwrap();
        let someone = passport("Зуева", "Мария", &dob, client_crypto::Sex::Female);
        let (_, body) = c.new_patient(&someone, record(&app, &c.a.token, year));
        let created = app.post("/api/v1/patients", Some(&c.a.token), &body);
        assert_eq!(created.status, 201, "{:?}", created.body);
        let id = created.body["id"].as_i64().unwrap();
        // What a client of before the rule stored.
        let mut stored_tokens = vec![token(BlindIndexField::DateOfBirth, &dob, stored)];
        stored_tokens.extend(surname_bits.map(|b| token(BlindIndexField::Surname, "Зуева", b)));
        app.raw_sql(&format!(
            "DELETE FROM patient_blind_indexes WHERE patient_id = {id}"
        ));
        for t in &stored_tokens {
            app.raw_sql(&format!(
                "INSERT INTO patient_blind_indexes (patient_id, institution_id, token, birth_year) \
                 VALUES ({id}, {}, '{t}', {year})",
                c.institution_id
            ));
        }
        let mut after_tokens = vec![token(BlindIndexField::DateOfBirth, &dob, after)];
        after_tokens.extend(surname_bits.map(|b| token(BlindIndexField::Surname, "Зуева", b)));
        expected.push((id, year, after_tokens));
    }
    app.raw_sql("DELETE FROM __diesel_schema_migrations WHERE version = '20261201000018'");

    let TestAppParts { db } = stop(app);
    let app = spawn_with(backend, db, |_| {});
    for (id, _, mut want) in expected.clone() {
        want.sort();
        let got = app.query_texts(&format!(
            "SELECT token AS t FROM patient_blind_indexes WHERE patient_id = {id} ORDER BY token"
        ));
        assert_eq!(got, want, "patient {id}");
    }
    // The first patient is found by its new date token and year, as the clients search.
    let login = app.login(&c.a.login, palreg_tests::PASSWORD);
    let (id, year, tokens) = &expected[0];
    let r = app.post(
        "/api/v1/patients/search",
        Some(&login),
        &json!({"blind_indexes": [tokens[0]], "birth_year": year}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["items"][0]["id"], *id);
}

/// Migration `2026-12-02-000019_needs_in_the_row` on a register of before it: every patient's
/// row gets its needs from `patient_needs`, ascending (none, one, several), and a read by id
/// then shows them.
fn the_needs_migration_copies_each_patients_needs_into_its_row(backend: Backend) {
    use palreg_tests::clinic::{clinic, passport, record, ref_id};
    use serde_json::json;
    let db = TestDatabase::new(backend);
    let app = spawn_with(backend, db, |_| {});
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "NEEDS");
    let books: Vec<i64> = ["oxygen_concentrator", "functional_bed", "suction_aspirator"]
        .iter()
        .map(|code| ref_id(&app, &c.a.token, "needs", code))
        .collect();
    let mut patients = Vec::new();
    for (i, needs) in [vec![], vec![books[1]], books.clone()]
        .into_iter()
        .enumerate()
    {
        let mut rec = record(&app, &c.a.token, 1940 + i as i32);
        rec["needs"] = json!(needs);
        let someone = passport(
            "Зуева",
            "Мария",
            &format!("194{i}-02-03"),
            client_crypto::Sex::Female,
        );
        let (_, body) = c.new_patient(&someone, rec);
        let created = app.post("/api/v1/patients", Some(&c.a.token), &body);
        assert_eq!(created.status, 201, "{:?}", created.body);
        let mut sorted = needs;
        sorted.sort_unstable();
        patients.push((created.body["id"].as_i64().unwrap(), sorted));
    }
    let down = match backend {
        Backend::Sqlite => {
            include_str!("../../migrations/sqlite/2026-12-02-000019_needs_in_the_row/down.sql")
        }
        Backend::Postgres => {
            include_str!("../../migrations/postgres/2026-12-02-000019_needs_in_the_row/down.sql")
        }
    };
    app.raw_sql(down);
    app.raw_sql("DELETE FROM __diesel_schema_migrations WHERE version = '20261202000019'");

    let TestAppParts { db } = stop(app);
    let app = spawn_with(backend, db, |_| {});
    let (in_rows, listed) = app.needs_both_ways();
    assert_eq!(in_rows, listed);
    let login = app.login(&c.a.login, palreg_tests::PASSWORD);
    for (id, needs) in &patients {
        let got = app.get(&format!("/api/v1/patients/{id}"), Some(&login));
        assert_eq!(got.status, 200, "{:?}", got.body);
        assert_eq!(got.body["record"]["needs"], json!(needs), "patient {id}");
    }
    assert_eq!(patients[2].1.len(), 3);
}

on_both_backends!(
    restart_keeps_data_and_seeds_once,
    the_command_line_manages_users,
    the_compacting_migration_keeps_the_register_and_drops_history_passports,
    the_audit_rowid_migration_keeps_the_chain,
    the_retiring_migration_deletes_the_surname_and_year_tokens,
    the_date_of_birth_tokens_are_shortened_by_their_migration,
    the_needs_migration_copies_each_patients_needs_into_its_row,
);
