//! The storage layer: one connection type over SQLite and PostgreSQL, the pool, migrations.
//!
//! Queries live in [`models`]; they take `&mut DbConn`, return `QueryResult` and know nothing of
//! HTTP.

pub mod models;
pub mod schema;

use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// One connection type for both backends; the variant is chosen from the URL scheme.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

/// Runs `$body` with `$c` bound to the backend's own connection. For the statements diesel
/// cannot build on [`DbConn`] itself: multi-row inserts and upserts.
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Pg($c) => $body,
        }
    };
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// Where the data lives, parsed from `PALREG_DATABASE_URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file (created with its parent directory on first use).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (a connect timeout is added when absent).
    Postgres(String),
}

impl DatabaseUrl {
    /// Picks the backend from the scheme: `sqlite://PATH` (or `sqlite:PATH`) or `postgres://`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Some(rest) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if rest.is_empty() {
                return Err(
                    "a sqlite URL needs a file path, e.g. sqlite://./data/palreg.db".into(),
                );
            }
            return Ok(Self::Sqlite(PathBuf::from(rest)));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let mut parsed =
                url::Url::parse(raw).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
            if !parsed.query_pairs().any(|(k, _)| k == "connect_timeout") {
                parsed.query_pairs_mut().append_pair("connect_timeout", "5");
            }
            return Ok(Self::Postgres(parsed.into()));
        }
        Err("the database URL must start with sqlite:// or postgres://".into())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The URL with any password masked, for log lines.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    u.into()
                }
                Err(_) => "postgres://…".into(),
            },
        }
    }

    /// Opens one connection with the real error (diesel's `MultiConnection::establish` would
    /// hide it) and, for SQLite, the PRAGMAs every connection needs.
    pub fn connect(&self) -> Result<DbConn, ConnectionError> {
        match self {
            Self::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        ConnectionError::BadConnection(format!(
                            "cannot create {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // busy_timeout first: the other PRAGMAs may already have to wait for a lock.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000;
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;",
                )
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConn::Sqlite(conn))
            }
            Self::Postgres(url) => Ok(DbConn::Pg(PgConnection::establish(url)?)),
        }
    }
}

/// r2d2 manager that connects through [`DatabaseUrl::connect`].
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
    /// SQLite: held while the pool lives; the WAL checkpointer stops when it is gone.
    checkpointer: Option<std::sync::Arc<()>>,
    /// SQLite: each connection's page cache, in KiB.
    cache_kib: u64,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConn, ConnectionError> {
        let mut conn = self.url.connect()?;
        if self.checkpointer.is_some() {
            // The background checkpointer moves the WAL into the database file; a request's
            // commit never does (SQLite would otherwise checkpoint inside the commit that
            // crosses 1000 pages: a latency spike on whichever request it was).
            // A page cache that holds the upper levels of the indexes: the default 2 MiB made a
            // bulk import slow down as the random-order indexes outgrew it.
            conn.batch_execute(&format!(
                "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -{}",
                self.cache_kib
            ))
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
        }
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), ConnectionError> {
        conn.batch_execute("SELECT 1")
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        match conn {
            DbConn::Sqlite(c) => c.is_broken(),
            DbConn::Pg(c) => c.is_broken(),
        }
    }
}

/// Connects once (so a wrong URL or a server that is down is reported at once with its real
/// cause), runs the pending migrations, and builds the pool of `max_size` connections (on
/// SQLite, each with a page cache of `sqlite_cache_mib`).
pub fn open(url: &DatabaseUrl, max_size: u32, sqlite_cache_mib: u32) -> anyhow::Result<Pool> {
    let mut first = url
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", url.redacted()))?;
    run_migrations(&mut first)?;
    drop(first);
    let checkpointer = match url {
        DatabaseUrl::Sqlite(_) => Some(spawn_checkpointer(url)?),
        DatabaseUrl::Postgres(_) => None,
    };
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(10))
        .build(Manager {
            url: url.clone(),
            checkpointer,
            cache_kib: u64::from(sqlite_cache_mib) * 1024,
        })
        .map_err(|e| anyhow::anyhow!("cannot build the connection pool: {e}"))?;
    Ok(pool)
}

/// How often the SQLite WAL is checkpointed in the background.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Starts a thread with its own connection that runs a PASSIVE checkpoint (it never blocks
/// readers or the writer) every [`CHECKPOINT_EVERY`], until the returned token's pool is gone.
fn spawn_checkpointer(url: &DatabaseUrl) -> anyhow::Result<std::sync::Arc<()>> {
    let mut conn = url
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", url.redacted()))?;
    let alive = std::sync::Arc::new(());
    let watch = std::sync::Arc::downgrade(&alive);
    std::thread::Builder::new()
        .name("palreg-wal-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                if watch.upgrade().is_none() {
                    // Close this connection last: SQLite then folds the WAL in and removes it.
                    return;
                }
                if let Err(err) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                    tracing::warn!(error = %err, "WAL checkpoint failed");
                }
            }
        })?;
    Ok(alive)
}

/// Runs the embedded migrations of the connection's dialect. On PostgreSQL an advisory lock
/// keeps replicas that start together from migrating at once.
pub fn run_migrations(conn: &mut DbConn) -> anyhow::Result<usize> {
    const MIGRATION_LOCK: i64 = 0x7061_6c72_6567; // "palreg"
    let applied = match conn {
        DbConn::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?
            .len(),
        DbConn::Pg(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let result = c
                .run_pending_migrations(PG_MIGRATIONS)
                .map(|v| v.len())
                .map_err(|e| anyhow::anyhow!("migration failed: {e}"));
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            result?
        }
    };
    Ok(applied)
}

/// True when a diesel error is a unique-constraint violation.
pub fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// True when a diesel error is a foreign-key violation (a referenced row is missing, or a row
/// still in use was to be deleted).
pub fn is_foreign_key_violation(err: &diesel::result::Error) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_scheme_picks_the_backend() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://./data/palreg.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("./data/palreg.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/palreg.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("/var/lib/palreg.db"))
        );
        let pg = DatabaseUrl::parse("postgres://u:secret@db:5432/palreg").unwrap();
        match &pg {
            DatabaseUrl::Postgres(u) => assert!(u.contains("connect_timeout=5"), "{u}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!pg.redacted().contains("secret"));
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn explicit_connect_timeout_is_kept() {
        let pg = DatabaseUrl::parse("postgres://db/p?connect_timeout=2").unwrap();
        match pg {
            DatabaseUrl::Postgres(u) => assert_eq!(u.matches("connect_timeout").count(), 1),
            other => panic!("unexpected {other:?}"),
        }
    }
}
