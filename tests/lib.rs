//! Test helpers: `spawn_app` starts the real server on port 0 against a fresh database (a
//! SQLite file in a temporary folder, or a new PostgreSQL database), and typed request helpers.

pub mod clinic;

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use palreg_server::config::SettingsArgs;
use palreg_server::startup::Application;
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "clinician-password-1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use (each test makes its own database there).
pub fn pg_admin_url() -> String {
    std::env::var("PALREG_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn random_suffix() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("randomness");
    hex::encode(b)
}

/// A fresh, empty database of the backend, dropped with the value.
pub struct TestDatabase {
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDatabase {
    pub fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}", dir.path().join("palreg.db").display()),
                dir,
                pg_name: None,
            },
            Backend::Postgres => {
                let name = format!("palreg_t_{}", random_suffix());
                let admin = pg_admin_url();
                let mut conn = diesel::PgConnection::establish(&admin)
                    .unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                let mut url = url_with_db(&admin, &name);
                url.push_str(if url.contains('?') { "&" } else { "?" });
                url.push_str("connect_timeout=5");
                Self {
                    url,
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl TestDatabase {
    /// The audit spool folder of a SQLite database (`palreg.db-audit`).
    pub fn spool_dir(&self) -> std::path::PathBuf {
        palreg_server::audit_spool::dir_of(std::path::Path::new(
            self.url.trim_start_matches("sqlite://"),
        ))
    }

    /// The files of the audit spool waiting to be folded (SQLite; none on PostgreSQL).
    pub fn spooled(&self) -> Vec<String> {
        std::fs::read_dir(self.spool_dir()).map_or_else(
            |_| Vec::new(),
            |dir| {
                dir.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".jsonl"))
                    .collect()
            },
        )
    }

    /// Runs a `palreg` command on this database, in process: its exit code, or the one line
    /// `palreg` prints when it fails (exit code 2).
    pub fn palreg(&self, args: &[&str]) -> Result<i32, String> {
        use clap::Parser;
        let dir = self.dir.path().to_str().expect("a UTF-8 temporary folder");
        let argv = ["palreg", "--database-url", &self.url, "--data-dir", dir];
        let cli = palreg_server::cli::Cli::try_parse_from(argv.iter().chain(args))
            .map_err(|e| e.to_string())?;
        palreg_server::cli::run(cli).map_err(|e| format!("{e:#}"))
    }
}

fn url_with_db(admin: &str, name: &str) -> String {
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let base = match base.rfind('/') {
        Some(i) if base[..i].ends_with('/') => format!("{base}/{name}"),
        Some(i) => format!("{}/{name}", &base[..i]),
        None => format!("{base}/{name}"),
    };
    if query.is_empty() {
        base
    } else {
        format!("{base}?{query}")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = diesel::PgConnection::establish(&pg_admin_url())
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Settings for a test server on `url`, plain HTTP on an ephemeral port.
pub fn test_settings(url: &str, data_dir: &std::path::Path) -> SettingsArgs {
    SettingsArgs {
        database_url: url.to_string(),
        listen: "127.0.0.1:0".into(),
        tls: "off".into(),
        tls_cert: None,
        tls_key: None,
        data_dir: Some(data_dir.to_path_buf()),
        jwt_secret: Some("test-secret-test-secret-test-secret-0123".into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        session_minutes: 30,
        lockout_threshold: 5,
        lockout_minutes: 15,
        login_rate_per_minute: 1000,
        trusted_proxies: String::new(),
        workers: Some(2),
        body_limit_kib: 256,
        keep_alive_secs: 75,
        db_pool: 4,
        sqlite_cache_mib: 32,
        sqlite_read_cache_mib: 2,
        // Folded often, so that a test waiting for the spool (`audit_settled`) waits little.
        audit_fold_ms: 50,
        small_cell_k: 5,
        web_dir: std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web")),
    }
}

/// A running server.
pub struct TestApp {
    pub base: String,
    /// Every request and response body this client exchanged (for plaintext checks).
    pub bodies: std::sync::Mutex<Vec<String>>,
    pub backend: Backend,
    agent: ureq::Agent,
    handle: Option<actix_web::dev::ServerHandle>,
    thread: Option<JoinHandle<()>>,
    pub db: TestDatabase,
}

/// A response: status, headers we look at, and the JSON body (or `Null`).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The stable error code of an error reply.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Everything the servers of this test process logged (at debug level), to check that no
/// identifying data reaches the log.
pub fn captured_log() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

static LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .try_init();
    });
}

pub fn spawn_app(backend: Backend) -> TestApp {
    let db = TestDatabase::new(backend);
    spawn_with(backend, db, |_| {})
}

/// Starts a server on `db` with settings adjusted by `tweak`.
pub fn spawn_with(
    backend: Backend,
    db: TestDatabase,
    tweak: impl FnOnce(&mut SettingsArgs),
) -> TestApp {
    capture_logs();
    let mut args = test_settings(&db.url, db.dir.path());
    tweak(&mut args);
    let settings = args.validate().expect("valid settings");
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            match Application::build(settings) {
                Ok(app) => {
                    let _ = tx.send(Ok((app.port(), app.handle())));
                    let _ = app.run_until_stopped().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("{e:#}")));
                }
            }
        });
    });
    let (port, handle) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server started in time")
        .unwrap_or_else(|e| panic!("server failed to start: {e}"));
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    TestApp {
        bodies: std::sync::Mutex::new(Vec::new()),
        base: format!("http://127.0.0.1:{port}"),
        backend,
        agent,
        handle: Some(handle),
        thread: Some(thread),
        db,
    }
}

