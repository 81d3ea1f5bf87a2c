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
    // Excel's plain "CSV" is Windows-1251 on a Russian system: say how to save it right, since
    // a byte offset tells a clinic's user nothing.
    let text = std::str::from_utf8(bytes).map_err(|_| {
        Error::usage(
            "the file seems not to be UTF-8 (perhaps Windows-1251, Excel's plain \"CSV\"): \
             in Excel, save it again as \"CSV UTF-8 (Comma delimited)\" and import that file",
        )
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
    check_header(&header)?;
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

/// Refuses a first line that is not a header row, without echoing its cells: in a file that
/// starts with a patient they are a surname, a date of birth... which must not reach a
/// terminal, a log or a support ticket.
fn check_header(header: &[String]) -> Result<()> {
    let known = |h: &String| COLUMNS.contains(&h.as_str());
    if !header.iter().any(known) {
        return Err(Error::usage(format!(
            "line 1 is not a header row: the file must start with a line naming its columns, \
             e.g. {}",
            COLUMNS.join(",")
        )));
    }
    if let Some((i, unknown)) = header.iter().enumerate().find(|(_, h)| !known(h)) {
        // A misspelt column name is worth showing; anything that does not look like one might
        // be a patient's data and is shown only by its position.
        let looks_like_a_name = !unknown.is_empty()
            && unknown.len() <= 40
            && unknown
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let what = if looks_like_a_name {
            format!("{unknown:?}")
        } else {
            format!("(cell {})", i + 1)
        };
        return Err(Error::usage(format!(
            "line 1: unknown column {what}; the columns are {}",
            COLUMNS.join(",")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_follows_the_header() {
        assert_eq!(detect_separator("a;b;c\n1,2;3"), b';');
        assert_eq!(detect_separator("a,b,c\n"), b',');
    }

    fn message(bytes: &[u8]) -> String {
        match read(bytes) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("read {:?}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn unknown_columns_are_refused() {
        let m = message(b"surname,nickname\n");
        assert!(m.contains("unknown column \"nickname\""), "{m}");
    }

    #[test]
    fn a_file_without_a_header_row_is_refused_without_echoing_it() {
        let data = "Иванова,Анна,,1948-03-12,Ж,,,,,C50,registered,2025-02-01,,,,,\n";
        let m = message(data.as_bytes());
        assert!(m.contains("not a header row"), "{m}");
        assert!(m.contains("surname,first_name"), "lists the columns: {m}");
        assert!(
            !m.to_lowercase().contains("иванова") && !m.contains("1948"),
            "{m}"
        );
    }

    #[test]
    fn a_data_cell_among_known_columns_is_named_by_position_only() {
        let m = message("surname,Анна\n".as_bytes());
        assert!(m.contains("(cell 2)") && !m.contains("анна"), "{m}");
    }

    #[test]
    fn a_windows_1251_file_is_told_to_be_saved_as_utf8() {
        // "Фамилия" in Windows-1251.
        let m = message(b"\xd4\xe0\xec\xe8\xeb\xe8\xff;first_name\n");
        assert!(
            m.contains("not to be UTF-8") && m.contains("CSV UTF-8"),
            "{m}"
        );
        assert!(!m.contains("byte"), "{m}");
    }
}
