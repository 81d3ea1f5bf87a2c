//! Import of a paper register typed into CSV: every line checked locally first, passports
//! sealed and blind indexes computed here, good lines sent in all-or-nothing batches, and a
//! journal beside the file so that a re-run after an interruption never duplicates a patient.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use client_crypto::Pseudonym;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api::NewPatient;
use crate::csvfile::{self, Encoding};
use crate::error::{Error, Result};
use crate::keys::Clinic;
use crate::patients::{for_each_page, seal};
use crate::refs::Books;
use crate::row::{self, Row};

/// The server's largest batch (`IMPORT_BATCH_MAX`).
pub const MAX_BATCH: usize = 5000;

/// The most one import request's body may weigh. The server refuses a body over 32 MiB
/// (`IMPORT_BODY_LIMIT`, a 413), and 5000 passports of up to 64 KiB each would weigh far
/// more: batches are cut by size as well, with room left under that limit.
pub const MAX_BATCH_BYTES: usize = 24 * 1024 * 1024;

/// `{"patients":[]}`: what [`crate::api::Api::import`] wraps the sealed patients in.
const BODY_FRAMING: usize = r#"{"patients":[]}"#.len();

/// A line that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub column: String,
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.reason
        )
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Patients per request, 1 to [`MAX_BATCH`].
    pub batch_size: usize,
    /// Bytes of one request's body, up to [`MAX_BATCH_BYTES`] (less for a proxy in front of
    /// the server that allows less). A batch holds at least one patient however large: a
    /// patient alone over the budget is sent alone, and the server decides.
    pub batch_bytes: usize,
    /// Show a progress bar (it is hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// The file's text encoding (a file in another one is refused, see `csvfile::decode`).
    pub encoding: Encoding,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch_size: MAX_BATCH,
            batch_bytes: MAX_BATCH_BYTES,
            progress: true,
            encoding: Encoding::Utf8,
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    /// Patients created by this run.
    pub imported: usize,
    /// Lines skipped because an earlier run imported them.
    pub already_done: usize,
    /// Lines of an interrupted batch found on the server and recorded as done.
    pub recovered: usize,
    /// Lines not imported, in line order.
    pub errors: Vec<LineError>,
}

/// A line the journal knows, by the hash of its content (so a file whose bad lines were fixed
/// or removed still resumes).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct JournalEntry {
    pub line: u64,
    pub row_sha256: String,
    pub pseudonym: String,
    /// Absent while the batch's answer is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
}

/// `FILE.csv.palreg-import.json`.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Journal {
    pub file_sha256: String,
    pub server: String,
    pub institution_id: i64,
    pub done: Vec<JournalEntry>,
    /// The batch in flight: sent, answer not yet recorded.
    #[serde(default)]
    pub pending: Vec<JournalEntry>,
}

pub fn journal_path(csv: &Path) -> PathBuf {
    let mut name = csv.as_os_str().to_owned();
    name.push(".palreg-import.json");
    PathBuf::from(name)
}

impl Journal {
    fn load(path: &Path) -> Result<Option<Journal>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Written to a temporary file and renamed, so a crash leaves the old or the new journal;
    /// durably (the folder synced after the rename), since a batch must be on record as
    /// pending before it is sent: a journal that lost that record to a power cut would let
    /// the next run send the batch again under new pseudonyms, a second copy of each patient.
    fn save(&self, path: &Path) -> Result<()> {
        crate::config::write_private_atomic(path, &serde_json::to_vec_pretty(self)?)
    }
}

fn row_hash(cells: &[String]) -> String {
    let mut h = Sha256::new();
    for c in cells {
        h.update((c.trim().len() as u64).to_be_bytes());
        h.update(c.trim().as_bytes());
    }
    hex::encode(h.finalize())
}

struct Good {
    line: u64,
    hash: String,
    row: Row,
}