/// Another server on the database of `app` (a replica, on PostgreSQL), with a data directory of
/// its own and the same session secret. The database stays `app`'s: it is dropped with `app`.
pub fn spawn_replica(app: &TestApp, tweak: impl FnOnce(&mut SettingsArgs)) -> TestApp {
    let db = TestDatabase {
        url: app.db.url.clone(),
        dir: tempfile::tempdir().expect("temp dir"),
        pg_name: None,
    };
    spawn_with(app.backend, db, tweak)
}

impl TestApp {
    /// Stops the server and hands back its database (to start another server on it).
    pub fn into_database(mut self) -> TestDatabase {
        self.shutdown();
        let placeholder = TestDatabase {
            url: String::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            pg_name: None,
        };
        std::mem::replace(&mut self.db, placeholder)
    }

    fn shutdown(&mut self) {
        if let Some(handle) = self.handle.take() {
            let stop = handle.stop(false);
            let _ = std::thread::spawn(move || futures_block_on(stop)).join();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
    actix_web::rt::System::new().block_on(f)
}

fn read(
    mut resp: ureq::http::Response<ureq::Body>,
    bodies: &std::sync::Mutex<Vec<String>>,
) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    bodies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(text.clone());
    let body = serde_json::from_str(&text).unwrap_or(if text.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    });
    Reply {
        status,
        body,
        headers,
    }
}

