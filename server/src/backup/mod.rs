//! `palreg backup` and `palreg restore`.
//!
//! A backup is one file: on SQLite a consistent copy of the database (`VACUUM INTO`, safe while
//! the server runs), on PostgreSQL a `pg_dump` archive; beside it `FILE.sha256` holds its
//! checksum in `sha256sum` format. Either is checked before it counts: its audit chain must
//! verify. A restore checks the backup before it touches anything, keeps whatever it replaces,
//! and records itself in the restored audit chain.

mod postgres;
mod sqlite;

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use diesel::Connection;
use sha2::{Digest, Sha256};

use crate::db::models::{self, audit, patients, sessions};
use crate::db::{self, DatabaseUrl, DbConn};

/// Writes a backup of the database to `file`, which must not exist yet, and prints what an
/// operator records of it.
pub fn backup(url: &DatabaseUrl, file: &Path) -> anyhow::Result<()> {
    let checksum = checksum_path(file);
    for path in [file, checksum.as_path()] {
        if path.exists() {
            anyhow::bail!(
                "{} already exists: choose another name (a backup never overwrites a file)",
                path.display()
            );
        }
    }
    let tmp = TempFile::create_beside(file)?;
    let contents = match url {
        DatabaseUrl::Sqlite(db) => sqlite::snapshot(db, tmp.path()),
        DatabaseUrl::Postgres(url) => postgres::dump(url, tmp.path()),
    }
    .with_context(|| format!("cannot back up {}", url.redacted()))?;
    let sha256 = sha256_file(tmp.path())?;
    let bytes = tmp.sync()?;
    tmp.persist(file)?;
    std::fs::write(&checksum, format!("{sha256}  {}\n", file_name(file)))
        .with_context(|| format!("cannot write {}", checksum.display()))?;
    record_backup(url, file, &sha256, bytes).with_context(|| {
        format!(
            "the backup is written to {}, but it could not be recorded in the audit log",
            file.display()
        )
    })?;
    println!("backup of {} written to {}", url.redacted(), file.display());
    println!("  size    {}", size(bytes));
    println!("  sha256  {sha256} (also in {})", checksum.display());
    println!("  {contents}");
    Ok(())
}

/// Records a backup in the audit log of the database it copied: a whole copy of the register
/// has left the server, and an auditor asks who took it, when, and which file it was.
fn record_backup(url: &DatabaseUrl, file: &Path, sha256: &str, bytes: u64) -> anyhow::Result<()> {
    let details = serde_json::to_string(&BackupDetails {
        backup: file_name(file),
        backup_sha256: sha256,
        bytes,
    })?;
    let mut conn = url.connect()?;
    conn.transaction::<_, anyhow::Error, _>(|conn| {
        let place = audit::reserve(conn)?;
        audit::complete(conn, place, database_entry("system.backup", details))?;
        Ok(())
    })
}

/// An audit entry of the command line about the whole database.
fn database_entry(action: &str, details: String) -> audit::NewEntry {
    audit::NewEntry {
        actor_login: Some("cli".into()),
        action: action.into(),
        object_type: "database".into(),
        outcome: "ok".into(),
        details: Some(details),
        ..Default::default()
    }
}

/// The `details` of a `system.backup` audit entry.
#[derive(serde::Serialize)]
struct BackupDetails<'a> {
    backup: &'a str,
    backup_sha256: &'a str,
    bytes: u64,
}

/// Replaces the database with the backup in `file`, after checking it, and prints the result.
pub fn restore(url: &DatabaseUrl, file: &Path) -> anyhow::Result<()> {
    let restored = (|| {
        if !file.is_file() {
            anyhow::bail!("there is no file {}", file.display());
        }
        match url {
            DatabaseUrl::Sqlite(db) => sqlite::restore(db, file),
            DatabaseUrl::Postgres(url) => postgres::restore(url, file),
        }
    })()
    .with_context(|| format!("cannot restore {} into {}", file.display(), url.redacted()))?;
    println!("restored {} into {}", file.display(), url.redacted());
    println!("  sha256  {}", restored.sha256);
    if let Some(kept) = &restored.kept_as {
        println!("  the database it replaced is kept as {}", kept.display());
    }
    println!("  {}", restored.contents);
    println!(
        "  every session was ended: users sign in again; changes made after the backup are not in it"
    );
    Ok(())
}

/// What a restore did.
struct Restored {
    sha256: String,
    /// Where the database it replaced went (SQLite).
    kept_as: Option<PathBuf>,
    contents: Contents,
}

/// What a database holds, for the operator's record.
#[derive(Debug)]
struct Contents {
    patients: i64,
    audit_entries: i64,
    last_seq: i64,
    last_hash: String,
}

impl std::fmt::Display for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "patients {}, audit entries {} (chain intact), last entry #{} {}",
            self.patients, self.audit_entries, self.last_seq, self.last_hash
        )
    }
}

