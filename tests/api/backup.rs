//! `palreg backup` and `palreg restore`, run in process on a test server's database.

use std::path::{Path, PathBuf};

use palreg_tests::{Backend, TestApp, TestDatabase, on_both_backends, spawn_app, spawn_with};

/// A backup file in a folder of its own, and the public half of the key that signed it.
struct Backup {
    _dir: tempfile::TempDir,
    file: PathBuf,
    key: String,
}

impl Backup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("palreg.backup");
        Self {
            _dir: dir,
            file,
            key: String::new(),
        }
    }

    fn path(&self) -> &str {
        self.file.to_str().unwrap()
    }

    fn checksum(&self) -> PathBuf {
        PathBuf::from(format!("{}.sha256", self.path()))
    }

    fn signature(&self) -> PathBuf {
        PathBuf::from(format!("{}.sig", self.path()))
    }

    /// `palreg restore` of this backup into `target`, checked with the key that signed it (the
    /// target may be a database with a data directory of its own, as on another machine).
    fn restore_into(&self, target: &TestDatabase) -> Result<i32, String> {
        target.palreg(&["restore", self.path(), "--public-key", &self.key])
    }

    /// Replaces the checksum beside the backup with the file's own, as whoever changed the
    /// file on purpose would.
    fn recompute_checksum(&self) {
        use sha2::Digest;
        let sha256 = hex::encode(sha2::Sha256::digest(std::fs::read(&self.file).unwrap()));
        std::fs::write(self.checksum(), format!("{sha256}  palreg.backup\n")).unwrap();
    }

    /// Files in the backup's folder (to see that nothing was left behind).
    fn folder(&self) -> Vec<String> {
        names_in(self.file.parent().unwrap())
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `palreg backup` of the database into a new file; it must succeed.
fn take_backup(db: &TestDatabase) -> Backup {
    let mut backup = Backup::new();
    assert_eq!(db.palreg(&["backup", backup.path()]), Ok(0));
    backup.key = palreg_server::backup::backup_key(db.dir.path())
        .unwrap()
        .public_key()
        .to_base64();
    backup
}

/// Where a backup of the app's database is restored: on SQLite the same file, once the server
/// has stopped; on PostgreSQL a new, empty database.
fn restore_target(app: TestApp) -> TestDatabase {
    match app.backend {
        Backend::Sqlite => app.into_database(),
        Backend::Postgres => TestDatabase::new(Backend::Postgres),
    }
}

fn institution_codes(app: &TestApp, token: &str) -> Vec<String> {
    let reply = app.get("/api/v1/refs/institutions", Some(token));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap().to_string())
        .collect()
}

/// The details of the one audit entry of `action` (there must be exactly one).
fn the_entrys_details(app: &TestApp, admin: &str, action: &str) -> serde_json::Value {
    let reply = app.get(&format!("/api/v1/admin/audit?action={action}"), Some(admin));
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["actor_login"], "cli");
    serde_json::from_str(items[0]["details"].as_str().unwrap()).unwrap()
}

/// Flips 16 bytes in the middle of a file.
fn damage(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 16] {
        *byte ^= 0xff;
    }
    std::fs::write(file, bytes).unwrap();
}

/// A copy of the database made with the backend's own tool, as a backup would be made of a
/// database that `palreg backup` refuses.
fn copy_with_the_backends_tool(app: &TestApp, into: &Backup) {
    match app.backend {
        Backend::Sqlite => app.raw_sql(&format!("VACUUM INTO '{}'", into.path())),
        Backend::Postgres => {
            let status = std::process::Command::new("pg_dump")
                .args(["--format=custom", "--file", into.path(), &app.db.url])
                .status()
                .expect("pg_dump runs");
            assert!(status.success());
        }
    }
}

/// The institutions in the database a SQLite restore replaced, read where it was kept.
fn replaced_institutions(dir: &Path) -> Vec<String> {
    use diesel::{Connection, RunQueryDsl};
    let kept: Vec<String> = names_in(dir)
        .into_iter()
        .filter(|n| n.starts_with("palreg.db.before-restore-") && !n.ends_with("-shm"))
        .collect();
    assert_eq!(kept.len(), 2, "the database and its WAL: {kept:?}");
    let refused = TestDatabase::new(Backend::Sqlite)
        .palreg(&["restore", dir.join(&kept[0]).to_str().unwrap()])
        .unwrap_err();
    assert!(refused.contains("not a backup"), "{refused}");
    #[derive(diesel::QueryableByName)]
    struct Code {
        #[diesel(sql_type = diesel::sql_types::Text)]
        code: String,
    }
    let path = dir.join(&kept[0]);
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query("SELECT code FROM institutions ORDER BY code")
        .load::<Code>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|c| c.code)
        .collect()
}

