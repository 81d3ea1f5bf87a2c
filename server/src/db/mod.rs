//! The storage layer: one connection type over SQLite and PostgreSQL, the pool, migrations.
//!
//! Queries live in [`models`]; they take `&mut DbConn`, return `QueryResult` and know nothing of
//! HTTP.

pub mod in_list;
pub mod lock;
pub mod models;
pub mod schema;
#[cfg(test)]
pub mod testing;
pub mod unindexed;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

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

/// Creates a new SQLite database as an empty file only its owner may read (0600), in a folder
/// only its owner may enter (0700): SQLite would create it readable by every local user (0644),
/// and its WAL and shared-memory files take the database file's mode. The database holds
/// password hashes, sealed second-factor secrets and the audit log. An existing file keeps its
/// mode.
fn create_private_database(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::secrets::create_private_dir(parent)?;
    }
    match crate::secrets::create_private_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs `f` in one read-only transaction that sees one state of the database throughout:
/// REPEATABLE READ on PostgreSQL (its default, READ COMMITTED, takes a new snapshot per
/// statement); on SQLite a deferred transaction, which reads from one snapshot from its first
/// read. For reads made of several statements that must agree (a report's tables, the audit
/// chain and its head) while writers go on.
pub fn in_snapshot<T, E>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    use diesel::Connection;
    conn.transaction(|conn| {
        if let DbConn::Pg(pg) = conn {
            diesel::connection::SimpleConnection::batch_execute(
                pg,
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            )?;
        }
        f(conn)
    })
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

/// Inserts `$rows`, a `Vec` of owned `Insertable` rows, into `$table` in multi-row
/// statements: `$n` rows each, then 128, 16, and one by one. Returns the rows inserted.
///
/// Every statement so has the shape of a fixed-size array, which diesel prepares once per
/// connection and keeps; a statement of a slice's length would be written out and prepared anew
/// each time. The rows must own their values (a borrowed value keeps the statement out of the
/// cache) and be derived with `treat_none_as_default_value = false`: by default diesel makes
/// every field a value that may be `DEFAULT`, and on SQLite, which has no `DEFAULT` in a
/// `VALUES` list, it then inserts the rows one statement each, every statement written out
/// anew. That was how the import stored its rows: 2 161 statements for 2 147 rows, against 7
/// now (`chunked_inserts_store_every_row_and_prepare_each_shape_once`).
#[macro_export]
macro_rules! insert_in_chunks {
    ($conn:expr, $table:expr, $rows:expr, $n:expr) => {
        $crate::insert_in_chunks!(@each $conn, $table, $rows, $n, 0usize,
            |insert, c| insert.execute(c),
            |total, count| total += count)
    };
    // The same, with `RETURNING $selection` of every row (in no promised order).
    ($conn:expr, $table:expr, $rows:expr, $n:expr, returning $selection:expr => $row:ty) => {
        $crate::insert_in_chunks!(@each $conn, $table, $rows, $n, Vec::<$row>::new(),
            |insert, c| insert.returning($selection).get_results::<$row>(c),
            |all, got| all.extend(got))
    };
    (@each $conn:expr, $table:expr, $rows:expr, $n:expr, $init:expr,
        |$insert:ident, $c:ident| $run:expr, |$acc:ident, $got:ident| $add:expr) => {{
        let rows: Vec<_> = $rows;
        let mut rows = rows.into_iter();
        let mut $acc = $init;
        while !rows.as_slice().is_empty() {
            let left = rows.as_slice().len();
            let $got = if left >= $n {
                $crate::insert_in_chunks!(@array $conn, $table, rows, $n, |$insert, $c| $run)
            } else if left >= 128 {
                $crate::insert_in_chunks!(@array $conn, $table, rows, 128, |$insert, $c| $run)
            } else if left >= 16 {
                $crate::insert_in_chunks!(@array $conn, $table, rows, 16, |$insert, $c| $run)
            } else {
                $crate::insert_in_chunks!(@array $conn, $table, rows, 1, |$insert, $c| $run)
            };
            $add;
        }
        $acc
    }};
    (@array $conn:expr, $table:expr, $rows:expr, $n:expr, |$insert:ident, $c:ident| $run:expr) => {{
        let chunk: Box<[_]> = $rows.by_ref().take($n).collect();
        // A chunk of `$n` rows always fits its array; were it not, the rows still go in.
        match <Box<[_; $n]>>::try_from(chunk) {
            Ok(array) => $crate::per_backend!(&mut *$conn, |$c| {
                let $insert = diesel::insert_into($table).values(array);
                $run
            })?,
            Err(chunk) => $crate::per_backend!(&mut *$conn, |$c| {
                let $insert = diesel::insert_into($table).values(chunk.into_vec());
                $run
            })?,
        }
    }};
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// SQLite has one writer per database file. This process's writers (audited changes, the audit
/// queue, the WAL restarts of the checkpointer) take their turn here, in process, instead of
/// sleeping in SQLite's busy handler, and write on the gate's own connection.
///
/// One connection for every write, not whichever the pool hands out: SQLite drops a
/// connection's page cache whenever another connection has written since its last
/// transaction. With writes spread over the pool, every import batch and audit commit began
/// with a cold cache and read the upper levels of its indexes back from the file; the one
/// writer keeps them (the readers' caches are dropped at each commit anyway).
///
/// Two lanes lead to the turn. Every writer takes the first, except a bulk write (an import
/// batch of thousands of patients): it waits in the second while anyone waits in the first, so
/// that a clinician's edit, or the audit entries of the reads and searches of every
/// institution, wait for the batch already being written, not for the ones queued behind it
/// too (bench/README.md, twenty-first session). Only under writes that never stop coming does
/// a batch go first, after [`BULK_WAITS_AT_MOST`].
pub struct Writer {
    url: DatabaseUrl,
    cache_kib: u64,
    conn: Mutex<DbConn>,
    /// Writers waiting in the first lane (counted until they hold the turn).
    waiting: Mutex<usize>,
    /// Told when no one waits in the first lane any more.
    first_lane_empty: Condvar,
}

/// Which lane of the write turn a writer waits in (see [`Writer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Every write but the bulk ones.
    First,
    /// A bulk write (an import batch): every writer waiting in the first lane goes first.
    Bulk,
}