impl TestApp {
    fn record(&self, body: &Value) {
        self.bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(body.to_string());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn with_auth<B>(req: ureq::RequestBuilder<B>, token: Option<&str>) -> ureq::RequestBuilder<B> {
        match token {
            Some(t) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let req = Self::with_auth(self.agent.get(&self.url(path)), token);
        read(req.call().expect("request sent"), &self.bodies)
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        let req = Self::with_auth(self.agent.delete(&self.url(path)), token);
        read(req.call().expect("request sent"), &self.bodies)
    }

    /// A DELETE with a JSON body (e.g. a confirmation code).
    pub fn delete_json(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.record(body);
        let req = Self::with_auth(self.agent.delete(&self.url(path)), token).force_send_body();
        read(req.send_json(body).expect("request sent"), &self.bodies)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.record(body);
        let req = Self::with_auth(self.agent.post(&self.url(path)), token);
        read(req.send_json(body).expect("request sent"), &self.bodies)
    }

    /// A POST as a reverse proxy passes it on: with `X-Forwarded-For: forwarded_for`.
    pub fn post_forwarded(&self, path: &str, body: &Value, forwarded_for: &str) -> Reply {
        self.record(body);
        let req = self
            .agent
            .post(&self.url(path))
            .header("X-Forwarded-For", forwarded_for);
        read(req.send_json(body).expect("request sent"), &self.bodies)
    }

    pub fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.record(body);
        let req = Self::with_auth(self.agent.put(&self.url(path)), token);
        read(req.send_json(body).expect("request sent"), &self.bodies)
    }

    /// Sends a raw body with a content type (for malformed-input tests).
    pub fn send_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Reply {
        let req = match method {
            "POST" => self.agent.post(&self.url(path)),
            "PUT" => self.agent.put(&self.url(path)),
            other => panic!("unsupported method {other}"),
        };
        let req = Self::with_auth(req, token).content_type(content_type);
        self.bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(String::from_utf8_lossy(body).into_owned());
        read(req.send(body).expect("request sent"), &self.bodies)
    }

    /// Runs a `palreg` command on this app's database ([`TestDatabase::palreg`]); its exit
    /// code, 2 when it failed to run.
    pub fn cli(&self, args: &[&str]) -> i32 {
        self.audit_settled();
        self.db.palreg(args).unwrap_or(2)
    }

    /// Waits until the server has folded its audit spool into the log (SQLite: see
    /// `palreg_server::audit_spool`), so that what a test then reads or changes in the database
    /// directly holds the entries of every request answered so far.
    pub fn audit_settled(&self) {
        if !matches!(self.backend, Backend::Sqlite) {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.db.spooled().is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the audit spool in {} was not folded within 10 s",
                self.db.spool_dir().display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Signs in and returns the token; panics unless it succeeds.
    pub fn login(&self, login: &str, password: &str) -> String {
        let reply = self.post(
            "/api/v1/auth/login",
            None,
            &json!({"login": login, "password": password}),
        );
        assert_eq!(reply.status, 200, "login {login}: {:?}", reply.body);
        reply.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub fn admin_token(&self) -> String {
        self.login("admin", ADMIN_PASSWORD)
    }

    /// Creates an institution through the API and returns its id.
    pub fn create_institution(&self, admin: &str, code: &str, name: &str) -> i64 {
        let reply = self.post(
            "/api/v1/refs/institutions",
            Some(admin),
            &json!({"code": code, "name": name}),
        );
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        reply.body["id"].as_i64().expect("id")
    }

    /// Creates a user through the API and returns its id.
    pub fn create_user(
        &self,
        admin: &str,
        login: &str,
        roles: &[&str],
        institution: Option<i64>,
    ) -> i64 {
        let reply = self.post(
            "/api/v1/admin/users",
            Some(admin),
            &json!({
                "login": login,
                "full_name": format!("Test {login}"),
                "password": PASSWORD,
                "roles": roles,
                "institution_id": institution,
            }),
        );
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        reply.body["id"].as_i64().expect("id")
    }

    /// What an attacker holding the database at rest would read: on SQLite the database file
    /// with its WAL, shared memory and audit spool, on PostgreSQL [`Self::dump_postgres`].
    pub fn stored_bytes(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let dir = self.db.dir.path();
                let mut all = Vec::new();
                for name in ["palreg.db", "palreg.db-wal", "palreg.db-shm"] {
                    if let Ok(bytes) = std::fs::read(dir.join(name)) {
                        all.extend(bytes);
                    }
                }
                for spooled in std::fs::read_dir(dir.join("palreg.db-audit"))
                    .into_iter()
                    .flatten()
                {
                    if let Ok(bytes) = spooled.and_then(|f| std::fs::read(f.path())) {
                        all.extend(bytes);
                    }
                }
                assert!(all.len() > 100_000, "the database files were read");
                all
            }
            Backend::Postgres => self.dump_postgres(),
        }
    }

    /// Everything a PostgreSQL test database holds, as bytes: every row of every table as
    /// text, and the database's files and recent WAL segments on disk when they are readable.
    pub fn dump_postgres(&self) -> Vec<u8> {
        use diesel::RunQueryDsl;
        let mut conn = self.postgres();
        let tables: Vec<Text> = diesel::sql_query(
            "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .load(&mut conn)
        .expect("tables");
        assert!(tables.len() > 10, "tables found");
        let mut out = Vec::new();
        for table in tables {
            let rows: Vec<Text> =
                diesel::sql_query(format!("SELECT x::text AS t FROM \"{}\" x", table.t))
                    .load(&mut conn)
                    .expect("rows");
            for row in rows {
                out.extend_from_slice(row.t.as_bytes());
                out.push(b'\n');
            }
        }
        let _ = conn.batch_execute("CHECKPOINT");
        let dirs: Vec<Text> = diesel::sql_query(
            "SELECT current_setting('data_directory') || '/base/' || oid::text AS t FROM pg_database WHERE datname = current_database() \
             UNION ALL SELECT current_setting('data_directory') || '/pg_wal' AS t",
        )
        .load(&mut conn)
        .unwrap_or_default();
        let recent = std::time::SystemTime::now() - Duration::from_secs(900);
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir.t) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_file()
                    && meta.modified().map(|m| m > recent).unwrap_or(true)
                    && let Ok(bytes) = std::fs::read(entry.path())
                {
                    out.extend(bytes);
                }
            }
        }
        out
    }