fn a_restored_backup_brings_the_data_back_and_continues_the_chain(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    app.create_institution(&admin, "H1", "Hospice");
    let backup = take_backup(&app.db); // while the server runs
    let sha256 = std::fs::read_to_string(backup.checksum()).unwrap();
    let sha256 = sha256.split_whitespace().next().unwrap().to_string();
    assert_eq!(sha256.len(), 64);
    // The copy is in the live database's audit log: who took it, and which file it is.
    let details = the_entrys_details(&app, &admin, "system.backup");
    assert_eq!(details["backup_sha256"], sha256.as_str());
    assert_eq!(details["backup"], "palreg.backup");
    assert_eq!(details["signed_by"], backup.key.as_str());
    app.create_institution(&admin, "H2", "Later");
    if backend == Backend::Postgres {
        let refused = app.db.palreg(&["restore", backup.path()]).unwrap_err();
        assert!(refused.contains("the database is not empty"), "{refused}");
        assert!(refused.contains("createdb"), "{refused}");
        assert_eq!(institution_codes(&app, &admin), ["H1", "H2"]);
    }

    // The replaced database is kept with its WAL. When the server stops, its last connection to
    // close (the WAL checkpointer's, up to a round later) folds the WAL in and removes it; a
    // connection of the test's own stays open over the restore, so that there is a WAL to keep.
    let wal_holder = (backend == Backend::Sqlite).then(|| {
        use diesel::connection::SimpleConnection;
        let mut conn = app.db_conn();
        conn.batch_execute("SELECT count(*) FROM institutions")
            .unwrap();
        conn
    });
    let target = restore_target(app);
    assert_eq!(backup.restore_into(&target), Ok(0));
    drop(wal_holder);

    assert_eq!(target.palreg(&["audit", "verify"]), Ok(0));
    if backend == Backend::Sqlite {
        assert_eq!(
            replaced_institutions(target.dir.path()),
            ["H1", "H2"],
            "the replaced database is kept, with its WAL"
        );
    }
    let app = spawn_with(backend, target, |_| {});
    assert_eq!(
        app.get("/api/v1/me", Some(&admin)).status,
        401,
        "a restore ends every session"
    );
    let admin = app.admin_token();
    assert_eq!(institution_codes(&app, &admin), ["H1"]);
    let details = the_entrys_details(&app, &admin, "system.restore");
    assert_eq!(details["backup_sha256"], sha256.as_str());
    assert_eq!(details["backup"], "palreg.backup");
    assert_eq!(details["signed_by"], backup.key.as_str());
    assert_eq!(app.db.palreg(&["audit", "verify"]), Ok(0));
}

fn backup_refuses_an_existing_file(backend: Backend) {
    let app = spawn_app(backend);
    let backup = Backup::new();
    std::fs::write(&backup.file, "an operator's file").unwrap();
    let refused = app.db.palreg(&["backup", backup.path()]).unwrap_err();
    assert!(refused.contains("already exists"), "{refused}");
    assert_eq!(
        std::fs::read_to_string(&backup.file).unwrap(),
        "an operator's file"
    );
    assert_eq!(backup.folder(), ["palreg.backup"], "nothing left behind");
}

