//! The lock that says a SQLite database is in use by a server (or being restored).
//!
//! A server holds it for its whole life; `palreg restore` takes it too, so that it never swaps
//! the file under a running server, and a server cannot start in the middle of a restore.
//! SQLite's own locks cannot tell: they are held only while a transaction runs.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// An exclusive lock on `<database file>.lock`, released when dropped (or when the process
/// ends, however it ends). The lock file itself stays: removing it would let a second process
/// lock a new file of the same name while the first still holds the old one.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{} is locked: another palreg process (a server or a restore) is using {}", .lock.display(), .database.display())]
    Held { database: PathBuf, lock: PathBuf },
    #[error("cannot lock {}: {source}", .lock.display())]
    Io {
        lock: PathBuf,
        source: std::io::Error,
    },
}

impl DatabaseLock {
    /// The lock file of the SQLite database at `database`.
    pub fn path_for(database: &Path) -> PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock without waiting (creating the lock file and its folder when needed).
    pub fn try_acquire(database: &Path) -> Result<Self, LockError> {
        let lock = Self::path_for(database);
        let io = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        if let Some(parent) = lock.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::secrets::create_private_dir(parent).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held {
                database: database.to_path_buf(),
                lock,
            }),
            Err(TryLockError::Error(source)) => Err(io(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub").join("palreg.db");
        let first = DatabaseLock::try_acquire(&db).unwrap();
        assert!(dir.path().join("sub/palreg.db.lock").is_file());
        let refused = DatabaseLock::try_acquire(&db).unwrap_err();
        assert!(matches!(refused, LockError::Held { .. }), "{refused}");
        assert!(refused.to_string().contains("palreg.db.lock"), "{refused}");
        drop(first);
        DatabaseLock::try_acquire(&db).expect("free again");
    }
}