    /// The column `t` (text) of every row a query answers, read directly from the test
    /// database (to look at what is stored as an attacker holding the file would).
    pub fn query_texts(&self, sql: &str) -> Vec<String> {
        use diesel::RunQueryDsl;
        self.audit_settled();
        let rows: Vec<Text> = match self.backend {
            Backend::Sqlite => diesel::sql_query(sql).load(&mut self.sqlite()),
            Backend::Postgres => diesel::sql_query(sql).load(&mut self.postgres()),
        }
        .expect("query");
        rows.into_iter().map(|r| r.t).collect()
    }

    /// Every patient's needs as its row keeps them (`patients.needs`) and as `patient_needs`
    /// lists them, `id:ids` each, in id order: the two must agree.
    pub fn needs_both_ways(&self) -> (Vec<String>, Vec<String>) {
        let (id, listed) = match self.backend {
            Backend::Sqlite => (
                "CAST(p.id AS TEXT)",
                "group_concat(n.need_id, ',' ORDER BY n.need_id)",
            ),
            Backend::Postgres => (
                "p.id::text",
                "string_agg(n.need_id::text, ',' ORDER BY n.need_id)",
            ),
        };
        let in_rows = self.query_texts(&format!(
            "SELECT {id} || ':' || p.needs AS t FROM patients p ORDER BY p.id"
        ));
        let listed = self.query_texts(&format!(
            "SELECT {id} || ':' || COALESCE((SELECT {listed} FROM patient_needs n \
             WHERE n.patient_id = p.id), '') AS t FROM patients p ORDER BY p.id"
        ));
        (in_rows, listed)
    }

    /// Runs SQL directly against the test database (to play the attacker in tests).
    pub fn raw_sql(&self, sql: &str) {
        self.audit_settled();
        match self.backend {
            Backend::Sqlite => self.sqlite().batch_execute(sql),
            Backend::Postgres => self.postgres().batch_execute(sql),
        }
        .expect("raw sql");
    }

    /// A connection of the server's own type to the test database (to call the storage layer
    /// directly).
    pub fn db_conn(&self) -> palreg_server::db::DbConn {
        self.audit_settled();
        match self.backend {
            Backend::Sqlite => palreg_server::db::DbConn::Sqlite(self.sqlite()),
            Backend::Postgres => palreg_server::db::DbConn::Pg(self.postgres()),
        }
    }

    /// A connection of its own to the SQLite test database.
    fn sqlite(&self) -> diesel::SqliteConnection {
        let path = self.db.url.trim_start_matches("sqlite://");
        diesel::SqliteConnection::establish(path).expect("open sqlite")
    }

    /// A connection of its own to the PostgreSQL test database.
    fn postgres(&self) -> diesel::PgConnection {
        diesel::PgConnection::establish(&self.db.url).expect("open pg")
    }
}

/// A row of a query that answers one text column named `t`.
#[derive(diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

/// Declares each test function (taking a [`Backend`]) once per backend: `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name($crate::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name($crate::Backend::Postgres) } )*
        }
    };
}
