//! Backup and restore of the embedded SQLite database.

use std::path::{Path, PathBuf};

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl, SqliteConnection};

use super::{Contents, Restored, TempFile};
use crate::audit_spool;
use crate::db::lock::{DatabaseLock, LockError};
use crate::db::{DatabaseUrl, DbConn};

/// Copies the database at `db` into the empty file `into` as one consistent snapshot (readers
/// and writers go on meanwhile), then checks the copy.
pub(super) fn snapshot(db: &Path, into: &Path) -> anyhow::Result<Contents> {
    if !db.is_file() {
        anyhow::bail!("there is no database at {}", db.display());
    }
    let mut source = open(db)?;
    // The audit entries of the last reads, not yet folded into the log by the server: read
    // before the copy is made (see `fold_into_copy`).
    let spooled = audit_spool::read_spool(db)?;
    // `VACUUM INTO` writes a compact copy as of one read transaction, in rollback-journal mode:
    // a single self-contained file.
    diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(utf8(into)?)
        .execute(&mut source)
        .context("VACUUM INTO failed")?;
    drop(source);
    let mut copy = DbConn::Sqlite(open(into)?);
    audit_spool::fold_into_copy(&mut copy, spooled)
        .context("cannot fold the audit spool into the copy")?;
    check_integrity(&mut copy)?;
    super::inspect(&mut copy).context("the copy would not restore")
}

/// Replaces the database at `db` with the backup `file`: refuses while a server uses it, checks a
/// copy of the backup beside the database, records the restore in that copy, keeps the current
/// database (with its WAL) as `<db>.before-restore-<UTC time>`, and renames the copy into place.
pub(super) fn restore(
    db: &Path,
    file: &Path,
    verifier: &super::Verifier,
) -> anyhow::Result<Restored> {
    let _lock = DatabaseLock::try_acquire(db).map_err(|e| match e {
        LockError::Held { lock, .. } => anyhow::anyhow!(
            "a palreg server is using the database ({} is locked): stop it first",
            lock.display()
        ),
        other => other.into(),
    })?;
    let [_, wal, _] = journal_files(file);
    if wal.metadata().is_ok_and(|m| m.len() > 0) {
        anyhow::bail!(
            "it is a database in use, not a backup: part of it is still in {}; back it up \
             first (PALREG_DATABASE_URL=sqlite://{} palreg backup NEW_FILE)",
            wal.display(),
            file.display()
        );
    }
    let kept_as = db.exists().then(|| kept_name(db)).transpose()?;
    let spool = audit_spool::dir_of(db);
    let spool_left = spool.is_dir()
        && std::fs::read_dir(&spool)
            .with_context(|| format!("cannot read {}", spool.display()))?
            .next()
            .is_some();
    if spool_left && kept_as.is_none() {
        anyhow::bail!(
            "{} holds audit entries of a database that is no longer at {}: move the folder \
             away (or put the database back) first",
            spool.display(),
            db.display()
        );
    }
    let tmp = TempFile::create_beside(db)?;
    super::copy_into(file, tmp.path())?;
    let checked = super::checked(tmp.path(), file, verifier)?;
    // Before the server's PRAGMAs, which would fail on a damaged file with a vaguer message.
    check_integrity(&mut DbConn::Sqlite(open(tmp.path())?))?;
    let contents = {
        let mut conn = DatabaseUrl::Sqlite(tmp.path().to_path_buf()).connect()?;
        let contents = super::check_and_record(&mut conn, file, &checked, kept_as.as_deref())?;
        // Everything back into the one file, so that the rename moves all of it.
        conn.batch_execute("PRAGMA journal_mode = DELETE")?;
        contents
    };
    tmp.sync()?;
    if let Some(kept) = &kept_as {
        if spool_left {
            fold_left_spool(db, &spool);
        }
        // Empty (the server's own, or emptied above): nothing to keep.
        let _ = std::fs::remove_dir(&spool);
        keep(db, kept)?;
    }
    tmp.persist(db)?;
    Ok(Restored {
        checked,
        kept_as,
        contents,
    })
}

/// Folds into the database being replaced the audit entries a crashed server left in its spool
/// (what the server would have done at its next start), so that the database set aside holds
/// every entry. When they cannot be folded (the database may be damaged: the reason for the
/// restore), the folder goes with the database set aside (see [`keep`]), where a server started
/// on that database folds it.
fn fold_left_spool(db: &Path, spool: &Path) {
    let folded = DatabaseUrl::Sqlite(db.to_path_buf())
        .connect()
        .map_err(anyhow::Error::from)
        .and_then(|mut conn| audit_spool::recover_into(&mut conn, spool));
    if let Err(err) = folded {
        println!(
            "note: the audit entries left in {} could not be folded into the database being \
             replaced ({err:#}); they are kept beside it",
            spool.display()
        );
    }
}

/// A connection to an existing file, without the server's PRAGMAs (it changes nothing).
fn open(path: &Path) -> anyhow::Result<SqliteConnection> {
    let mut conn = SqliteConnection::establish(utf8(path)?)
        .with_context(|| format!("cannot open {}", path.display()))?;
    conn.batch_execute("PRAGMA busy_timeout = 10000")?;
    Ok(conn)
}

fn utf8(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not a UTF-8 path", path.display()))
}

#[derive(diesel::QueryableByName)]
struct IntegrityCheck {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

/// SQLite's own check of every page, index and constraint.
fn check_integrity(conn: &mut DbConn) -> anyhow::Result<()> {
    let DbConn::Sqlite(conn) = conn else {
        anyhow::bail!("the integrity check is SQLite's");
    };
    let found: Vec<String> = diesel::sql_query("PRAGMA integrity_check(5)")
        .load::<IntegrityCheck>(conn)
        .map_err(|e| anyhow::anyhow!("it fails SQLite's integrity check ({e})"))?
        .into_iter()
        .map(|row| row.integrity_check)
        .collect();
    if found != ["ok"] {
        anyhow::bail!("it fails SQLite's integrity check: {}", found.join("; "));
    }
    Ok(())
}

/// `<db>.before-restore-<UTC time>`, free (with its `-wal` and `-shm`).
fn kept_name(db: &Path) -> anyhow::Result<PathBuf> {
    let mut name = db.as_os_str().to_owned();
    name.push(format!(
        ".before-restore-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    let kept = PathBuf::from(name);
    if journal_files(&kept).iter().any(|p| p.exists()) || audit_spool::dir_of(&kept).exists() {
        anyhow::bail!("{} already exists: try again in a second", kept.display());
    }
    Ok(kept)
}

/// A database file and its WAL and shared-memory index, in that order.
fn journal_files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [db.to_path_buf(), with("-wal"), with("-shm")]
}

/// Moves the database and its WAL (which may hold commits not yet in the file) to `kept`, where
/// SQLite opens them together. The WAL goes first: a database found without its WAL is only
/// older, a WAL found without its database would be replayed into a new one. An audit spool
/// still there goes first of all, to `kept`'s spool folder: left behind, it would be folded
/// into the restored database.
fn keep(db: &Path, kept: &Path) -> anyhow::Result<()> {
    let spool = audit_spool::dir_of(db);
    if spool.exists() {
        let to = audit_spool::dir_of(kept);
        std::fs::rename(&spool, &to)
            .with_context(|| format!("cannot move {} to {}", spool.display(), to.display()))?;
    }
    for (from, to) in journal_files(db).iter().zip(journal_files(kept)).rev() {
        if from.exists() {
            std::fs::rename(from, &to)
                .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(())
}
