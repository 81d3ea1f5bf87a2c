//! Reference books by code: the CSV and the flags name entries by code, the API by id.

use std::collections::BTreeMap;

use crate::api::{Api, RefEntry};
use crate::error::Result;

/// One book, looked up by code (case-insensitive) or by id.
#[derive(Default, Debug, Clone)]
pub struct Book {
    by_code: BTreeMap<String, i64>,
    by_id: BTreeMap<i64, String>,
    /// Codes are Latin letters and digits (ICD-10): Cyrillic look-alikes are read as Latin.
    latin_codes: bool,
}

/// The Cyrillic letters that look like Latin ones, as a Russian keyboard types them into an
/// ICD-10 code (`С50` with a Cyrillic `С`): the code means the Latin letter.
fn latin_look_alike(c: char) -> char {
    match c {
        'А' | 'а' => 'A',
        'В' | 'в' => 'B',
        'Е' | 'е' => 'E',
        'К' | 'к' => 'K',
        'М' | 'м' => 'M',
        'Н' | 'н' => 'H',
        'О' | 'о' => 'O',
        'Р' | 'р' => 'P',
        'С' | 'с' => 'C',
        'Т' | 'т' => 'T',
        'Х' | 'х' => 'X',
        other => other,
    }
}

/// An ICD-10 code as the reference book spells it: Cyrillic look-alikes → Latin, upper case.
pub fn icd10_code(code: &str) -> String {
    code.trim()
        .chars()
        .map(latin_look_alike)
        .collect::<String>()
        .to_uppercase()
}

impl Book {
    /// A book of ICD-10 diagnoses: looked up with [`icd10_code`].
    pub fn icd10_from_entries(entries: Vec<RefEntry>) -> Self {
        Book {
            latin_codes: true,
            ..Book::from_entries(entries)
        }
    }

    pub fn from_entries(entries: Vec<RefEntry>) -> Self {
        let mut book = Book::default();
        for e in entries {
            // An inactive entry may still be on old records; new ones choose active entries,
            // and the server refuses an inactive one with a clear message.
            book.by_code.insert(e.code.to_uppercase(), e.id);
            book.by_id.insert(e.id, e.code);
        }
        book
    }

    pub fn id(&self, code: &str) -> Option<i64> {
        let key = if self.latin_codes {
            icd10_code(code)
        } else {
            code.trim().to_uppercase()
        };
        self.by_code.get(&key).copied()
    }

    pub fn code(&self, id: i64) -> String {
        self.by_id
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{id}"))
    }
}

/// The books a patient record refers to.
#[derive(Default, Debug, Clone)]
pub struct Books {
    pub diagnoses: Book,
    pub statuses: Book,
    pub care_forms: Book,
    pub districts: Book,
    pub needs: Book,
}

impl Books {
    pub fn load(api: &Api) -> Result<Books> {
        let book = |name: &str| api.refs(name).map(Book::from_entries);
        Ok(Books {
            diagnoses: api.refs("diagnoses").map(Book::icd10_from_entries)?,
            statuses: book("patient-statuses")?,
            care_forms: book("care-forms")?,
            districts: book("districts")?,
            needs: book("needs")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, code: &str) -> RefEntry {
        RefEntry {
            id,
            code: code.into(),
            name: String::new(),
            active: true,
        }
    }

    #[test]
    fn a_diagnosis_typed_with_cyrillic_look_alikes_is_found() {
        let book = Book::icd10_from_entries(vec![entry(1, "C50"), entry(2, "E11.9")]);
        assert_eq!(book.id("С50"), Some(1), "Cyrillic С");
        assert_eq!(book.id(" с50 "), Some(1), "Cyrillic с, spaces");
        assert_eq!(book.id("c50"), Some(1));
        assert_eq!(book.id("Е11.9"), Some(2), "Cyrillic Е");
        assert_eq!(book.id("Б50"), None, "no look-alike");
        assert_eq!(icd10_code("Х10-Х19"), "X10-X19");
    }

    #[test]
    fn other_books_take_their_codes_as_typed() {
        let book = Book::from_entries(vec![entry(1, "C50")]);
        assert_eq!(book.id("С50"), None);
        assert_eq!(book.id("c50"), Some(1));
    }
}