/// The longest a bulk write lets the first lane go before it: under writes that never stop
/// coming, a batch still gets its turn.
const BULK_WAITS_AT_MOST: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("url", &self.url.redacted())
            .finish()
    }
}

pub type WriteGate = Arc<Writer>;

/// The writer's turn, holding its connection.
pub type WriterTurn<'a> = std::sync::MutexGuard<'a, DbConn>;

impl Writer {
    fn open(url: &DatabaseUrl, cache_kib: u64) -> Result<Self, ConnectionError> {
        Ok(Self {
            conn: Mutex::new(writer_connection(url, cache_kib)?),
            url: url.clone(),
            cache_kib,
            waiting: Mutex::new(0),
            first_lane_empty: Condvar::new(),
        })
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, usize> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_conn(&self) -> WriterTurn<'_> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits in the first lane for this process's turn to write, and holds it without writing.
    fn hold(&self) -> WriterTurn<'_> {
        *self.waiting() += 1;
        let turn = self.lock_conn();
        let mut waiting = self.waiting();
        *waiting -= 1;
        if *waiting == 0 {
            self.first_lane_empty.notify_all();
        }
        turn
    }

    /// Waits in the bulk lane (see [`Writer`]): for the turn once no one waits in the first
    /// lane, or once [`BULK_WAITS_AT_MOST`] has passed.
    fn hold_in_bulk(&self) -> WriterTurn<'_> {
        let deadline = Instant::now() + BULK_WAITS_AT_MOST;
        loop {
            let mut waiting = self.waiting();
            while *waiting > 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                waiting = self
                    .first_lane_empty
                    .wait_timeout(waiting, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            drop(waiting);
            let turn = self.lock_conn();
            // Someone may have come to the first lane while this one waited for the lock.
            if *self.waiting() == 0 || Instant::now() >= deadline {
                return turn;
            }
        }
    }

    /// Waits for this process's turn to write, and hands over the writer's connection (opened
    /// again first if a panic in a transaction left it broken).
    pub fn turn(&self) -> Result<WriterTurn<'_>, ConnectionError> {
        self.turn_in(Lane::First)
    }

    /// [`Writer::turn`], waiting in the lane given.
    pub fn turn_in(&self, lane: Lane) -> Result<WriterTurn<'_>, ConnectionError> {
        let mut turn = match lane {
            Lane::First => self.hold(),
            Lane::Bulk => self.hold_in_bulk(),
        };
        if is_broken(&mut turn) {
            *turn = writer_connection(&self.url, self.cache_kib)?;
        }
        Ok(turn)
    }
}

/// A SQLite connection as the server uses it, the pool's or the writer's: the background
/// checkpointer moves the WAL into the database file, a commit never does (SQLite would
/// otherwise checkpoint inside the commit that crosses 1000 pages: a latency spike on whichever
/// request it was); the page cache of its kind ([`SqliteCaches`]).
fn server_connection(url: &DatabaseUrl, cache_kib: u64) -> Result<DbConn, ConnectionError> {
    let mut conn = url.connect()?;
    conn.batch_execute(&format!(
        "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -{cache_kib}"
    ))
    .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// The writer's connection. temp_store: a statement that writes many rows inside a transaction
/// (an import batch's multi-row INSERT) keeps each page's prior content in a statement journal,
/// to undo just that statement; in a temporary file, that was a tenth of an import's time in
/// write(2). (Only the writer's: a report's large sorts on the readers keep spilling to files.)
fn writer_connection(url: &DatabaseUrl, cache_kib: u64) -> Result<DbConn, ConnectionError> {
    let mut conn = server_connection(url, cache_kib)?;
    conn.batch_execute("PRAGMA temp_store = MEMORY")
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// The write gate of a SQLite database file: one per file, shared by every pool of this process
/// that opens it (a server and a bench's own pool on the same file take turns alike), with a
/// page cache of `cache_mib` (the first opener's). `None` on PostgreSQL, where row locks order
/// the writers of every replica.
pub fn write_gate(url: &DatabaseUrl, cache_mib: u32) -> Result<Option<WriteGate>, ConnectionError> {
    static GATES: OnceLock<Mutex<HashMap<FileKey, Weak<Writer>>>> = OnceLock::new();
    let DatabaseUrl::Sqlite(path) = url else {
        return Ok(None);
    };
    let mut gates = GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    gates.retain(|_, gate| gate.strong_count() > 0);
    if let Some(gate) = gates.get(&FileKey::of(path)).and_then(Weak::upgrade) {
        return Ok(Some(gate));
    }
    let gate = Arc::new(Writer::open(url, u64::from(cache_mib) * 1024)?);
    // The file exists now: its key names it.
    gates.insert(FileKey::of(path), Arc::downgrade(&gate));
    Ok(Some(gate))
}

/// A database file: its path and, on Unix, the file itself. A file restored at the same path
/// (`palreg restore`) is another database; a server started on it in the same process must not
/// write through the connection of the one it replaced, which still has the old file open.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileKey {
    path: PathBuf,
    device_and_inode: Option<(u64, u64)>,
}

impl FileKey {
    fn of(path: &std::path::Path) -> Self {
        #[cfg(unix)]
        let device_and_inode = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
        };
        #[cfg(not(unix))]
        let device_and_inode = None;
        Self {
            path: path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
            device_and_inode,
        }
    }
}

