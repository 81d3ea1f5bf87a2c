//! Export of the clinic's own register, decrypted, in the import's CSV format.

use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};
use crate::keys::Clinic;
use crate::patients::{for_each_page, open};
use crate::refs::Books;
use crate::row::{COLUMNS, to_cells};

/// Writes every patient of the institution to `path` (mode 0600: it identifies people).
/// An existing file is replaced only when `replace` is set: a mistyped name must not wipe
/// out another register. Returns the number of patients written.
pub fn run(clinic: &Clinic, path: &Path, replace: bool) -> Result<usize> {
    // Checked before the (long) decryption of the register too, not only when writing.
    if !replace && path.exists() {
        return Err(exists(path));
    }
    let books = Books::load(&clinic.api)?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS)?;
    let mut count = 0;
    for_each_page(clinic, json!({"limit": 500}), |patient| {
        let passport = open(clinic, &patient)?;
        writer.write_record(to_cells(&passport, &patient.record, &books))?;
        count += 1;
        Ok(())
    })?;
    let bytes = writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    crate::config::write_private_with(path, &bytes, replace).map_err(|e| match e {
        Error::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists => exists(path),
        other => other,
    })?;
    Ok(count)
}

fn exists(path: &Path) -> Error {
    Error::usage(format!(
        "{} already exists and was left as it is: give another file name, or add --force to \
         replace it",
        path.display()
    ))
}