fn restore_refuses_a_damaged_backup(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    app.create_institution(&admin, "H1", "Hospice");
    let backup = take_backup(&app.db);
    let intact = std::fs::read(&backup.file).unwrap();
    app.create_institution(&admin, "H2", "Later");
    let target = restore_target(app);

    damage(&backup.file);
    let refused = backup.restore_into(&target).unwrap_err();
    assert!(refused.contains("SHA-256"), "{refused}");

    // Without its checksum and signature (restored with --unsigned), a file cut short is still
    // caught by the backend's own checks (a flipped byte inside a value may not be: it was,
    // once, by neither): SQLite's integrity check; pg_restore, which reads the archive's table
    // of contents, creates the tables and then misses the end of the data, all in one
    // transaction.
    std::fs::remove_file(backup.checksum()).unwrap();
    std::fs::remove_file(backup.signature()).unwrap();
    let (kept, expected) = match backend {
        Backend::Sqlite => (intact.len() / 2, "integrity check"),
        Backend::Postgres => (intact.len() - 1024, "pg_restore failed"),
    };
    std::fs::write(&backup.file, &intact[..kept]).unwrap();
    let refused = target
        .palreg(&["restore", backup.path(), "--unsigned"])
        .unwrap_err();
    assert!(refused.contains(expected), "{refused}");

    // Nothing was half done: the target is as it was.
    match backend {
        Backend::Sqlite => {
            assert!(
                !names_in(target.dir.path())
                    .iter()
                    .any(|n| n.contains("before-restore") || n.contains("partial")),
                "{:?}",
                names_in(target.dir.path())
            );
            let app = spawn_with(backend, target, |_| {});
            let admin = app.admin_token();
            assert_eq!(institution_codes(&app, &admin), ["H1", "H2"]);
        }
        Backend::Postgres => {
            std::fs::write(&backup.file, &intact).unwrap();
            assert_eq!(
                target.palreg(&["restore", backup.path(), "--unsigned"]),
                Ok(0),
                "still empty"
            );
        }
    }
}

fn restore_refuses_a_backup_whose_audit_chain_was_edited(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    app.create_institution(&admin, "H1", "Hospice");
    let intact = take_backup(&app.db);
    app.raw_sql("UPDATE audit_log SET actor_login = 'nobody' WHERE seq = 2");

    let refused_backup = Backup::new();
    let refused = app
        .db
        .palreg(&["backup", refused_backup.path()])
        .unwrap_err();
    assert!(refused.contains("audit chain is broken"), "{refused}");
    assert!(refused_backup.folder().is_empty(), "no backup written");

    let edited = Backup::new();
    copy_with_the_backends_tool(&app, &edited);
    let target = restore_target(app);
    // Unsigned (not made by `palreg backup`): only --unsigned lets it reach the chain's check.
    let refused = target
        .palreg(&["restore", edited.path(), "--unsigned"])
        .unwrap_err();
    assert!(
        refused.contains("audit chain is broken: entry 2"),
        "{refused}"
    );
    // The target was left as it was (on PostgreSQL: empty again).
    assert_eq!(intact.restore_into(&target), Ok(0));
    assert_eq!(target.palreg(&["audit", "verify"]), Ok(0));
}

/// A backup is signed by the backup key of the data directory it was made with. Whoever can
/// write where backups are kept can change one and recompute its checksum, but not sign it: a
/// restore refuses it, and a backup without its signature, unless told `--unsigned`.
fn restore_checks_the_backups_signature(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    app.create_institution(&admin, "H1", "Hospice");
    let backup = take_backup(&app.db);
    let intact = std::fs::read(&backup.file).unwrap();
    let signature = std::fs::read_to_string(backup.signature()).unwrap();
    assert!(
        signature.starts_with("palreg-backup-signature v1\ned25519 "),
        "{signature}"
    );
    drop(app);
    // Another machine: a database and data directory of its own, without the key.
    let elsewhere = TestDatabase::new(backend);

    // Changed on purpose, with a checksum to match: the signature gives it away, with the key
    // given and even with --unsigned.
    damage(&backup.file);
    backup.recompute_checksum();
    for args in [
        vec!["--public-key", backup.key.as_str()],
        vec!["--public-key", backup.key.as_str(), "--unsigned"],
    ] {
        let refused = elsewhere
            .palreg(&[&["restore", backup.path()][..], &args].concat())
            .unwrap_err();
        assert!(refused.contains("signature does not match"), "{refused}");
    }
    std::fs::write(&backup.file, &intact).unwrap();
    backup.recompute_checksum();

    // Without the key, it cannot be checked: refused unless the operator says so.
    let refused = elsewhere.palreg(&["restore", backup.path()]).unwrap_err();
    assert!(
        refused.contains("cannot be checked") && refused.contains("--public-key"),
        "{refused}"
    );
    // Another key (that other machine's own) did not sign it.
    let other = palreg_server::backup::backup_key(elsewhere.dir.path())
        .unwrap()
        .public_key()
        .to_base64();
    assert_ne!(other, backup.key);
    let refused = elsewhere.palreg(&["restore", backup.path()]).unwrap_err();
    assert!(refused.contains("signature does not match"), "{refused}");
    let refused = elsewhere
        .palreg(&["restore", backup.path(), "--public-key", "not a key"])
        .unwrap_err();
    assert!(refused.contains("--public-key"), "{refused}");
    // Its signature gone: refused, with the way out for backups made before they were signed.
    let kept_signature = std::fs::read(backup.signature()).unwrap();
    std::fs::remove_file(backup.signature()).unwrap();
    let refused = backup.restore_into(&elsewhere).unwrap_err();
    assert!(
        refused.contains("palreg.backup.sig") && refused.contains("--unsigned"),
        "{refused}"
    );
    std::fs::write(backup.signature(), kept_signature).unwrap();

    // Nothing was restored by any of these, nor left behind (a restore checks and reads a
    // private copy of the backup, in the data directory); the right key restores it.
    let partial = |dir: &Path| names_in(dir).into_iter().any(|n| n.contains("partial"));
    assert!(
        !partial(elsewhere.dir.path()),
        "{:?}",
        names_in(elsewhere.dir.path())
    );
    assert_eq!(backup.restore_into(&elsewhere), Ok(0));
    assert!(
        !partial(elsewhere.dir.path()),
        "{:?}",
        names_in(elsewhere.dir.path())
    );
    let app = spawn_with(backend, elsewhere, |_| {});
    let admin = app.admin_token();
    assert_eq!(institution_codes(&app, &admin), ["H1"]);
    let details = the_entrys_details(&app, &admin, "system.restore");
    assert_eq!(details["signed_by"], backup.key.as_str());
    assert_eq!(details.get("unsigned"), None);
}

