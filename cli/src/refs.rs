//! Reference books by code: the CSV and the flags name entries by code, the API by id.

use std::collections::BTreeMap;

use crate::api::{Api, RefEntry};
use crate::error::Result;

/// One book, looked up by code (case-insensitive) or by id.
#[derive(Default, Debug, Clone)]
pub struct Book {
    by_code: BTreeMap<String, i64>,
    by_id: BTreeMap<i64, String>,
}

impl Book {
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
        self.by_code.get(&code.trim().to_uppercase()).copied()
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
            diagnoses: book("diagnoses")?,
            statuses: book("patient-statuses")?,
            care_forms: book("care-forms")?,
            districts: book("districts")?,
            needs: book("needs")?,
        })
    }
}
