//! One typed settings struct, read from flags and environment and validated at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::db::DatabaseUrl;

/// Flags (each also read from its `PALREG_*` environment variable).
#[derive(Args, Debug, Clone)]
pub struct SettingsArgs {
    /// `sqlite://PATH` (embedded, the default) or `postgres://…` (scale-out).
    #[arg(
        long,
        env = "PALREG_DATABASE_URL",
        default_value = "sqlite://./data/palreg.db",
        global = true
    )]
    pub database_url: String,

    /// Address to listen on.
    #[arg(
        long,
        env = "PALREG_LISTEN",
        default_value = "127.0.0.1:8443",
        global = true
    )]
    pub listen: String,

    /// `on` (default) or `off` (plain HTTP, only behind a TLS proxy or in tests).
    #[arg(long, env = "PALREG_TLS", default_value = "on", global = true)]
    pub tls: String,

    /// PEM certificate chain; with `--tls-key`. Without both, a self-signed certificate is
    /// generated into the data directory on first run.
    #[arg(long, env = "PALREG_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "PALREG_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,

    /// Where generated secrets (JWT key, TLS certificate, report signing key) are kept.
    /// Default: the SQLite file's folder, or `./data` with PostgreSQL.
    #[arg(long, env = "PALREG_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// HMAC key for session tokens (at least 32 characters). Replicas behind a load balancer
    /// must share it. Default: a random key generated once into the data directory.
    #[arg(long, env = "PALREG_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// Password of the first administrator (`admin`), used only on an empty database.
    #[arg(
        long,
        env = "PALREG_ADMIN_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub admin_password: Option<String>,

    /// Session lifetime in minutes.
    #[arg(
        long,
        env = "PALREG_SESSION_MINUTES",
        default_value_t = 30,
        global = true
    )]
    pub session_minutes: u32,

    /// Wrong passwords in a row that lock an account.
    #[arg(
        long,
        env = "PALREG_LOCKOUT_THRESHOLD",
        default_value_t = 5,
        global = true
    )]
    pub lockout_threshold: u32,

    /// How long a locked account stays locked, in minutes.
    #[arg(
        long,
        env = "PALREG_LOCKOUT_MINUTES",
        default_value_t = 15,
        global = true
    )]
    pub lockout_minutes: u32,

    /// Sign-in attempts allowed per client address per minute.
    #[arg(long, env = "PALREG_LOGIN_RATE", default_value_t = 30, global = true)]
    pub login_rate_per_minute: u32,

    /// Reverse proxies (addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For`
    /// names the client, for the audit log and the sign-in rate limit. Empty: the peer is the
    /// client, whatever the header says.
    #[arg(
        long,
        env = "PALREG_TRUSTED_PROXIES",
        default_value = "",
        global = true
    )]
    pub trusted_proxies: String,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "PALREG_WORKERS", global = true)]
    pub workers: Option<usize>,

    /// Largest accepted JSON body, in KiB.
    #[arg(
        long,
        env = "PALREG_BODY_LIMIT_KIB",
        default_value_t = 256,
        global = true
    )]
    pub body_limit_kib: usize,

    /// Seconds an idle HTTP connection stays open for its next request. Keep it above the idle
    /// timeout of a load balancer in front (60 s on many), or the server may close a connection
    /// just as the balancer sends a request on it.
    #[arg(
        long,
        env = "PALREG_KEEP_ALIVE_SECS",
        default_value_t = 75,
        global = true
    )]
    pub keep_alive_secs: u64,

    /// The browser client's folder (HTML, CSS, ES modules and the WASM package), served at
    /// `/`. Without one, only the API is served.
    #[arg(long, env = "PALREG_WEB_DIR", default_value = "web", global = true)]
    pub web_dir: PathBuf,

    /// Small-cell threshold of the summary reports: counts from 1 to k-1 are suppressed.
    #[arg(long, env = "PALREG_SMALL_CELL_K", default_value_t = 5, global = true)]
    pub small_cell_k: u64,

    /// Database connections in the pool.
    #[arg(long, env = "PALREG_DB_POOL", default_value_t = 16, global = true)]
    pub db_pool: u32,

    /// SQLite: the page cache of the one writer connection and of each report connection, in
    /// MiB. The writer's keeps the upper levels of the indexes that imports insert into; a
    /// report reads through large parts of the register. Filled only as pages are used.
    #[arg(
        long,
        env = "PALREG_SQLITE_CACHE_MIB",
        default_value_t = 32,
        global = true
    )]
    pub sqlite_cache_mib: u32,

    /// SQLite: the page cache of each pooled (reading) connection, in MiB. SQLite empties it
    /// whenever another connection has committed, at a cost that grows with its size.
    #[arg(
        long,
        env = "PALREG_SQLITE_READ_CACHE_MIB",
        default_value_t = 2,
        global = true
    )]
    pub sqlite_read_cache_mib: u32,

    /// SQLite: how often the audit entries of reads, written to the audit spool beside the
    /// database before each answer, are folded into the hash-chained log, in milliseconds.
    /// Each fold is one write transaction: folding less often costs the register's reads less,
    /// and only delays when an entry takes its place in the chain (the audit listing and every
    /// change fold first, a backup takes the spool's entries too, and a crash loses nothing:
    /// the spool is on disk).
    #[arg(
        long,
        env = "PALREG_AUDIT_FOLD_MS",
        default_value_t = 1000,
        global = true
    )]
    pub audit_fold_ms: u32,
}

