//! Secrets the server generates once and keeps in its data directory.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Fills a fresh array with OS randomness.
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(buf)
}

/// A random token of `N` bytes, hex-encoded.
pub fn random_hex<const N: usize>() -> anyhow::Result<String> {
    Ok(hex::encode(random_bytes::<N>()?))
}

/// Creates a folder (and its parents) that only its owner may enter (0700), as the data
/// directory must be: it holds the database and the server's secrets. A folder that exists
/// keeps its mode.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Creates a new, empty file only its owner may read or write (0600); fails if `path` exists.
pub fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Writes a new file readable by its owner only (0600), creating its folder; never replaces a
/// file. The contents are written to a temporary file, flushed to disk and only then linked
/// under `path`: a crash leaves either no file or the whole one, never an empty key that the
/// next start would take for the key.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{}", random_hex::<8>()?));
    let temporary = std::path::PathBuf::from(name);
    let written = create_private_file(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| fs::hard_link(&temporary, path));
    let _ = fs::remove_file(&temporary);
    linked.map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))
}

/// Reads the secret at `path`, or generates it with `make` and keeps it there.
pub fn load_or_create(
    path: &Path,
    make: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Err(anyhow::anyhow!(
            "{} is empty (cut short by a crash?): restore it from a backup of the data directory",
            path.display()
        )),
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = make()?;
            write_private(path, &bytes)?;
            Ok(bytes)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}