/// A connection to write on: the writer's, in its turn, on SQLite; a pooled one on PostgreSQL.
pub enum WriteConn<'a> {
    Writer(WriterTurn<'a>),
    Pooled(PooledConn),
}

impl std::ops::Deref for WriteConn<'_> {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        match self {
            Self::Writer(turn) => turn,
            Self::Pooled(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for WriteConn<'_> {
    fn deref_mut(&mut self) -> &mut DbConn {
        match self {
            Self::Writer(turn) => turn,
            Self::Pooled(conn) => conn,
        }
    }
}

/// Waits for this process's turn to write on SQLite (`gate` from [`write_gate`]) and hands over
/// the writer's connection; on PostgreSQL (no gate) a pooled connection, without waiting.
pub fn write_conn<'a>(pool: &Pool, gate: Option<&'a Writer>) -> anyhow::Result<WriteConn<'a>> {
    write_conn_in(pool, gate, Lane::First)
}

/// [`write_conn`], waiting in the lane given on SQLite (a bulk write lets every other writer
/// waiting for the turn go first: see [`Writer`]).
pub fn write_conn_in<'a>(
    pool: &Pool,
    gate: Option<&'a Writer>,
    lane: Lane,
) -> anyhow::Result<WriteConn<'a>> {
    Ok(match gate {
        Some(gate) => WriteConn::Writer(gate.turn_in(lane)?),
        None => WriteConn::Pooled(pool.get()?),
    })
}

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
                create_private_database(path).map_err(|e| {
                    ConnectionError::BadConnection(format!("cannot create {}: {e}", path.display()))
                })?;
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // busy_timeout first: the other PRAGMAs may already have to wait for a lock.
                // journal_size_limit: when a writer starts the WAL over (see
                // `spawn_checkpointer`), a larger file is cut back to this size
                // (`WAL_KEEP_BYTES`).
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = 10000;
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA journal_size_limit = {WAL_KEEP_BYTES};"
                ))
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConn::Sqlite(conn))
            }
            Self::Postgres(url) => Ok(DbConn::Pg(PgConnection::establish(url)?)),
        }
    }
}

/// True when a connection can no longer be used as it is: a transaction left open or failed
/// (a panic inside one, say). The pool drops such a connection; the writer opens a new one.
fn is_broken(conn: &mut DbConn) -> bool {
    match conn {
        DbConn::Sqlite(c) => c.is_broken(),
        DbConn::Pg(c) => c.is_broken(),
    }
}

/// r2d2 manager that connects through [`DatabaseUrl::connect`].
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
    /// SQLite, the pool of [`open`]: held while the pool lives; the WAL checkpointer stops
    /// when it is gone.
    _checkpointer: Option<Arc<()>>,
    /// SQLite: each connection's page cache, in KiB.
    cache_kib: u64,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConn, ConnectionError> {
        match self.url {
            // The pool's connections mostly read, but a write that does not go through the
            // gate (a bench's seeding, say) must not checkpoint inside its commit either.
            DatabaseUrl::Sqlite(_) => server_connection(&self.url, self.cache_kib),
            DatabaseUrl::Postgres(_) => self.url.connect(),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), ConnectionError> {
        conn.batch_execute("SELECT 1")
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        is_broken(conn)
    }
}

/// SQLite's page caches, in MiB: the one writer's, each pooled connection's, and each report
/// connection's ([`open_reports`]).
///
/// They differ because they are used differently. The writer's is never dropped (no other
/// connection writes), so it keeps the upper levels of the indexes a bulk import inserts into
/// at random. A report works through large parts of the register, page after page, and ran
/// 17 % faster with 32 MiB than with 2. A reader's is dropped at the start of any transaction
/// after another connection has committed, which under load (every read commits its audit
/// entry) is every transaction, and dropping costs in proportion to the most pages the cache
/// ever held: with readers' caches of 32 MiB, emptying them was 15 % of the server's time in
/// the read scenario of the bench (`pcache1TruncateUnsafe`; bench/README.md, "Eighth
/// session").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteCaches {
    pub writer_mib: u32,
    pub reader_mib: u32,
    pub report_mib: u32,
}

