//! Export of the clinic's own register, decrypted, in the import's CSV format.

use std::path::Path;

use serde_json::json;

use crate::csvfile::{Encoding, UTF8_BOM, encode};
use crate::error::{Error, Result};
use crate::keys::Clinic;
use crate::patients::{for_each_page, open};
use crate::refs::Books;
use crate::row::{COLUMNS, to_cells};

/// How an export is written: its encoding and the separator of its cells.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout {
    pub encoding: Encoding,
    pub separator: Separator,
}

/// The character between cells. Excel opens a CSV file by the list separator of the
/// computer's regional settings: `;` on a Russian Windows, where a `,` file opens as one
/// column. The import reads either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Separator {
    #[default]
    Comma,
    Semicolon,
}

impl std::str::FromStr for Separator {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "," | "comma" => Ok(Separator::Comma),
            ";" | "semicolon" => Ok(Separator::Semicolon),
            _ => Err("expected comma or semicolon (, or ;)".into()),
        }
    }
}

impl std::fmt::Display for Separator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Separator::Comma => "comma",
            Separator::Semicolon => "semicolon",
        })
    }
}

impl Separator {
    fn byte(self) -> u8 {
        match self {
            Separator::Comma => b',',
            Separator::Semicolon => b';',
        }
    }
}

/// Writes every patient of the institution to `path` (mode 0600: it identifies people), laid
/// out as `layout` says (UTF-8 with a byte-order mark, for Excel, or Windows-1251; `,` or `;`
/// between cells). An existing file is replaced only when `replace` is set: a mistyped name
/// must not wipe out another register. Nothing is written unless every patient could be.
/// Returns the number of patients written.
pub fn run(clinic: &Clinic, path: &Path, replace: bool, layout: Layout) -> Result<usize> {
    // Checked before the (long) decryption of the register too, not only when writing.
    if !replace && path.exists() {
        return Err(exists(path));
    }
    let books = Books::load(&clinic.api)?;
    let mut sheet = Sheet::new(layout)?;
    let mut count = 0;
    for_each_page(clinic, json!({"limit": 500}), |patient| {
        let passport = open(clinic, &patient)?;
        sheet.push(&to_cells(&passport, &patient.record, &books), patient.id)?;
        count += 1;
        Ok(())
    })?;
    crate::config::write_private_with(path, &sheet.into_bytes()?, replace).map_err(
        |e| match e {
            Error::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists => exists(path),
            other => other,
        },
    )?;
    Ok(count)
}

fn exists(path: &Path) -> Error {
    Error::usage(format!(
        "{} already exists and was left as it is: give another file name, or add --force to \
         replace it",
        path.display()
    ))
}

/// The export's bytes, built in memory: UTF-8 starts with a byte-order mark, without which
/// Excel on a Russian Windows reads UTF-8 Cyrillic as Windows-1251 (the import skips it);
/// Windows-1251 is Excel's plain "CSV" there, for programs that read nothing else.
struct Sheet {
    writer: csv::Writer<Vec<u8>>,
    encoding: Encoding,
    /// The line the next patient starts on (a note's line breaks take lines of their own).
    line: u64,
}

impl Sheet {
    /// A sheet holding the header row.
    fn new(
        Layout {
            encoding,
            separator,
        }: Layout,
    ) -> Result<Sheet> {
        let start = match encoding {
            Encoding::Utf8 => UTF8_BOM.to_vec(),
            Encoding::Windows1251 => Vec::new(),
        };
        let mut writer = csv::WriterBuilder::new()
            .delimiter(separator.byte())
            .from_writer(start);
        writer.write_record(COLUMNS)?;
        Ok(Sheet {
            writer,
            encoding,
            line: 2,
        })
    }

    /// Adds the line of patient `id` (its cells in [`COLUMNS`] order). A cell the encoding
    /// cannot hold fails the export, naming the line, the column and the patient's id, never
    /// the value.
    fn push(&mut self, cells: &[String], id: i64) -> Result<()> {
        let mut encoded = Vec::with_capacity(cells.len());
        for (cell, column) in cells.iter().zip(COLUMNS) {
            encoded.push(encode(cell, self.encoding).ok_or_else(|| self.unencodable(column, id))?);
        }
        self.writer.write_record(&encoded)?;
        let breaks = cells.iter().map(|c| c.matches('\n').count()).sum::<usize>();
        self.line += 1 + breaks as u64;
        Ok(())
    }