/// Validated settings.
#[derive(Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub listen: SocketAddr,
    pub tls: TlsSettings,
    pub data_dir: PathBuf,
    pub jwt_secret: Option<String>,
    pub admin_password: Option<String>,
    pub session_ttl: Duration,
    pub lockout_threshold: u32,
    pub lockout_duration: Duration,
    pub login_rate_per_minute: u32,
    pub trusted_proxies: crate::proxies::TrustedProxies,
    pub workers: usize,
    pub body_limit: usize,
    pub keep_alive: Duration,
    pub db_pool: u32,
    pub sqlite_caches: crate::db::SqliteCaches,
    /// SQLite: how often the audit spool is folded into the log.
    pub audit_fold_every: Duration,
    /// Served at `/` when it holds an `index.html`.
    pub web_dir: Option<PathBuf>,
    pub small_cell_k: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &self.database_url.redacted())
            .field("listen", &self.listen)
            .field("tls", &self.tls)
            .field("data_dir", &self.data_dir)
            .field("session_ttl", &self.session_ttl)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSettings {
    Off,
    /// Certificate and key from files.
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// A self-signed certificate kept in the data directory.
    SelfSigned,
}

impl SettingsArgs {
    pub fn validate(&self) -> Result<Settings, String> {
        let database_url = DatabaseUrl::parse(&self.database_url)?;
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            format!(
                "PALREG_LISTEN must be ADDRESS:PORT, e.g. 127.0.0.1:8443 (got {:?})",
                self.listen
            )
        })?;
        let tls = match (
            self.tls.to_ascii_lowercase().as_str(),
            &self.tls_cert,
            &self.tls_key,
        ) {
            ("off" | "false" | "0", _, _) => TlsSettings::Off,
            ("on" | "true" | "1", Some(cert), Some(key)) => TlsSettings::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            ("on" | "true" | "1", None, None) => TlsSettings::SelfSigned,
            ("on" | "true" | "1", _, _) => {
                return Err("PALREG_TLS_CERT and PALREG_TLS_KEY go together".into());
            }
            (other, _, _) => return Err(format!("PALREG_TLS must be on or off (got {other:?})")),
        };
        let data_dir = match (&self.data_dir, &database_url) {
            (Some(dir), _) => dir.clone(),
            (None, DatabaseUrl::Sqlite(path)) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".")),
            (None, DatabaseUrl::Postgres(_)) => PathBuf::from("./data"),
        };
        if let Some(secret) = &self.jwt_secret
            && secret.len() < 32
        {
            return Err("PALREG_JWT_SECRET must be at least 32 characters".into());
        }
        if let Some(password) = &self.admin_password {
            crate::password::check_strength(password)
                .map_err(|e| format!("PALREG_ADMIN_PASSWORD: {e}"))?;
        }
        if self.session_minutes == 0 || self.session_minutes > 24 * 60 {
            return Err("PALREG_SESSION_MINUTES must be between 1 and 1440".into());
        }
        if self.lockout_threshold == 0 {
            return Err("PALREG_LOCKOUT_THRESHOLD must be at least 1".into());
        }
        if self.body_limit_kib < 16 {
            return Err("PALREG_BODY_LIMIT_KIB must be at least 16".into());
        }
        if self.small_cell_k < 2 {
            return Err(
                "PALREG_SMALL_CELL_K must be at least 2 (1 would publish every count)".into(),
            );
        }
        if self.db_pool == 0 {
            return Err("PALREG_DB_POOL must be at least 1".into());
        }
        if !(1..=3600).contains(&self.keep_alive_secs) {
            return Err("PALREG_KEEP_ALIVE_SECS must be between 1 and 3600".into());
        }
        if !(1..=65_536).contains(&self.sqlite_cache_mib) {
            return Err("PALREG_SQLITE_CACHE_MIB must be between 1 and 65536".into());
        }
        if !(1..=65_536).contains(&self.sqlite_read_cache_mib) {
            return Err("PALREG_SQLITE_READ_CACHE_MIB must be between 1 and 65536".into());
        }
        if !(10..=60_000).contains(&self.audit_fold_ms) {
            return Err("PALREG_AUDIT_FOLD_MS must be between 10 and 60000".into());
        }
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1);
        Ok(Settings {
            database_url,
            listen,
            tls,
            data_dir,
            jwt_secret: self.jwt_secret.clone(),
            admin_password: self.admin_password.clone(),
            session_ttl: Duration::from_secs(u64::from(self.session_minutes) * 60),
            lockout_threshold: self.lockout_threshold,
            lockout_duration: Duration::from_secs(u64::from(self.lockout_minutes) * 60),
            login_rate_per_minute: self.login_rate_per_minute.max(1),
            trusted_proxies: crate::proxies::TrustedProxies::parse(&self.trusted_proxies)
                .map_err(|e| format!("PALREG_TRUSTED_PROXIES: {e}"))?,
            workers,
            body_limit: self.body_limit_kib * 1024,
            keep_alive: Duration::from_secs(self.keep_alive_secs),
            db_pool: self.db_pool,
            sqlite_caches: crate::db::SqliteCaches {
                writer_mib: self.sqlite_cache_mib,
                reader_mib: self.sqlite_read_cache_mib,
                report_mib: self.sqlite_cache_mib,
            },
            audit_fold_every: Duration::from_millis(u64::from(self.audit_fold_ms)),
            small_cell_k: self.small_cell_k,
            web_dir: self
                .web_dir
                .join("index.html")
                .is_file()
                .then(|| self.web_dir.clone()),
        })
    }
}
