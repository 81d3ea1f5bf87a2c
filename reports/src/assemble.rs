//! Joins PDF documents rendered in chunks of pages into one document.
//!
//! printpdf builds a whole document in memory (every page's operations, then a second copy as
//! PDF objects), which for a 50,000-row report is hundreds of MiB. Rendering a chunk of pages
//! at a time and keeping only its compressed objects bounds the working memory by the chunk
//! size; what grows with the report is only its compressed output.

use lopdf::{Dictionary, Document, Object, ObjectId};

use crate::ReportError;

pub(crate) struct Assembler {
    out: Document,
    pages_id: ObjectId,
    kids: Vec<Object>,
    info: Option<ObjectId>,
}

impl Assembler {
    pub(crate) fn new() -> Self {
        let mut out = Document::with_version("1.7");
        let pages_id = out.new_object_id();
        Assembler {
            out,
            pages_id,
            kids: Vec::new(),
            info: None,
        }
    }

    /// Moves the pages of `chunk` (and everything they use) to the end of the document. The
    /// first chunk's document information dictionary becomes the document's.
    pub(crate) fn add(&mut self, mut chunk: Document) -> Result<(), ReportError> {
        chunk.compress();
        chunk.renumber_objects_with(self.out.max_id + 1);
        let broken = |what: &str| ReportError::Pdf(format!("printpdf chunk without {what}"));
        let root = chunk
            .trailer
            .get(b"Root")
            .and_then(Object::as_reference)
            .map_err(|_| broken("a catalog"))?;
        let chunk_pages = chunk
            .get_dictionary(root)
            .and_then(|catalog| catalog.get(b"Pages"))
            .and_then(Object::as_reference)
            .map_err(|_| broken("a page tree"))?;
        let info = chunk
            .trailer
            .get(b"Info")
            .and_then(Object::as_reference)
            .ok();
        let page_ids: Vec<ObjectId> = chunk.get_pages().into_values().collect();

        self.out.max_id = self.out.max_id.max(chunk.max_id);
        for (id, object) in std::mem::take(&mut chunk.objects) {
            let keep_info = self.info.is_none() && Some(id) == info;
            if id == root || id == chunk_pages || (Some(id) == info && !keep_info) {
                continue;
            }
            self.out.objects.insert(id, object);
        }
        if self.info.is_none() {
            self.info = info;
        }
        for id in page_ids {
            if let Some(Object::Dictionary(page)) = self.out.objects.get_mut(&id) {
                page.set("Parent", Object::Reference(self.pages_id));
            }
            self.kids.push(Object::Reference(id));
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<Vec<u8>, ReportError> {
        let count = self.kids.len() as i64;
        let pages = Dictionary::from_iter(vec![
            ("Type", Object::Name(b"Pages".to_vec())),
            ("Count", Object::Integer(count)),
            ("Kids", Object::Array(self.kids)),
        ]);
        self.out
            .objects
            .insert(self.pages_id, Object::Dictionary(pages));
        let catalog = self.out.add_object(Dictionary::from_iter(vec![
            ("Type", Object::Name(b"Catalog".to_vec())),
            ("Pages", Object::Reference(self.pages_id)),
        ]));
        self.out.trailer.set("Root", Object::Reference(catalog));
        if let Some(info) = self.info {
            self.out.trailer.set("Info", Object::Reference(info));
        }
        let mut bytes = Vec::new();
        self.out
            .save_to(&mut bytes)
            .map_err(|e| ReportError::Pdf(e.to_string()))?;
        Ok(bytes)
    }
}