    fn unencodable(&self, column: &str, id: i64) -> Error {
        Error::usage(format!(
            "line {}, column {column} (patient {id}): a character {} cannot hold (a letter \
             with an accent, another alphabet...); nothing was written. Export in UTF-8 \
             (without --encoding), or correct that patient's {column}",
            self.line, self.encoding
        ))
    }

    /// The file's bytes.
    fn into_bytes(self) -> Result<Vec<u8>> {
        self.writer
            .into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csvfile::read;

    fn in_(encoding: Encoding) -> Layout {
        Layout {
            encoding,
            ..Layout::default()
        }
    }

    fn cells(surname: &str, notes: &str) -> Vec<String> {
        COLUMNS
            .iter()
            .map(|c| match *c {
                "surname" => surname,
                "notes" => notes,
                _ => "",
            })
            .map(String::from)
            .collect()
    }

    #[test]
    fn utf8_starts_with_a_byte_order_mark_and_reads_back() {
        let mut sheet = Sheet::new(in_(Encoding::Utf8)).unwrap();
        sheet.push(&cells("Иванова", "ключ\nу соседки"), 1).unwrap();
        let bytes = sheet.into_bytes().unwrap();
        assert!(bytes.starts_with(UTF8_BOM));
        assert!(bytes[UTF8_BOM.len()..].starts_with(b"surname,first_name,"));
        let (lines, _) = read(&bytes, Encoding::Utf8).unwrap();
        assert_eq!(lines[0].cells[0], "Иванова");
        assert_eq!(lines[0].cells[25], "ключ\nу соседки");
    }

    #[test]
    fn windows_1251_has_no_byte_order_mark_and_reads_back() {
        let mut sheet = Sheet::new(in_(Encoding::Windows1251)).unwrap();
        sheet.push(&cells("Иванова", "№ 5"), 1).unwrap();
        let bytes = sheet.into_bytes().unwrap();
        assert!(bytes.starts_with(b"surname,first_name,"));
        assert!(
            bytes
                .windows(7)
                .any(|w| w == b"\xc8\xe2\xe0\xed\xee\xe2\xe0"),
            "Иванова in Windows-1251"
        );
        assert!(read(&bytes, Encoding::Utf8).is_err(), "not UTF-8");
        let (lines, _) = read(&bytes, Encoding::Windows1251).unwrap();
        assert_eq!(lines[0].cells[0], "Иванова");
        assert_eq!(lines[0].cells[25], "№ 5");
    }

    #[test]
    fn a_character_windows_1251_cannot_hold_names_line_and_column_not_the_value() {
        let mut sheet = Sheet::new(in_(Encoding::Windows1251)).unwrap();
        sheet.push(&cells("Иванова", "первая\nвторая"), 7).unwrap();
        let err = sheet
            .push(&cells("Müller", ""), 42)
            .unwrap_err()
            .to_string();
        // The note's line break puts the second patient on line 4.
        assert!(err.contains("line 4, column surname (patient 42)"), "{err}");
        assert!(err.contains("nothing was written") && err.contains("UTF-8"));
        assert!(!err.contains("Müller") && !err.contains('ü'), "{err}");
        let mut sheet = Sheet::new(in_(Encoding::Utf8)).unwrap();
        sheet.push(&cells("Müller", ""), 42).unwrap();
    }

    /// For Excel on a Russian Windows: `;` between cells, a `;` inside a cell quoted; the
    /// import finds the separator in the header and reads the same cells back.
    #[test]
    fn semicolons_separate_cells_and_read_back() {
        let mut sheet = Sheet::new(Layout {
            encoding: Encoding::Windows1251,
            separator: Separator::Semicolon,
        })
        .unwrap();
        sheet.push(&cells("Иванова", "кв. 5; код 12"), 1).unwrap();
        let bytes = sheet.into_bytes().unwrap();
        assert!(bytes.starts_with(b"surname;first_name;"));
        let (lines, bad) = read(&bytes, Encoding::Windows1251).unwrap();
        assert!(bad.is_empty());
        assert_eq!(lines[0].cells.len(), COLUMNS.len());
        assert_eq!(lines[0].cells[0], "Иванова");
        assert_eq!(lines[0].cells[25], "кв. 5; код 12");
        assert_eq!("SEMICOLON".parse(), Ok(Separator::Semicolon));
        assert_eq!(";".parse(), Ok(Separator::Semicolon));
        assert!("tab".parse::<Separator>().is_err());
    }
}