/// Verifies the audit chain of a copy of the database and counts what it holds.
fn inspect(conn: &mut DbConn) -> anyhow::Result<Contents> {
    let audit_entries = match audit::verify(conn).context("cannot read its audit log")? {
        Ok(count) => count,
        Err(broken) => anyhow::bail!("its audit chain is broken: {broken}"),
    };
    let (last_seq, last_hash) = audit::head(conn)?;
    Ok(Contents {
        patients: patients::count_all(conn)?,
        audit_entries,
        last_seq,
        last_hash,
    })
}

/// Checks a restored copy and makes it current: written by this binary's migrations or older
/// ones, with an intact audit chain. Then brings its schema up to date, ends every session (a
/// session ended since the backup would live again) and records the restore in the chain.
fn check_and_record(
    conn: &mut DbConn,
    backup: &Path,
    sha256: &str,
    kept_as: Option<&Path>,
) -> anyhow::Result<Contents> {
    let unknown = db::unknown_migrations(conn)?;
    if let Some(newest) = unknown.last() {
        anyhow::bail!(
            "it was written by a newer palreg (its migration {newest} is unknown to this one): \
             restore it with that version"
        );
    }
    let contents = inspect(conn)?;
    db::run_migrations(conn)?;
    let details = serde_json::to_string(&RestoreDetails {
        backup: file_name(backup),
        backup_sha256: sha256,
        replaced_database_kept_as: kept_as.map(file_name),
    })?;
    let entry = conn.transaction::<_, anyhow::Error, _>(|conn| {
        let now = models::now();
        let place = audit::reserve(conn)?;
        sessions::revoke_all(conn, now)?;
        let entry = audit::NewEntry {
            at: Some(now),
            ..database_entry("system.restore", details)
        };
        Ok(audit::complete(conn, place, entry)?)
    })?;
    Ok(Contents {
        audit_entries: contents.audit_entries + 1,
        last_seq: entry.seq,
        last_hash: entry.hash,
        ..contents
    })
}

/// The `details` of a `system.restore` audit entry.
#[derive(serde::Serialize)]
struct RestoreDetails<'a> {
    backup: &'a str,
    backup_sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaced_database_kept_as: Option<&'a str>,
}

/// `FILE.sha256`, the checksum written beside a backup.
fn checksum_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// The SHA-256 of `bytes_of` (a backup, or the copy of it about to be restored), checked against
/// the checksum beside `backup` when there is one: SQLite's and pg_restore's checks miss a
/// flipped byte inside a value, the checksum does not.
fn checked_sha256(bytes_of: &Path, backup: &Path) -> anyhow::Result<String> {
    let sha256 = sha256_file(bytes_of)?;
    let checksum = checksum_path(backup);
    match std::fs::read_to_string(&checksum) {
        Ok(text) => {
            let expected = text.split_whitespace().next().unwrap_or_default();
            if !expected.eq_ignore_ascii_case(&sha256) {
                anyhow::bail!(
                    "its SHA-256 is {sha256}, not the {expected} of {}: the file is damaged or \
                     was changed",
                    checksum.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "note: no {} beside the backup: its checksum cannot be checked",
                checksum.display()
            );
        }
        Err(e) => anyhow::bail!("cannot read {}: {e}", checksum.display()),
    }
    Ok(sha256)
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("(not UTF-8)")
}

fn size(bytes: u64) -> String {
    format!(
        "{bytes} bytes ({:.1} MiB)",
        bytes as f64 / (1024.0 * 1024.0)
    )
}

/// The folder a path is in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes a rename or a new file in `dir` durable.
fn sync_folder(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot flush the folder {}", dir.display()))
}

/// A new file beside the one it will become, readable by its owner only, removed (with any
/// SQLite journal of it) unless it is persisted.
struct TempFile {
    path: PathBuf,
    persisted: bool,
}

impl TempFile {
    fn create_beside(target: &Path) -> anyhow::Result<Self> {
        let dir = folder_of(target);
        let mut name = target
            .file_name()
            .with_context(|| format!("{} is not a file name", target.display()))?
            .to_owned();
        name.push(format!(".partial-{}", crate::secrets::random_hex::<4>()?));
        let path = dir.join(name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(&path)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        Ok(Self {
            path,
            persisted: false,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the file to disk; returns its size.
    fn sync(&self) -> anyhow::Result<u64> {
        let file = File::open(&self.path)?;
        file.sync_all()
            .with_context(|| format!("cannot flush {}", self.path.display()))?;
        Ok(file.metadata()?.len())
    }

    /// Renames the file to `to` (in the same folder) and makes that durable.
    fn persist(mut self, to: &Path) -> anyhow::Result<()> {
        std::fs::rename(&self.path, to).with_context(|| {
            format!("cannot rename {} to {}", self.path.display(), to.display())
        })?;
        self.persisted = true;
        sync_folder(folder_of(to))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.persisted {
            return;
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.path.as_os_str().to_owned();
            path.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(path));
        }
    }
}
