//! Reading the register's CSV: UTF-8 (a BOM is allowed) or, when asked, Windows-1251; a header
//! row, `,` or `;` separated. And the text encodings export writes.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::row::{COLUMNS, Cells};

/// The UTF-8 byte-order mark: Excel writes it in front of a "CSV UTF-8" file, and needs it to
/// read one as UTF-8 (without it, Russian Excel reads UTF-8 Cyrillic as Windows-1251).
pub const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// The text encoding of a CSV file: UTF-8, or Windows-1251, the plain "CSV" of Excel on a
/// Russian Windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encoding {
    #[default]
    Utf8,
    Windows1251,
}

impl std::str::FromStr for Encoding {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "windows-1251" | "cp1251" | "windows1251" => Ok(Encoding::Windows1251),
            _ => Err("expected utf-8 or windows-1251 (cp1251)".into()),
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Windows1251 => "windows-1251",
        })
    }
}

/// The text of a file in `encoding`. A file in the other encoding than the one named is
/// refused, saying which to name: read in the wrong one, every Cyrillic name would be
/// imported garbled, and quietly so.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<Cow<'_, str>> {
    match encoding {
        Encoding::Utf8 => {
            let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
            // A byte offset tells a clinic's user nothing: say what the file probably is.
            let text = std::str::from_utf8(bytes).map_err(|_| {
                Error::usage(
                    "the file is not UTF-8 (perhaps Windows-1251, Excel's plain \"CSV\" on a \
                     Russian Windows): import it with --encoding windows-1251, or save it in \
                     Excel as \"CSV UTF-8 (Comma delimited)\" and import that file",
                )
            })?;
            Ok(Cow::Borrowed(text))
        }
        Encoding::Windows1251 => {
            if bytes.starts_with(UTF8_BOM) {
                return Err(Error::usage(
                    "the file starts with a UTF-8 byte-order mark: it is UTF-8 (Excel's \"CSV \
                     UTF-8\") already; import it without --encoding windows-1251",
                ));
            }
            if !bytes.is_ascii() && std::str::from_utf8(bytes).is_ok() {
                return Err(Error::usage(
                    "the file is UTF-8 already (read as Windows-1251, every Cyrillic name would \
                     be garbled): import it without --encoding windows-1251",
                ));
            }
            // Every byte has a character in Windows-1251, so decoding cannot fail.
            Ok(encoding_rs::WINDOWS_1251
                .decode_without_bom_handling(bytes)
                .0)
        }
    }
}

/// The bytes of one cell in `encoding`, or `None` when it has a character `encoding` cannot
/// represent (only Windows-1251 lacks any: Latin letters with accents, other alphabets...).
pub fn encode(text: &str, encoding: Encoding) -> Option<Cow<'_, [u8]>> {
    match encoding {
        Encoding::Utf8 => Some(Cow::Borrowed(text.as_bytes())),
        Encoding::Windows1251 => {
            let (bytes, _, unmappable) = encoding_rs::WINDOWS_1251.encode(text);
            (!unmappable).then_some(bytes)
        }
    }
}

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

/// Reads every line of a file in `encoding` (see [`decode`]). Unknown or missing required
/// columns fail the whole file. Windows-1251 has one byte per character and the same line
/// breaks as UTF-8, so a line's number is the same whichever encoding the file is in.
pub fn read(bytes: &[u8], encoding: Encoding) -> Result<(Vec<Line>, Vec<BadLine>)> {
    let text = decode(bytes, encoding)?;
    let text: &str = &text;
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
    let mut counter = LineCounter::new(text);
    for record in reader.records() {
        match record {
            Ok(r) => {
                let number = r.position().map_or(0, |p| counter.line_at(p.byte()));
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
                number: e.position().map_or(0, |p| counter.line_at(p.byte())),
                reason: "unreadable CSV (quoting?)".into(),
            }),
        }
    }
    Ok((lines, bad))
}