impl Default for SqliteCaches {
    /// The server's defaults (`PALREG_SQLITE_CACHE_MIB` for the writer and the reports,
    /// `PALREG_SQLITE_READ_CACHE_MIB`).
    fn default() -> Self {
        Self {
            writer_mib: 32,
            reader_mib: 2,
            report_mib: 32,
        }
    }
}

/// What every pool of the database has in common. A PostgreSQL connection may have been closed
/// by the server since it was last used: it is checked (`SELECT 1`) before each use. A SQLite
/// file's cannot, and the check cost every request a statement.
fn pool_builder(url: &DatabaseUrl) -> r2d2::Builder<Manager> {
    r2d2::Pool::builder().test_on_check_out(matches!(url, DatabaseUrl::Postgres(_)))
}

/// How many reports may read at once; more wait for a connection (up to
/// [`REPORT_WAIT`]).
pub const REPORT_CONNECTIONS: u32 = 2;

/// How long a report waits for a connection of its own before it is refused.
pub const REPORT_WAIT: Duration = Duration::from_secs(60);

/// The connections of reports, apart from the pool of [`open`] (which must have opened the
/// database first): a report neither takes an interactive request's connection for seconds
/// nor leaves a large page cache on it (see [`SqliteCaches`]). Opened when first needed.
pub fn open_reports(url: &DatabaseUrl, caches: SqliteCaches) -> anyhow::Result<Pool> {
    pool_builder(url)
        .max_size(REPORT_CONNECTIONS)
        .min_idle(Some(0))
        .connection_timeout(REPORT_WAIT)
        .build(Manager {
            url: url.clone(),
            _checkpointer: None,
            cache_kib: u64::from(caches.report_mib) * 1024,
        })
        .map_err(|e| anyhow::anyhow!("cannot build the reports' connection pool: {e}"))
}

/// Connects once (so a wrong URL or a server that is down is reported at once with its real
/// cause), runs the pending migrations, and builds the pool of `max_size` connections (on
/// SQLite, with the page caches of `caches`).
pub fn open(url: &DatabaseUrl, max_size: u32, caches: SqliteCaches) -> anyhow::Result<Pool> {
    let mut first = url
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", url.redacted()))?;
    run_migrations(&mut first)?;
    drop(first);
    let checkpointer = match url {
        DatabaseUrl::Sqlite(_) => Some(spawn_checkpointer(
            url,
            write_gate(url, caches.writer_mib)
                .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", url.redacted()))?,
        )?),
        DatabaseUrl::Postgres(_) => None,
    };
    let pool = pool_builder(url)
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(10))
        .build(Manager {
            url: url.clone(),
            _checkpointer: checkpointer,
            cache_kib: u64::from(caches.reader_mib) * 1024,
        })
        .map_err(|e| anyhow::anyhow!("cannot build the connection pool: {e}"))?;
    Ok(pool)
}

/// How often the SQLite WAL is checkpointed in the background.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// How often the checkpointer refreshes the query planner's statistics
/// ([`refresh_statistics`]): an import of many patients otherwise leaves the planner with the
/// row counts of the day the server started, or with none. It was an hour: a register that
/// started empty and imported its patients had no statistics for up to an hour. A round that
/// finds nothing to do holds the write turn for a few milliseconds. (A pooled connection keeps
/// the statistics it read when it was opened; the pool replaces its connections within 30
/// minutes. The searches do not rely on them: see `db::unindexed`.)
const STATISTICS_EVERY: Duration = Duration::from_secs(10);

/// `PRAGMA optimize` with 0x10000 (check every table, not only those this connection used:
/// a new connection has used none, so the default is a no-op at startup), 0x10 (a temporary
/// `analysis_limit`, so that it takes milliseconds at any size) and 0x02 (run `ANALYZE` where
/// a table's row count changed much since its statistics, or it has rows and none).
const OPTIMIZE: &str = "PRAGMA optimize = 0x10012";

/// Refreshes the planner's statistics of the SQLite tables that changed much since they were
/// last analyzed, or were never analyzed and have rows (see [`OPTIMIZE`]). Writes
/// `sqlite_stat1`: run it in the write turn.
pub fn refresh_statistics(conn: &mut DbConn) -> diesel::QueryResult<()> {
    match conn {
        DbConn::Sqlite(conn) => conn.batch_execute(OPTIMIZE),
        DbConn::Pg(_) => Ok(()),
    }
}

/// A WAL of this many frames (64 MiB of 4 KiB pages) is started over (see
/// [`spawn_checkpointer`]).
const WAL_RESTART_FRAMES: i64 = 16_384;