/// `--unsigned` restores a backup without a signature (one made before backups were signed),
/// and the audit log says nobody checked who made it.
fn an_unsigned_restore_is_recorded_as_such(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    app.create_institution(&admin, "H1", "Hospice");
    let backup = take_backup(&app.db);
    std::fs::remove_file(backup.signature()).unwrap();
    drop(app);
    let elsewhere = TestDatabase::new(backend);
    assert_eq!(
        elsewhere.palreg(&["restore", backup.path(), "--unsigned"]),
        Ok(0)
    );
    let app = spawn_with(backend, elsewhere, |_| {});
    let admin = app.admin_token();
    let details = the_entrys_details(&app, &admin, "system.restore");
    assert_eq!(details["unsigned"], true);
    assert_eq!(details.get("signed_by"), None);
}

on_both_backends!(
    restore_checks_the_backups_signature,
    an_unsigned_restore_is_recorded_as_such,
    a_restored_backup_brings_the_data_back_and_continues_the_chain,
    backup_refuses_an_existing_file,
    restore_refuses_a_damaged_backup,
    restore_refuses_a_backup_whose_audit_chain_was_edited,
);

#[test]
fn sqlite_restore_refuses_while_a_server_uses_the_database() {
    let app = spawn_app(Backend::Sqlite);
    let admin = app.admin_token();
    let backup = take_backup(&app.db);
    app.create_institution(&admin, "H2", "Later");

    let refused = app.db.palreg(&["restore", backup.path()]).unwrap_err();
    assert!(
        refused.contains("a palreg server is using") && refused.contains("palreg.db.lock"),
        "{refused}"
    );
    assert_eq!(institution_codes(&app, &admin), ["H2"]);
    assert!(
        !names_in(app.db.dir.path())
            .iter()
            .any(|n| n.contains("before-restore") || n.contains("partial")),
        "nothing moved"
    );
    // A second server on the same file is refused as well.
    let settings = palreg_tests::test_settings(&app.db.url, app.db.dir.path())
        .validate()
        .unwrap();
    let second = actix_web::rt::System::new().block_on(async move {
        palreg_server::startup::Application::build(settings)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    });
    assert!(second.unwrap_err().contains("palreg.db.lock is locked"));
}

#[test]
fn sqlite_restore_refuses_a_backup_of_a_newer_palreg() {
    let app = spawn_app(Backend::Sqlite);
    let backup = take_backup(&app.db);
    let target = app.into_database();
    {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let mut conn = diesel::SqliteConnection::establish(backup.path()).unwrap();
        conn.batch_execute(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231000001')",
        )
        .unwrap();
    }
    std::fs::remove_file(backup.checksum()).unwrap();
    std::fs::remove_file(backup.signature()).unwrap();
    let refused = target
        .palreg(&["restore", backup.path(), "--unsigned"])
        .unwrap_err();
    assert!(
        refused.contains("written by a newer palreg") && refused.contains("29991231000001"),
        "{refused}"
    );
}