/// The number of the line a record starts on, from the byte it starts at, as a text editor
/// numbers lines (a note's line breaks count). Not the csv crate's own line: after a `\r\n`
/// (Excel's line end) it places a record before the `\n`, one line too early, and blank lines
/// before a record are not counted either.
struct LineCounter<'a> {
    text: &'a [u8],
    /// Where counting has got to, and the number of the line it is on.
    at: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter {
            text: text.as_bytes(),
            at: 0,
            line: 1,
        }
    }

    /// The line of the record starting at `byte` (records come in order, so counting goes on
    /// from the last one: the file is read once).
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut start = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        while matches!(self.text.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        if start > self.at {
            let newlines = self.text[self.at..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.line += newlines as u64;
            self.at = start;
        }
        self.line
    }
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
        message_in(bytes, Encoding::Utf8)
    }

    fn message_in(bytes: &[u8], encoding: Encoding) -> String {
        match read(bytes, encoding) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("read {:?}", String::from_utf8_lossy(bytes)),
        }
    }

    /// "Иванова" in Windows-1251, byte by byte (not made with the decoder under test).
    const IVANOVA_1251: &[u8] = b"\xc8\xe2\xe0\xed\xee\xe2\xe0";

    const HEADER: &str =
        "surname;first_name;date_of_birth;sex;diagnosis;status;registered_on;notes\r\n";

    /// A register of two patients, the first with a note of two lines, in Windows-1251 as
    /// Russian Excel saves a plain "CSV", and the same in UTF-8.
    fn register_1251_and_utf8() -> (Vec<u8>, String) {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(IVANOVA_1251);
        // ;Анна;12.03.1948;Ж;C50;registered;01.02.2025;"ключ у соседки<LF>кв. 5"
        bytes.extend_from_slice(
            b";\xc0\xed\xed\xe0;12.03.1948;\xc6;C50;registered;01.02.2025;\
              \"\xea\xeb\xfe\xf7 \xf3 \xf1\xee\xf1\xe5\xe4\xea\xe8\n\xea\xe2. 5\"\r\n",
        );
        // Фёдоров;Иван;12.07.1939;М;C34;registered;15.03.2025;
        bytes.extend_from_slice(
            b"\xd4\xb8\xe4\xee\xf0\xee\xe2;\xc8\xe2\xe0\xed;12.07.1939;\xcc;C34;registered;\
              15.03.2025;\r\n",
        );
        let utf8 = format!(
            "{HEADER}Иванова;Анна;12.03.1948;Ж;C50;registered;01.02.2025;\"ключ у соседки\nкв. 5\"\r\n\
             Фёдоров;Иван;12.07.1939;М;C34;registered;15.03.2025;\r\n"
        );
        (bytes, utf8)
    }

    fn lines_of(bytes: &[u8], encoding: Encoding) -> Vec<(u64, Vec<String>)> {
        let (lines, bad) = read(bytes, encoding).unwrap_or_else(|e| panic!("{e}"));
        assert!(bad.is_empty());
        lines.into_iter().map(|l| (l.number, l.cells)).collect()
    }

    #[test]
    fn a_windows_1251_file_reads_as_its_utf8_twin() {
        assert_eq!(
            decode(IVANOVA_1251, Encoding::Windows1251).unwrap(),
            "Иванова"
        );
        let (cp1251, utf8) = register_1251_and_utf8();
        let read_1251 = lines_of(&cp1251, Encoding::Windows1251);
        assert_eq!(read_1251, lines_of(utf8.as_bytes(), Encoding::Utf8));
        assert_eq!(read_1251[0].1[0], "Иванова");
        assert_eq!(read_1251[0].1[7], "ключ у соседки\nкв. 5");
        assert_eq!(read_1251[1].1[..2], ["Фёдоров", "Иван"]);
        // Line numbers (the journal's and the error report's) count the note's line break.
        assert_eq!(read_1251.iter().map(|l| l.0).collect::<Vec<_>>(), [2, 4]);
    }

    #[test]
    fn a_windows_1251_file_without_the_flag_is_refused_naming_it() {
        let (cp1251, _) = register_1251_and_utf8();
        let m = message(&cp1251);
        assert!(
            m.contains("not UTF-8") && m.contains("--encoding windows-1251"),
            "{m}"
        );
        assert!(m.contains("CSV UTF-8"), "the other way out: {m}");
        assert!(!m.contains("byte"), "{m}");
    }

    #[test]
    fn a_utf8_file_with_the_flag_is_refused_telling_to_drop_it() {
        let (_, utf8) = register_1251_and_utf8();
        let m = message_in(utf8.as_bytes(), Encoding::Windows1251);
        assert!(
            m.contains("UTF-8 already") && m.contains("without --encoding windows-1251"),
            "{m}"
        );
        assert!(!m.contains("Иванова") && !m.contains("ключ"), "{m}");

        let mut with_bom = UTF8_BOM.to_vec();
        with_bom.extend_from_slice(HEADER.as_bytes());
        let m = message_in(&with_bom, Encoding::Windows1251);
        assert!(
            m.contains("byte-order mark") && m.contains("without --encoding"),
            "{m}"
        );
    }

    #[test]
    fn an_ascii_file_reads_in_either_encoding_and_a_bom_is_skipped() {
        let ascii = format!("{HEADER}Smith;John;20.01.1955;M;I50;registered;10.01.2025;\r\n");
        let lines = lines_of(ascii.as_bytes(), Encoding::Utf8);
        assert_eq!(lines, lines_of(ascii.as_bytes(), Encoding::Windows1251));
        let mut with_bom = UTF8_BOM.to_vec();
        with_bom.extend_from_slice(ascii.as_bytes());
        assert_eq!(lines_of(&with_bom, Encoding::Utf8), lines);
    }

    #[test]
    fn encodings_are_named_as_people_type_them() {
        for name in ["utf-8", "UTF8", " utf-8 "] {
            assert_eq!(name.parse::<Encoding>(), Ok(Encoding::Utf8));
        }
        for name in ["windows-1251", "Windows-1251", "cp1251", "CP1251"] {
            assert_eq!(name.parse::<Encoding>(), Ok(Encoding::Windows1251));
        }
        assert!("koi8-r".parse::<Encoding>().unwrap_err().contains("cp1251"));
        assert_eq!(Encoding::default().to_string(), "utf-8");
    }

    #[test]
    fn a_cell_windows_1251_cannot_hold_is_not_encoded() {
        assert_eq!(
            encode("Иванова", Encoding::Windows1251).as_deref(),
            Some(IVANOVA_1251)
        );
        assert_eq!(
            encode("Ёлкин № 5", Encoding::Windows1251).as_deref(),
            Some(&b"\xa8\xeb\xea\xe8\xed \xb9 5"[..])
        );
        assert_eq!(encode("Müller", Encoding::Windows1251), None);
        assert_eq!(encode("李", Encoding::Windows1251), None);
        assert_eq!(
            encode("Müller", Encoding::Utf8).as_deref(),
            Some("Müller".as_bytes())
        );
    }

    #[test]
    fn lines_are_numbered_as_an_editor_numbers_them() {
        let header = "surname,first_name,date_of_birth,sex,diagnosis,status,registered_on,notes";
        let patient = "Smith,John,1955-01-20,M,I50,registered,2025-01-10";
        for end in ["\n", "\r\n"] {
            let text = format!(
                "{header}{end}{patient},{end}{end}{patient},\"a{end}b\"{end}{patient},{end}"
            );
            let numbers: Vec<u64> = lines_of(text.as_bytes(), Encoding::Utf8)
                .into_iter()
                .map(|l| l.0)
                .collect();
            assert_eq!(numbers, [2, 4, 6], "line ends {end:?}");
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
}