/// Imports `csv` into the clinic's register. Bad lines are reported, not sent.
pub fn run(clinic: &Clinic, csv: &Path, options: &Options) -> Result<Report> {
    // Every line is sealed under it: refused before anything is read or sent when the key
    // chain does not vouch for the newest version held.
    clinic.key()?;
    let batch_size = options.batch_size.clamp(1, MAX_BATCH);
    let batch_bytes = options.batch_bytes.clamp(1, MAX_BATCH_BYTES);
    let bytes = std::fs::read(csv)?;
    // The file as it is on disk; lines are then known by the hash of their decoded cells, so
    // a line is the same line whether the file was read as Windows-1251 or re-saved as UTF-8.
    let file_sha256 = hex::encode(Sha256::digest(&bytes));
    let (lines, unreadable) = csvfile::read(&bytes, options.encoding)?;
    let books = Books::load(&clinic.api)?;
    let today = crate::dates::today_iso();

    let mut report = Report::default();
    report
        .errors
        .extend(unreadable.into_iter().map(|b| LineError {
            line: b.number,
            column: "-".into(),
            reason: b.reason,
        }));
    let mut good = Vec::new();
    for line in &lines {
        match row::parse(line, &books, &today) {
            Ok(row) => good.push(Good {
                line: line.number,
                hash: row_hash(&line.cells),
                row,
            }),
            Err(faults) => report.errors.extend(faults.into_iter().map(|f| LineError {
                line: line.number,
                column: f.column,
                reason: f.reason,
            })),
        }
    }

    let journal_file = journal_path(csv);
    let mut journal = match Journal::load(&journal_file)? {
        Some(j) if j.institution_id != clinic.institution_id || j.server != clinic.api.base() => {
            return Err(Error::usage(format!(
                "{} belongs to an import into another server or institution; move it away to start afresh",
                journal_file.display()
            )));
        }
        Some(j) => j,
        None => Journal {
            server: clinic.api.base().to_string(),
            institution_id: clinic.institution_id,
            ..Journal::default()
        },
    };
    journal.file_sha256 = file_sha256;
    report.recovered = recover_pending(clinic, &mut journal, &journal_file)?;

    // Skip lines already imported: by content, as many times as they were imported.
    let mut done: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &journal.done {
        *done.entry(e.row_sha256.as_str()).or_default() += 1;
    }
    let mut todo = Vec::new();
    for g in good {
        match done.get_mut(g.hash.as_str()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                report.already_done += 1;
            }
            _ => todo.push(g),
        }
    }

    let bar = progress_bar(todo.len(), options.progress);
    let mut queue = todo.as_slice();
    while !queue.is_empty() {
        let batch = take_batch(clinic, queue, batch_size, batch_bytes)?;
        let (taken, rest) = queue.split_at(batch.entries.len());
        queue = rest;
        let sent = send_batch(clinic, batch, &mut journal, &journal_file, &mut report)?;
        bar.inc(taken.len() as u64);
        report.imported += sent;
    }
    bar.finish_and_clear();
    report.errors.sort_by_key(|e| e.line);
    Ok(report)
}

fn progress_bar(len: usize, wanted: bool) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if !wanted || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} patients ({eta} left)") {
        bar.set_style(style);
    }
    bar
}

/// A batch sealed for sending: the request's patients, and the journal entries they become
/// (in the same order).
#[derive(Default)]
struct Batch {
    bodies: Vec<NewPatient>,
    entries: Vec<JournalEntry>,
}

/// Seals the lines at the head of `queue` one by one, up to `max_rows`, and closes the batch
/// before a line that would take the request's body over `max_bytes` (that line, sealed
/// again, opens the next batch). The first line is always taken, so that every batch makes
/// progress.
fn take_batch(clinic: &Clinic, queue: &[Good], max_rows: usize, max_bytes: usize) -> Result<Batch> {
    let mut batch = Batch::default();
    let mut body = BodySize::new(max_bytes);
    for g in queue.iter().take(max_rows) {
        let pseudonym = Pseudonym::generate()?;
        let sealed = seal(clinic, &pseudonym, &g.row.passport, g.row.record.clone())?;
        if !body.admit(serde_json::to_vec(&sealed)?.len()) {
            break;
        }
        batch.bodies.push(sealed);
        batch.entries.push(JournalEntry {
            line: g.line,
            row_sha256: g.hash.clone(),
            pseudonym: pseudonym.as_str().to_string(),
            id: None,
        });
    }
    Ok(batch)
}

/// The length of an import request's body (`{"patients":[...]}`, as [`crate::api::Api::import`]
/// serializes it) as sealed patients join it, against a budget.
struct BodySize {
    bytes: usize,
    patients: usize,
    max_bytes: usize,
}

impl BodySize {
    fn new(max_bytes: usize) -> Self {
        Self {
            bytes: BODY_FRAMING,
            patients: 0,
            max_bytes,
        }
    }

    /// Counts a patient of `len` serialized bytes (and the comma before it) if the body stays
    /// within the budget. The first is counted whatever its size: refusing it would leave it
    /// unsent forever; the server takes it, or refuses the body as too large (a 413 stops
    /// the import).
    fn admit(&mut self, len: usize) -> bool {
        let bytes = self
            .bytes
            .saturating_add(len)
            .saturating_add(usize::from(self.patients > 0));
        if self.patients > 0 && bytes > self.max_bytes {
            return false;
        }
        self.bytes = bytes;
        self.patients += 1;
        true
    }
}