/// The size a WAL file keeps when it is started over: writes go on past the restart threshold
/// until the checkpointer's next round (an import writes ~300 MB/s of WAL on a fast machine,
/// so it reaches ~160 MB). Cut back to the threshold, as it was, the file lost its blocks at
/// every restart, and each commit past them appended to the file: the file system allocated
/// blocks and zeroed the part of each page a 4 KiB + 24-byte frame does not cover, 23 % of the
/// import's writer thread at 700k patients (bench/README.md, thirteenth session). Kept, the
/// frames overwrite blocks the file already has. Only the disk space is the cost.
const WAL_KEEP_BYTES: i64 = 256 * 1024 * 1024;
const _: () = assert!(WAL_KEEP_BYTES >= 4 * WAL_RESTART_FRAMES * 4096);

/// What `PRAGMA wal_checkpoint` answers (SQLite).
#[derive(diesel::QueryableByName, Debug)]
pub struct Checkpoint {
    /// 1 when the checkpoint could not run to its end.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub busy: i32,
    /// Frames in the WAL.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub log: i32,
}

/// Before a RESTART, PASSIVE rounds run until the writers added at most this many frames during
/// the last one, so that the RESTART, which holds the write turn, has little left to copy.
const RESTART_LEFT_FRAMES: i64 = 1024;

/// At most this many PASSIVE rounds run before a RESTART (a reader of an old snapshot can keep
/// frames from being copied: those are then the RESTART's to wait for).
const CATCH_UP_ROUNDS: usize = 4;

/// Starts a thread with its own connection that checkpoints the WAL every
/// [`CHECKPOINT_EVERY`], until the returned token's pool is gone.
///
/// A PASSIVE checkpoint copies the WAL's pages into the database file without blocking anyone,
/// but never starts the WAL over: SQLite does that only when a write begins while the whole
/// WAL is copied back and no reader still uses it, which never happens while reads and their
/// audit appends keep coming. The WAL then grows without end (855 MB after importing 100,000
/// patients), and every page read searches a longer WAL index. So when the WAL holds
/// [`WAL_RESTART_FRAMES`] or more, the checkpointer takes the write turn and runs a RESTART
/// checkpoint (it waits for readers of older snapshots, never for new ones); the next write
/// then starts the WAL over from its beginning, and `journal_size_limit` cuts the file back.
fn spawn_checkpointer(url: &DatabaseUrl, gate: Option<WriteGate>) -> anyhow::Result<Arc<()>> {
    let DbConn::Sqlite(mut conn) = url
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", url.redacted()))?
    else {
        anyhow::bail!("the WAL checkpointer is for SQLite");
    };
    // The RESTART's wait for readers (see `RESTART_WAIT_MS`).
    conn.batch_execute(&format!("PRAGMA busy_timeout = {RESTART_WAIT_MS}"))?;
    let alive = Arc::new(());
    let watch = Arc::downgrade(&alive);
    std::thread::Builder::new()
        .name("palreg-wal-checkpoint".into())
        .spawn(move || {
            // After a postponed restart, the next tries come further apart (up to 32 s), so
            // that a long report does not cost the writers a wait every round.
            let (mut pause, mut wait) = (0u32, 0u32);
            let mut analyzed = std::time::Instant::now();
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                if watch.upgrade().is_none() {
                    // Close this connection last: SQLite then folds the WAL in and removes it.
                    return;
                }
                if analyzed.elapsed() >= STATISTICS_EVERY {
                    analyzed = std::time::Instant::now();
                    let _turn = gate.as_deref().map(Writer::hold);
                    if let Err(err) = conn.batch_execute(OPTIMIZE) {
                        tracing::warn!(error = %err, "refreshing the planner's statistics failed");
                    }
                }
                let restart_at = if wait > 0 {
                    wait -= 1;
                    i64::MAX
                } else {
                    WAL_RESTART_FRAMES
                };
                match checkpoint(&mut conn, gate.as_deref(), restart_at) {
                    Ok(Round::Passive) => {}
                    Ok(Round::Restarted) => pause = 0,
                    Ok(Round::Postponed) => {
                        pause = (pause * 2).clamp(1, 64);
                        wait = pause;
                        tracing::debug!(rounds = pause, "WAL restart postponed: a reader is busy");
                    }
                    Err(err) => tracing::warn!(error = %err, "WAL checkpoint failed"),
                }
            }
        })?;
    Ok(alive)
}

/// What a round of the checkpointer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// A PASSIVE checkpoint only: the WAL is below the threshold.
    Passive,
    /// The WAL is copied back and no reader uses it: the next write starts it over.
    Restarted,
    /// A reader of an older snapshot (a long report, say) still uses the WAL.
    Postponed,
}

/// How long a RESTART waits for the readers of older snapshots (it holds the write turn
/// meanwhile). Reads of the API take well under this; a report may not, and is not waited for.
const RESTART_WAIT_MS: u32 = 20;

