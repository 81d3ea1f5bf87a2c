//! `palreg backup` and `palreg restore`.
//!
//! A backup is one file: on SQLite a consistent copy of the database (`VACUUM INTO`, safe while
//! the server runs), on PostgreSQL a `pg_dump` archive; beside it `FILE.sha256` holds its
//! checksum in `sha256sum` format, and `FILE.sig` an Ed25519 signature of that checksum by the
//! backup key of the data directory (`backup-signing.key`, a key of its own: the report key
//! signs nothing but reports). Either is checked before it counts: its audit chain must
//! verify. A restore checks the backup before it touches anything (its checksum, and its
//! signature with the data directory's backup key or the public key given), keeps whatever it
//! replaces, and records itself in the restored audit chain.
//!
//! The checksum catches damage; the signature catches a change made on purpose by whoever can
//! write where backups are kept, who could recompute a checksum but cannot sign without the
//! key, which stays with the server.

mod postgres;
mod sqlite;

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use diesel::Connection;
use sha2::{Digest, Sha256};

use palreg_reports::{
    ReportPublicKey as PublicKey, ReportSignature as Signature, ReportSigningKey as SigningKey,
};

use crate::db::models::{self, audit, patients, sessions};
use crate::db::{self, DatabaseUrl, DbConn};

/// The backup key's file in the data directory.
pub const BACKUP_KEY_FILE: &str = "backup-signing.key";

/// The first line of `FILE.sig`.
const SIG_HEADER: &str = "palreg-backup-signature v1";

/// The backup key of `data_dir`, made there the first time.
pub fn backup_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    crate::secrets::create_private_dir(data_dir)?;
    let path = data_dir.join(BACKUP_KEY_FILE);
    SigningKey::load_or_generate(&path)
        .map_err(|e| anyhow::anyhow!("backup signing key {}: {e}", path.display()))
}

/// What the signature covers: the backup's SHA-256, under a label of its own so that the
/// signature means nothing anywhere else.
fn signed_message(sha256: &str) -> Vec<u8> {
    format!("palreg backup v1\nsha256 {}\n", sha256.to_ascii_lowercase()).into_bytes()
}