/// Sends one batch (retrying without the lines the server refuses); records it in the journal
/// before sending and after the answer. Returns how many patients it created.
fn send_batch(
    clinic: &Clinic,
    batch: Batch,
    journal: &mut Journal,
    journal_file: &Path,
    report: &mut Report,
) -> Result<usize> {
    let Batch {
        mut bodies,
        mut entries,
    } = batch;
    while !bodies.is_empty() {
        journal.pending = std::mem::take(&mut entries);
        journal.save(journal_file)?;
        match clinic.api.import(&bodies) {
            Ok(ids) => {
                let mut entries = std::mem::take(&mut journal.pending);
                for (e, id) in entries.iter_mut().zip(ids) {
                    e.id = Some(id);
                }
                let n = entries.len();
                journal.done.extend(entries);
                journal.save(journal_file)?;
                return Ok(n);
            }
            // The server names the refused patient; nothing of the batch was written, so the
            // others go again as they were sealed.
            Err(Error::Api {
                status,
                code,
                message,
            }) if (400..500).contains(&status)
                && refused_index(&message).is_some_and(|i| i < bodies.len()) =>
            {
                let i = refused_index(&message).unwrap_or(0);
                let reason = message
                    .split_once("]: ")
                    .map_or(message.as_str(), |(_, m)| m)
                    .to_string();
                entries = std::mem::take(&mut journal.pending);
                let refused = entries.remove(i);
                bodies.remove(i);
                report.errors.push(LineError {
                    line: refused.line,
                    column: "-".into(),
                    reason: format!("refused by the server ({code}): {reason}"),
                });
                journal.save(journal_file)?;
            }
            // A 4xx is the server's refusal: the transaction did not commit.
            Err(e @ Error::Api { status, .. }) if (400..500).contains(&status) => {
                journal.pending.clear();
                journal.save(journal_file)?;
                return Err(e);
            }
            // No answer, or a 5xx (a proxy's 502/504 may come after the server committed): the
            // batch may or may not be written; the journal keeps it pending, and the next run
            // looks its pseudonyms up before sending anything (`recover_pending`).
            Err(e) => return Err(e),
        }
    }
    Ok(0)
}

/// `patients[12]: ...` → 12.
fn refused_index(message: &str) -> Option<usize> {
    message
        .strip_prefix("patients[")?
        .split_once(']')?
        .0
        .parse()
        .ok()
}

/// A batch sent without a recorded answer was written whole or not at all (the server's
/// import is one transaction): look its pseudonyms up among the institution's patients.
fn recover_pending(clinic: &Clinic, journal: &mut Journal, path: &Path) -> Result<usize> {
    if journal.pending.is_empty() {
        return Ok(0);
    }
    let mut wanted: BTreeMap<String, usize> = journal
        .pending
        .iter()
        .enumerate()
        .map(|(i, e)| (e.pseudonym.clone(), i))
        .collect();
    let mut found: BTreeMap<usize, i64> = BTreeMap::new();
    for_each_page(clinic, json!({"limit": 500}), |p| {
        if let Some(i) = wanted.remove(&p.pseudonym) {
            found.insert(i, p.id);
        }
        Ok(())
    })?;
    let pending = std::mem::take(&mut journal.pending);
    let mut recovered = 0;
    for (i, mut e) in pending.into_iter().enumerate() {
        if let Some(id) = found.get(&i) {
            e.id = Some(*id);
            journal.done.push(e);
            recovered += 1;
        }
    }
    journal.save(path)?;
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_index_reads_the_server_message() {
        assert_eq!(refused_index("patients[12]: bad sex"), Some(12));
        assert_eq!(refused_index("something else"), None);
    }

    fn patient(passport: &str) -> NewPatient {
        NewPatient {
            pseudonym: "p-\"quoted\"-пациент".into(),
            passport: passport.into(),
            blind_indexes: vec!["surname:ab12".into(), "dob:\\x".into()],
            record: crate::api::Record {
                sex: "F".into(),
                birth_year: 1948,
                district_id: None,
                diagnosis_id: 42,
                care_form_id: Some(-7),
                status: "registered".into(),
                registered_on: "2025-02-01".into(),
                discharged_on: None,
                deceased_on: Some("2025-08-20".into()),
                needs: vec![1, 20, 300],
            },
        }
    }

    fn len(p: &NewPatient) -> usize {
        serde_json::to_vec(p).unwrap().len()
    }

    #[test]
    fn the_body_is_measured_as_the_api_sends_it() {
        let mut batch: Vec<NewPatient> = Vec::new();
        let mut body = BodySize::new(usize::MAX);
        assert_eq!(
            body.bytes,
            serde_json::to_string(&json!({ "patients": batch }))
                .unwrap()
                .len()
        );
        for passport in ["", "short", &"x".repeat(1000), "é\n\u{1}"] {
            let p = patient(passport);
            assert!(body.admit(len(&p)));
            batch.push(p);
            let sent = serde_json::to_string(&json!({ "patients": batch })).unwrap();
            assert_eq!(body.bytes, sent.len(), "{} patients", batch.len());
        }
    }

    #[test]
    fn a_batch_closes_before_the_patient_that_would_overflow_it() {
        let p = len(&patient("sealed"));
        let two = BODY_FRAMING + 2 * p + 1;
        let mut body = BodySize::new(two);
        assert!(body.admit(p) && body.admit(p), "two fit exactly");
        assert!(!body.admit(p), "the third waits for the next batch");
        assert_eq!(body.bytes, two);
    }

    #[test]
    fn a_patient_alone_over_the_budget_is_still_sent_alone() {
        let mut body = BodySize::new(1);
        assert!(
            body.admit(64 * 1024),
            "the first is taken, whatever its size"
        );
        assert!(!body.admit(1), "and nothing joins it");
        assert_eq!(body.patients, 1);
    }
}
