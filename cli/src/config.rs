//! Where the client keeps its state: the session token (mode 0600), the key file and the
//! key pins (the fingerprints of the institution key versions it has trusted, mode 0600).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The client's folder: `PALREG_CLIENT_DIR`, else `~/.config/palreg`.
pub fn client_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PALREG_CLIENT_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".config").join("palreg")
}

/// Writes a file readable by its owner only (created with mode 0600 on Unix), replacing one
/// that exists.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_private_with(path, bytes, true)
}

/// As [`write_private`], but fails with [`std::io::ErrorKind::AlreadyExists`] when `path`
/// exists and `replace` is false. The check is the open itself (`create_new`), so no file
/// that appears meanwhile is overwritten either.
pub fn write_private_with(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    if replace {
        options.write(true).create(true).truncate(true);
    } else {
        options.write(true).create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Writes a file readable by its owner only, atomically: the bytes go to a temporary file
/// beside it (mode 0600), which then replaces `path` by a rename, so a reader sees the old
/// content or the new one, never half of it.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::usage(format!("{}: not a file name", path.display())))?;
    let mut temporary = std::ffi::OsString::from(".");
    temporary.push(name);
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let written = write_private(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path).map_err(Error::from));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    #[cfg(unix)]
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The rename itself is durable once the folder is synced.
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Where the key pins are kept (see `keys::Pins`).
pub fn pins_path(dir: &Path) -> PathBuf {
    dir.join("key-pins.json")
}

/// The lock file of the pin file `pins` (`key-pins.lock` beside `key-pins.json`), held while
/// a run reads, changes and writes back the pins.
pub fn pins_lock_path(pins: &Path) -> PathBuf {
    pins.with_extension("lock")
}

/// A saved sign-in.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct SavedSession {
    pub server: String,
    pub login: String,
    pub token: String,
}

fn session_path(dir: &Path) -> PathBuf {
    dir.join("session.json")
}

pub fn save_session(dir: &Path, session: &SavedSession) -> Result<()> {
    write_private(&session_path(dir), &serde_json::to_vec_pretty(session)?)
}

pub fn load_session(dir: &Path) -> Result<SavedSession> {
    let text = std::fs::read_to_string(session_path(dir))
        .map_err(|_| Error::usage("not signed in: run `palreg-client login` first"))?;
    Ok(serde_json::from_str(&text)?)
}

pub fn forget_session(dir: &Path) -> Result<()> {
    match std::fs::remove_file(session_path(dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// A secret from, in order: an environment variable, a file (first line), a prompt.
pub fn secret(env: &str, file: Option<&Path>, prompt: &str) -> Result<String> {
    match given_secret(env, file)? {
        Some(value) => Ok(value),
        None => ask(prompt),
    }
}

/// A new secret (one that will protect something from now on): as [`secret`], but a prompted
/// one is asked twice, since a typo nobody sees would lock its owner out for good.
pub fn new_secret(env: &str, file: Option<&Path>, prompt: &str) -> Result<String> {
    match given_secret(env, file)? {
        Some(value) => Ok(value),
        None => typed_twice(prompt, ask),
    }
}

/// The secret from the environment or a file, if either gives one.
fn given_secret(env: &str, file: Option<&Path>) -> Result<Option<String>> {
    if let Ok(value) = std::env::var(env) {
        return Ok(Some(value));
    }
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)?;
        return Ok(Some(text.lines().next().unwrap_or("").to_string()));
    }
    Ok(None)
}

fn ask(prompt: &str) -> Result<String> {
    rpassword::prompt_password(prompt).map_err(|e| Error::usage(format!("{prompt}{e}")))
}

/// Asks for a secret, then for it again; refuses two that differ.
fn typed_twice(prompt: &str, mut ask: impl FnMut(&str) -> Result<String>) -> Result<String> {
    let first = ask(prompt)?;
    let again = ask(&format!(
        "{} (again): ",
        prompt.trim_end().trim_end_matches(':')
    ))?;
    if first != again {
        return Err(Error::usage(
            "the two entries differ; nothing was changed: run the command again",
        ));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(list: &[&str]) -> impl FnMut(&str) -> Result<String> {
        let mut list: Vec<String> = list.iter().rev().map(|s| s.to_string()).collect();
        move |_| Ok(list.pop().unwrap_or_default())
    }

    #[test]
    fn a_new_secret_typed_twice_alike_is_taken() {
        let got = typed_twice("Key passphrase: ", answers(&["horse", "horse"])).unwrap();
        assert_eq!(got, "horse");
    }

    #[test]
    fn a_new_secret_typed_twice_differently_is_refused() {
        let err = typed_twice("Key passphrase: ", answers(&["horse", "hrose"])).unwrap_err();
        assert!(err.to_string().contains("differ"), "{err}");
    }

    #[test]
    fn the_second_prompt_says_again() {
        let mut prompts = Vec::new();
        let _ = typed_twice("Key passphrase: ", |p: &str| {
            prompts.push(p.to_string());
            Ok("x".to_string())
        });
        assert_eq!(prompts, ["Key passphrase: ", "Key passphrase (again): "]);
    }

    #[test]
    fn an_atomic_write_replaces_the_file_privately_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("key-pins.json");
        write_private_atomic(&path, b"{}").unwrap();
        write_private_atomic(&path, b"{\"a\": {}}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\": {}}");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["key-pins.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_existing_file_is_kept_unless_replacing_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("register.csv");
        std::fs::write(&path, "before").unwrap();
        let err = write_private_with(&path, b"after", false).unwrap_err();
        assert!(
            matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::AlreadyExists),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "before");
        write_private_with(&path, b"after", true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after");
    }
}