/// Writes a backup of the database to `file`, which must not exist yet, and prints what an
/// operator records of it.
pub fn backup(url: &DatabaseUrl, file: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let checksum = checksum_path(file);
    let signature = signature_path(file);
    let key = backup_key(data_dir)?;
    for path in [file, checksum.as_path(), signature.as_path()] {
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
    let signed = key.sign(&signed_message(&sha256));
    std::fs::write(&signature, signed.to_sig_file_under(SIG_HEADER))
        .with_context(|| format!("cannot write {}", signature.display()))?;
    let public_key = key.public_key().to_base64();
    record_backup(url, file, &sha256, &public_key, bytes).with_context(|| {
        format!(
            "the backup is written to {}, but it could not be recorded in the audit log",
            file.display()
        )
    })?;
    println!("backup of {} written to {}", url.redacted(), file.display());
    println!("  size    {}", size(bytes));
    println!("  sha256  {sha256} (also in {})", checksum.display());
    println!(
        "  signed  in {} by the backup key {public_key} (keep this public key apart: a \
         restore elsewhere checks the signature with `palreg restore --public-key KEY`)",
        signature.display()
    );
    println!("  {contents}");
    Ok(())
}

/// Records a backup in the audit log of the database it copied: a whole copy of the register
/// has left the server, and an auditor asks who took it, when, and which file it was.
fn record_backup(
    url: &DatabaseUrl,
    file: &Path,
    sha256: &str,
    signed_by: &str,
    bytes: u64,
) -> anyhow::Result<()> {
    let details = serde_json::to_string(&BackupDetails {
        backup: file_name(file),
        backup_sha256: sha256,
        signed_by,
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
    /// The backup key's public half.
    signed_by: &'a str,
    bytes: u64,
}

/// How a restore checks who made a backup.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The backup key's public half (base64 or PEM) given by the operator; without it, the
    /// backup key of the data directory, when there is one.
    pub public_key: Option<String>,
    /// Restores a backup whose signature cannot be checked (made before backups were signed,
    /// or on a machine whose key is lost). A signature that does not match is refused anyway.
    pub unsigned: bool,
}

/// `FILE.sig`, the signature written beside a backup.
fn signature_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// How a restore checks who made a backup: with the key it trusts (the one given, else the data
/// directory's, if any), or not at all (`--unsigned`). Made before anything is copied or read.
pub(super) struct Verifier {
    key: Option<PublicKey>,
    unsigned: bool,
}

impl Verifier {
    fn new(trust: &Trust, data_dir: &Path) -> anyhow::Result<Self> {
        let key = match &trust.public_key {
            Some(text) => {
                Some(PublicKey::parse(text).map_err(|e| anyhow::anyhow!("--public-key: {e}"))?)
            }
            None => {
                let path = data_dir.join(BACKUP_KEY_FILE);
                if path.exists() {
                    let key = SigningKey::load(&path).map_err(|e| {
                        anyhow::anyhow!("backup signing key {}: {e}", path.display())
                    })?;
                    Some(key.public_key())
                } else {
                    None
                }
            }
        };
        Ok(Self {
            key,
            unsigned: trust.unsigned,
        })
    }

    /// Checks the signature beside `backup` over `sha256`: the public key that made it, or
    /// `None` for a backup restored unchecked with [`Trust::unsigned`].
    fn check(&self, backup: &Path, sha256: &str) -> anyhow::Result<Option<String>> {
        let path = signature_path(backup);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        let (text, key) = match (text, &self.key) {
            (Some(text), Some(key)) => (text, key),
            (text, _) => {
                if self.unsigned {
                    println!(
                        "note: the backup's signature is not checked (--unsigned): nothing shows \
                         that this server's backup key made it"
                    );
                    return Ok(None);
                }
                if text.is_none() {
                    anyhow::bail!(
                        "there is no {} beside it: without its signature nothing shows that it \
                         was not changed. A backup made before backups were signed restores with \
                         --unsigned",
                        path.display()
                    );
                }
                anyhow::bail!(
                    "its signature cannot be checked: there is no {} in the data directory. Give \
                     the backup key's public half, printed when the backup was made, with \
                     --public-key (or restore with --unsigned)",
                    BACKUP_KEY_FILE
                );
            }
        };
        let signature = Signature::parse_sig_file(&text, SIG_HEADER)
            .map_err(|_| anyhow::anyhow!("{} is not a palreg backup signature", path.display()))?;
        if key.verify(&signed_message(sha256), &signature).is_err() {
            anyhow::bail!(
                "its signature does not match: the file or its checksum was changed, or another \
                 key signed it (the key checked: {})",
                key.to_base64()
            );
        }
        Ok(Some(key.to_base64()))
    }
}

/// Replaces the database with the backup in `file`, after checking it, and prints the result.
pub fn restore(
    url: &DatabaseUrl,
    file: &Path,
    data_dir: &Path,
    trust: &Trust,
) -> anyhow::Result<()> {
    let restored = (|| {
        if !file.is_file() {
            anyhow::bail!("there is no file {}", file.display());
        }
        let verifier = Verifier::new(trust, data_dir)?;
        match url {
            DatabaseUrl::Sqlite(db) => sqlite::restore(db, file, &verifier),
            DatabaseUrl::Postgres(url) => postgres::restore(url, file, data_dir, &verifier),
        }
    })()
    .with_context(|| format!("cannot restore {} into {}", file.display(), url.redacted()))?;
    println!("restored {} into {}", file.display(), url.redacted());
    println!("  sha256  {}", restored.checked.sha256);
    match &restored.checked.signed_by {
        Some(key) => println!("  signed  by the backup key {key} (signature checked)"),
        None => println!("  signed  not checked (--unsigned)"),
    }
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
    checked: Checked,
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
    checked: &Checked,
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
        backup_sha256: &checked.sha256,
        signed_by: checked.signed_by.as_deref(),
        unsigned: checked.signed_by.is_none(),
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
    /// The public key whose signature was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_by: Option<&'a str>,
    /// Restored with `--unsigned`: nobody checked who made it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unsigned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaced_database_kept_as: Option<&'a str>,
}

/// `FILE.sha256`, the checksum written beside a backup.
fn checksum_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// What a restore found of a backup before it touched anything.
struct Checked {
    sha256: String,
    /// The public key whose signature matched (`None`: restored with `--unsigned`).
    signed_by: Option<String>,
}

/// The SHA-256 of `bytes_of` (a backup, or the copy of it about to be restored), checked against
/// the checksum beside `backup` (a missing one is noted: the signature covers the hash
/// itself), and the signature beside `backup` over it.
fn checked(bytes_of: &Path, backup: &Path, verifier: &Verifier) -> anyhow::Result<Checked> {
    let sha256 = checked_sha256(bytes_of, backup)?;
    let signed_by = verifier.check(backup, &sha256)?;
    Ok(Checked { sha256, signed_by })
}

/// Copies `from` into the existing file `to`, keeping `to`'s permissions (the private copy of
/// a backup that a restore checks and reads).
fn copy_into(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut source = File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut target = OpenOptions::new().write(true).open(to)?;
    std::io::copy(&mut source, &mut target)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// The SHA-256 of `bytes_of`, checked against the checksum beside `backup` when there is one:
/// SQLite's and pg_restore's checks miss a flipped byte inside a value, the checksum does not.
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
