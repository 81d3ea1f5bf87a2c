//! Reading the register's CSV: UTF-8 (a BOM is allowed), a header row, `,` or `;` separated.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::row::{COLUMNS, Cells};

/// The separator the header row uses: `;` (Russian Excel) when it has more of them than `,`.
pub fn detect_separator(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    if header.matches(';').count() > header.matches(',').count() {
        b';'
    } else {
        b','
    }
}

/// One line of the file: its number (1 = the header) and its cells by column.
pub struct Line {
    pub number: u64,
    pub cells: Vec<String>,
    columns: std::rc::Rc<BTreeMap<String, usize>>,
}

impl Cells for Line {
    fn cell(&self, column: &str) -> &str {
        self.columns
            .get(column)
            .and_then(|&i| self.cells.get(i))
            .map_or("", String::as_str)
    }
}

/// A line that cannot be read at all (wrong number of cells, broken quoting).
pub struct BadLine {
    pub number: u64,
    pub reason: String,
}

/// Reads every line. Unknown or missing required columns fail the whole file.
pub fn read(bytes: &[u8]) -> Result<(Vec<Line>, Vec<BadLine>)> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::usage(format!(
            "the file is not UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(detect_separator(text))
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    if let Some(unknown) = header.iter().find(|h| !COLUMNS.contains(&h.as_str())) {
        return Err(Error::usage(format!(
            "line 1: unknown column {unknown:?}; the columns are {}",
            COLUMNS.join(",")
        )));
    }
    for required in [
        "surname",
        "first_name",
        "date_of_birth",
        "sex",
        "diagnosis",
        "status",
        "registered_on",
    ] {
        if !header.iter().any(|h| h == required) {
            return Err(Error::usage(format!(
                "line 1: the column {required} is missing"
            )));
        }
    }
    let columns = std::rc::Rc::new(
        header
            .iter()
            .enumerate()
            .map(|(i, h)| (h.clone(), i))
            .collect::<BTreeMap<_, _>>(),
    );
    let (mut lines, mut bad) = (Vec::new(), Vec::new());
    for record in reader.records() {
        match record {
            Ok(r) => {
                let number = r.position().map_or(0, |p| p.line());
                if r.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                if r.len() != header.len() {
                    bad.push(BadLine {
                        number,
                        reason: format!("expected {} cells, found {}", header.len(), r.len()),
                    });
                    continue;
                }
                lines.push(Line {
                    number,
                    cells: r.iter().map(str::to_string).collect(),
                    columns: columns.clone(),
                });
            }
            Err(e) => bad.push(BadLine {
                number: e.position().map_or(0, |p| p.line()),
                reason: "unreadable CSV (quoting?)".into(),
            }),
        }
    }
    Ok((lines, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_follows_the_header() {
        assert_eq!(detect_separator("a;b;c\n1,2;3"), b';');
        assert_eq!(detect_separator("a,b,c\n"), b',');
    }

    #[test]
    fn unknown_columns_are_refused() {
        assert!(read(b"surname,nickname\n").is_err());
    }
}