/// One round of the checkpointer: PASSIVE, then RESTART under the write turn when the WAL holds
/// `restart_at` frames or more.
fn checkpoint(
    conn: &mut SqliteConnection,
    gate: Option<&Writer>,
    restart_at: i64,
) -> diesel::QueryResult<Round> {
    use diesel::RunQueryDsl;
    let passive = |conn: &mut SqliteConnection| -> diesel::QueryResult<Checkpoint> {
        diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(conn)
    };
    let mut round = passive(conn)?;
    if i64::from(round.log) < restart_at {
        return Ok(Round::Passive);
    }
    // Writers went on while that round copied the WAL; the RESTART would copy what they wrote,
    // and flush it, holding the write turn: 40 to 210 ms a time during an import at 400k
    // patients, a fifth of the writer's time. Catch up without the turn first; what is left
    // under it is about the batch that committed while the checkpointer waited for its turn
    // (20 to 60 ms; bench/README.md, thirteenth session).
    for _ in 0..CATCH_UP_ROUNDS {
        let next = passive(conn)?;
        let grown = i64::from(next.log) - i64::from(round.log);
        round = next;
        if grown <= RESTART_LEFT_FRAMES {
            break;
        }
    }
    // The turn only, not the writer's connection: the checkpoint runs on this one.
    let _turn = gate.map(Writer::hold);
    let restart: Checkpoint =
        diesel::sql_query("PRAGMA wal_checkpoint(RESTART)").get_result(conn)?;
    Ok(if restart.busy == 0 {
        Round::Restarted
    } else {
        Round::Postponed
    })
}

/// The PostgreSQL advisory lock taken while the schema changes (see [`run_migrations`]).
const MIGRATION_LOCK: i64 = 0x7061_6c72_6567; // "palreg"

/// Runs the embedded migrations of the connection's dialect. On PostgreSQL an advisory lock
/// keeps replicas that start together from migrating at once.
pub fn run_migrations(conn: &mut DbConn) -> anyhow::Result<usize> {
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

/// Whether the database behind `url` lacks some of this binary's migrations (an empty or new
/// database lacks them all).
pub fn has_pending_migrations(url: &DatabaseUrl) -> anyhow::Result<bool> {
    let mut conn = url
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", url.redacted()))?;
    let pending = match &mut conn {
        DbConn::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        DbConn::Pg(c) => c.has_pending_migration(PG_MIGRATIONS),
    };
    pending.map_err(|e| anyhow::anyhow!("cannot read the applied migrations: {e}"))
}

/// Runs `f` holding the migration lock of a PostgreSQL database: a server that starts meanwhile
/// waits in [`run_migrations`] until `f` is done. (On SQLite, `f` just runs.)
pub fn with_migration_lock<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    if matches!(conn, DbConn::Sqlite(_)) {
        return f(conn);
    }
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    let result = f(conn);
    conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
    result
}

diesel::table! {
    /// diesel's record of the migrations applied to a database.
    __diesel_schema_migrations (version) {
        version -> Text,
    }
}

/// The migrations applied to the database that this binary does not have: it was written by
/// a newer palreg. Fails when the database has no record of migrations (not a palreg database).
pub fn unknown_migrations(conn: &mut DbConn) -> anyhow::Result<Vec<String>> {
    use diesel::{QueryDsl, RunQueryDsl};
    let applied: Vec<String> = __diesel_schema_migrations::table
        .select(__diesel_schema_migrations::version)
        .order(__diesel_schema_migrations::version)
        .load(conn)
        .map_err(|e| anyhow::anyhow!("it has no record of palreg's migrations ({e})"))?;
    let known = match conn {
        DbConn::Sqlite(_) => versions::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS)?,
        DbConn::Pg(_) => versions::<diesel::pg::Pg>(&PG_MIGRATIONS)?,
    };
    Ok(applied.into_iter().filter(|v| !known.contains(v)).collect())
}

