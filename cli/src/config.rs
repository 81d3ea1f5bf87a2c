//! Where the client keeps its state: the session token (mode 0600) and the key file.

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

/// Writes a file readable by its owner only (created with mode 0600 on Unix).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
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
    if let Ok(value) = std::env::var(env) {
        return Ok(value);
    }
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    rpassword::prompt_password(prompt).map_err(|e| Error::usage(format!("{prompt}{e}")))
}