/// A server that folds its audit spool once a minute: the entries of the last reads stay in
/// the spool for the whole test. One clinician, `doc`, whose look at the audit log is refused.
fn slow_folding_app() -> (TestApp, String) {
    let app = spawn_with(Backend::Sqlite, TestDatabase::new(Backend::Sqlite), |s| {
        s.audit_fold_ms = 60_000;
    });
    let admin = app.admin_token();
    let inst = app.create_institution(&admin, "H1", "Hospice");
    app.create_user(&admin, "doc", &["user"], Some(inst));
    (app, admin)
}

/// `doc`'s refused look at the audit log: an `access.denied` entry that goes to the spool.
fn refused_look(app: &TestApp) {
    let doc = app.login("doc", palreg_tests::PASSWORD);
    assert_eq!(app.get("/api/v1/admin/audit", Some(&doc)).status, 403);
}

fn denied_entries(app: &TestApp, admin: &str) -> usize {
    let reply = app.get("/api/v1/admin/audit?action=access.denied", Some(admin));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body["items"].as_array().unwrap().len()
}

#[test]
fn a_sqlite_backup_holds_the_reads_still_in_the_audit_spool() {
    let (app, admin) = slow_folding_app();
    refused_look(&app);
    assert_eq!(app.db.spooled().len(), 1, "the entry waits in the spool");

    let backup = take_backup(&app.db); // while the server runs
    assert_eq!(
        app.db.spooled().len(),
        1,
        "the backup reads the spool; the server folds it"
    );
    let target = TestDatabase::new(Backend::Sqlite);
    assert_eq!(backup.restore_into(&target), Ok(0));
    assert_eq!(target.palreg(&["audit", "verify"]), Ok(0));
    let restored = spawn_with(Backend::Sqlite, target, |_| {});
    let restored_admin = restored.admin_token();
    assert_eq!(
        denied_entries(&restored, &restored_admin),
        1,
        "the refused read answered before the backup is in it"
    );
    // The live log gets it once, at its own fold (here the listing's).
    assert_eq!(denied_entries(&app, &admin), 1);
    assert!(app.db.spooled().is_empty());
    assert_eq!(app.db.palreg(&["audit", "verify"]), Ok(0));
}

#[test]
fn a_sqlite_restore_folds_a_crashed_servers_spool_into_the_database_it_sets_aside() {
    let (app, _) = slow_folding_app();
    let backup = take_backup(&app.db);
    refused_look(&app);
    let spool = app.db.spool_dir();
    let file = app.db.spooled().pop().expect("a spool file");
    let line = std::fs::read(spool.join(&file)).unwrap();
    let target = app.into_database(); // folds the spool as it stops
    assert!(target.spooled().is_empty());
    // A crash instead would have left the entry in the spool, under a generation not folded.
    let generation: u64 = file.trim_end_matches(".jsonl").parse().unwrap();
    std::fs::write(spool.join(format!("{:020}.jsonl", generation + 1)), &line).unwrap();

    assert_eq!(backup.restore_into(&target), Ok(0));
    assert!(
        !spool.exists(),
        "the spool is folded into the database set aside, not left for the restored one"
    );
    let restored = spawn_with(Backend::Sqlite, target, |_| {});
    let admin = restored.admin_token();
    assert_eq!(
        denied_entries(&restored, &admin),
        0,
        "the restored database's log ends at the backup"
    );
    // The database set aside holds both: the one folded at the stop, the one of the "crash".
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let kept = names_in(restored.db.dir.path())
        .into_iter()
        .find(|n| {
            n.starts_with("palreg.db.before-restore-")
                && !n.ends_with("-wal")
                && !n.ends_with("-shm")
        })
        .expect("the replaced database is kept");
    let path = restored.db.dir.path().join(kept);
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let denied =
        diesel::sql_query("SELECT count(*) AS n FROM audit_log WHERE action = 'access.denied'")
            .get_result::<Count>(&mut conn)
            .unwrap();
    assert_eq!(denied.n, 2);
}