/// The versions of the migrations this binary embeds for a backend.
fn versions<DB: diesel::backend::Backend>(
    migrations: &impl diesel::migration::MigrationSource<DB>,
) -> anyhow::Result<Vec<String>> {
    let all = migrations
        .migrations()
        .map_err(|e| anyhow::anyhow!("this binary's migrations: {e}"))?;
    Ok(all.iter().map(|m| m.name().version().to_string()).collect())
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

    /// The row count the planner knows for `index`, from `sqlite_stat1`.
    fn known_rows(conn: &mut DbConn, index: &str) -> Option<i64> {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Stat {
            #[diesel(sql_type = diesel::sql_types::Text)]
            stat: String,
        }
        let DbConn::Sqlite(conn) = conn else {
            unreachable!("a SQLite URL")
        };
        let rows: Vec<Stat> = diesel::sql_query(format!(
            "SELECT stat FROM sqlite_stat1 WHERE idx = '{index}'"
        ))
        .load(conn)
        .unwrap();
        rows.first()
            .and_then(|r| r.stat.split(' ').next()?.parse().ok())
    }

    /// Appends `n` rows to the table `t` of the statistics tests.
    fn insert_rows(conn: &mut DbConn, n: usize) {
        conn.batch_execute(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
             INSERT INTO t (k) SELECT i % 7 FROM n"
        ))
        .unwrap();
    }

    /// A table that was never analyzed gets statistics once it has rows, also on a connection
    /// that never queried it (the checkpointer's); an empty table is left for a later round.
    #[test]
    fn statistics_are_gathered_for_a_register_that_started_empty() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("empty.db"));
        let mut conn = url.connect().unwrap();
        conn.batch_execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER NOT NULL);
             CREATE INDEX t_k ON t(k);
             CREATE TABLE u (id INTEGER PRIMARY KEY, k INTEGER NOT NULL);
             CREATE INDEX u_k ON u(k);",
        )
        .unwrap();
        refresh_statistics(&mut conn).unwrap();
        insert_rows(&mut conn, 5000);
        drop(conn);
        let mut fresh = url.connect().unwrap();
        refresh_statistics(&mut fresh).unwrap();
        assert_eq!(known_rows(&mut fresh, "t_k"), Some(5000));
        assert_eq!(known_rows(&mut fresh, "u_k"), None, "u has no rows yet");
    }

    /// A table that grew tenfold since it was analyzed gets fresh statistics, also on a new
    /// connection that has not queried it (plain `PRAGMA optimize` would skip it there).
    #[test]
    fn statistics_are_refreshed_after_a_big_import() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("stats.db"));
        let mut conn = url.connect().unwrap();
        conn.batch_execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER NOT NULL);
             CREATE INDEX t_k ON t(k);",
        )
        .unwrap();
        insert_rows(&mut conn, 20);
        conn.batch_execute("ANALYZE").unwrap();
        assert_eq!(known_rows(&mut conn, "t_k"), Some(20));
        insert_rows(&mut conn, 50_000);
        drop(conn);
        let mut fresh = url.connect().unwrap();
        fresh.batch_execute("PRAGMA optimize").unwrap();
        assert_eq!(
            known_rows(&mut fresh, "t_k"),
            Some(20),
            "plain optimize skips it"
        );
        refresh_statistics(&mut fresh).unwrap();
        let rows = known_rows(&mut fresh, "t_k").unwrap();
        assert!(rows > 10_000, "{rows}");
    }

    fn wal_frames(conn: &mut SqliteConnection) -> i32 {
        use diesel::RunQueryDsl;
        diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .get_result::<Checkpoint>(conn)
            .unwrap()
            .log
    }

    /// A writer that never pauses still lets the checkpointer start the WAL over: the catch-up
    /// rounds end, and the RESTART in the write turn finds little left to copy.
    #[test]
    fn the_wal_is_started_over_while_a_writer_keeps_committing() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("busy.db"));
        let gate = Arc::new(Writer::open(&url, 2048).unwrap());
        gate.turn()
            .unwrap()
            .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
            .unwrap();
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let writer = {
            let (gate, stop, commits) = (gate.clone(), stop.clone(), commits.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    gate.turn()
                        .unwrap()
                        .batch_execute(
                            "BEGIN; INSERT INTO t (v) VALUES (randomblob(20000)); COMMIT;",
                        )
                        .unwrap();
                    commits.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let DbConn::Sqlite(mut checkpointer) = url.connect().unwrap() else {
            unreachable!()
        };
        // A restart counts when the writer committed since the last one that counted (until
        // it writes again, the WAL keeps its frames and a next round "restarts" it again).
        let (mut restarts, mut seen) = (0, 0);
        let started = std::time::Instant::now();
        while (restarts < 5 || commits.load(Ordering::Relaxed) <= 50)
            && started.elapsed() < Duration::from_secs(20)
        {
            if checkpoint(&mut checkpointer, Some(&gate), 200).unwrap() == Round::Restarted {
                let now = commits.load(Ordering::Relaxed);
                if now > seen {
                    (restarts, seen) = (restarts + 1, now);
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        let commits = commits.load(Ordering::Relaxed);
        assert!(
            restarts >= 5,
            "{restarts} restarts while {commits} commits went on"
        );
        assert!(commits > 50, "the writer kept writing: {commits}");
    }

    /// Readers that keep coming hold the WAL open, so SQLite never starts it over on its own;
    /// with the checkpointer's RESTART past the threshold the WAL stays bounded.
    #[test]
    fn the_wal_stays_bounded_while_readers_keep_coming() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("wal.db"));
        let connect = || match url.connect().unwrap() {
            DbConn::Sqlite(c) => c,
            DbConn::Pg(_) => unreachable!(),
        };
        let mut writer = connect();
        #[derive(diesel::QueryableByName)]
        struct Limit {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            journal_size_limit: i64,
        }
        let kept: Limit = diesel::RunQueryDsl::get_result(
            diesel::sql_query("PRAGMA journal_size_limit"),
            &mut writer,
        )
        .unwrap();
        assert_eq!(
            kept.journal_size_limit, WAL_KEEP_BYTES,
            "a WAL started over keeps its blocks"
        );
        writer
            .batch_execute(
                "PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)",
            )
            .unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            let mut conn = connect();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    conn.batch_execute("BEGIN; SELECT count(*) FROM t; COMMIT;")
                        .unwrap();
                    reads += 1;
                }
                reads
            })
        };
        let mut checkpointer = connect();
        checkpointer
            .batch_execute(&format!("PRAGMA busy_timeout = {RESTART_WAIT_MS}"))
            .unwrap();
        let (mut largest, mut restarts) = (0, 0);
        for i in 0..1500 {
            writer
                .batch_execute(&format!(
                    "INSERT INTO t (v) VALUES (randomblob(3000 + {i}))"
                ))
                .unwrap();
            if i % 50 == 49 {
                largest = largest.max(wal_frames(&mut checkpointer));
                restarts += usize::from(
                    checkpoint(&mut checkpointer, None, 100).unwrap() == Round::Restarted,
                );
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads = reader.join().unwrap();
        assert!(reads > 100, "the reader kept reading: {reads}");
        assert!(restarts >= 5, "{restarts} restarts");
        // 1500 writes of a page or two each (a row of 3 000 to 4 500 bytes, and its blob's
        // overflow page past 4 KB): without the restarts the WAL holds them all, 1 500 frames
        // or more. The bound leaves room for restarts in a row postponed by a reader that the
        // scheduler held up past the 20 ms wait: on a machine loaded by two builds it failed
        // at 400, then at 1 052 frames; `restarts` above says they happened.
        assert!(
            largest < 1500,
            "the WAL stayed bounded: at most {largest} frames"
        );
    }

    /// Every writer of a file in this process shares one gate and its connection; a turn that
    /// left its transaction open (a panic, say) does not leave the next writer inside it.
    #[test]
    fn the_writer_connection_is_shared_and_opened_again_when_broken() {
        use diesel::RunQueryDsl;
        use diesel::connection::TransactionManager;
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("writer.db"));
        let gate = write_gate(&url, 2).unwrap().unwrap();
        assert!(Arc::ptr_eq(&gate, &write_gate(&url, 2).unwrap().unwrap()));
        gate.turn()
            .unwrap()
            .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap();
        {
            let mut turn = gate.turn().unwrap();
            <DbConn as Connection>::TransactionManager::begin_transaction(&mut turn).unwrap();
            turn.batch_execute("INSERT INTO t (id) VALUES (1)").unwrap();
            // Dropped without a commit or a rollback.
        }
        gate.turn()
            .unwrap()
            .transaction::<_, diesel::result::Error, _>(|c| {
                c.batch_execute("INSERT INTO t (id) VALUES (2)")
            })
            .unwrap();
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        let mut reader = url.connect().unwrap();
        let ids: Vec<i64> = diesel::sql_query("SELECT id FROM t ORDER BY id")
            .load::<Id>(&mut reader)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            ids,
            [2],
            "the open transaction was rolled back, the next one committed"
        );
    }

    /// A bulk write waiting for the turn lets a writer that came after it go first: an import
    /// batch does not make a clinician's write wait for the batches queued behind the one
    /// being written.
    #[test]
    fn a_bulk_write_lets_the_first_lane_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("lanes.db"));
        let gate = write_gate(&url, 2).unwrap().unwrap();
        let order = Mutex::new(Vec::new());
        let batch_written = gate.turn().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _turn = gate.turn_in(Lane::Bulk).unwrap();
                order.lock().unwrap().push("queued batch");
            });
            // The queued batch waits for the turn first (or will, and sees the edit waiting).
            std::thread::sleep(Duration::from_millis(50));
            s.spawn(|| {
                let _turn = gate.turn().unwrap();
                order.lock().unwrap().push("edit");
            });
            // The edit is counted in the first lane before the batch being written ends.
            while *gate.waiting() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(batch_written);
        });
        assert_eq!(*order.lock().unwrap(), ["edit", "queued batch"]);
    }

    /// A bulk write is not held back for ever by writers that keep coming.
    #[test]
    fn a_bulk_write_gets_its_turn_under_writes_that_never_stop() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("busy.db"));
        let gate = write_gate(&url, 2).unwrap().unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            // Two writers, each back in the first lane before the other has left it.
            for _ in 0..2 {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _turn = gate.turn().unwrap();
                        std::thread::sleep(Duration::from_millis(1));
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(20));
            let start = Instant::now();
            drop(gate.turn_in(Lane::Bulk).unwrap());
            let waited = start.elapsed();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(
                waited < BULK_WAITS_AT_MOST + Duration::from_secs(3),
                "waited {waited:?}"
            );
        });
    }

    /// A request that finds every connection busy is told to come back (503 with Retry-After),
    /// not that the server failed.
    #[test]
    fn a_request_that_gets_no_connection_in_time_is_told_to_come_back() {
        use actix_web::ResponseError;
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("busy.db"));
        let pool = open(&url, 1, SqliteCaches::default()).unwrap();
        let _held = pool.get().unwrap();
        let timed_out = pool
            .get_timeout(Duration::from_millis(50))
            .err()
            .expect("the only connection is held");
        let err = crate::error::ApiError::from(timed_out);
        assert_eq!(
            err.status_code(),
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(err.code(), "database_unavailable");
        let response = err.error_response();
        assert_eq!(
            response
                .headers()
                .get(actix_web::http::header::RETRY_AFTER)
                .unwrap(),
            "5"
        );
    }

    /// `.cargo/config.toml` builds the bundled SQLite with the query planner stability
    /// guarantee, so that statements with a bound `LIMIT` stay prepared, with a page cache of
    /// its own for each connection, and without memory statistics (see there).
    #[test]
    fn sqlite_is_built_with_a_stable_query_planner_separate_page_caches_and_no_memory_statistics() {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct CompileOption {
            #[diesel(sql_type = diesel::sql_types::Text)]
            compile_options: String,
        }
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let options: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<CompileOption>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        assert!(options.iter().any(|o| o == "ENABLE_QPSG"), "{options:?}");
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

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
