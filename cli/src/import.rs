//! Import of a paper register typed into CSV: every line checked locally first, passports
//! sealed and blind indexes computed here, good lines sent in all-or-nothing batches, and a
//! journal beside the file so that a re-run after an interruption never duplicates a patient.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read, Write};
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
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub line: u64,
    pub row_sha256: String,
    pub pseudonym: String,
    /// Absent while the batch's answer is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
}

/// What the journal `FILE.csv.palreg-import.json` records: the state an import resumes from.
///
/// On disk it is JSON Lines, appended to and never rewritten (a rewrite per batch would write
/// O(N²) bytes over an import of N lines): a header line ([`JOURNAL_NAME`], [`JOURNAL_VERSION`],
/// the server, the institution and the file's SHA-256), then one event a line, `{"pending":[...]}`,
/// `{"done":[...]}`, `{"cleared":true}` or `{"file_sha256":"..."}`, whose replay gives this
/// state. Its serde form is the earlier format, one JSON object rewritten whole: an import an
/// earlier palreg-client left unfinished is read in it, and rewritten once in the new one.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
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

/// The header's `journal`: tells the journal from any other JSON file (and from the earlier
/// format, whose first line is not a header).
pub const JOURNAL_NAME: &str = "palreg-import";
/// The header's `version`: this format, the first (version 1) being the single object.
pub const JOURNAL_VERSION: u32 = 2;

/// The journal's first line.
#[derive(Serialize, Deserialize, Debug)]
struct Header {
    journal: String,
    version: u32,
    server: String,
    institution_id: i64,
    file_sha256: String,
}

/// One line of the journal after its header, a change of [`Journal`]'s state
/// ([`Journal::apply`]). Externally tagged: `{"pending":[...]}`, `{"cleared":true}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Event {
    /// A batch about to be sent (entries without ids): it becomes the pending batch.
    Pending(Vec<JournalEntry>),
    /// The pending batch settled: these of its entries, with their ids, are done (all of them
    /// when the server answered; those found on the server when `recover_pending` looked),
    /// and nothing is pending any more.
    Done(Vec<JournalEntry>),
    /// The pending batch settled with nothing done: the server refused it (a 4xx, nothing
    /// committed), or `recover_pending` found none of it on the server. Always `true`.
    Cleared(bool),
    /// The file changed since the header was written (bad lines fixed between runs): its
    /// SHA-256 from now on.
    FileSha256(String),
}

impl Event {
    /// Why this client cannot have written the event, if it cannot.
    fn fault(&self) -> Option<&'static str> {
        match self {
            Event::Pending(entries) if entries.iter().any(|e| e.id.is_some()) => {
                Some("a pending entry has an id")
            }
            Event::Done(entries) if entries.iter().any(|e| e.id.is_none()) => {
                Some("a done entry has no id")
            }
            Event::Cleared(false) => Some("\"cleared\" is not true"),
            _ => None,
        }
    }
}

impl Journal {
    /// The journal at `path`, in either format (`None` when there is none). A torn last line
    /// is ignored (it was never acted on); any other unreadable line is an error naming it.
    pub fn read(path: &Path) -> Result<Option<Journal>> {
        Ok(replay(path)?.map(|(journal, _)| journal))
    }

    /// The state after `event`: replaying the journal's events applies them in order, and the
    /// import changes its state only by recording one ([`JournalFile::record`]), so what a
    /// re-run reads back is what the run held.
    fn apply(&mut self, event: Event) {
        match event {
            Event::Pending(entries) => self.pending = entries,
            Event::Done(entries) => {
                self.done.extend(entries);
                self.pending.clear();
            }
            Event::Cleared(_) => self.pending.clear(),
            Event::FileSha256(sha256) => self.file_sha256 = sha256,
        }
    }

    /// The journal written afresh: its header, then its done entries and its pending batch
    /// as one event each.
    fn snapshot(&self) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        push_line(
            &mut bytes,
            &Header {
                journal: JOURNAL_NAME.into(),
                version: JOURNAL_VERSION,
                server: self.server.clone(),
                institution_id: self.institution_id,
                file_sha256: self.file_sha256.clone(),
            },
        )?;
        if !self.done.is_empty() {
            push_line(&mut bytes, &Event::Done(self.done.clone()))?;
        }
        if !self.pending.is_empty() {
            push_line(&mut bytes, &Event::Pending(self.pending.clone()))?;
        }
        Ok(bytes)
    }
}

/// `value` as one line of JSON (compact: a string's line breaks are escaped) and its `\n`.
fn push_line(bytes: &mut Vec<u8>, value: &impl Serialize) -> Result<()> {
    serde_json::to_writer(&mut *bytes, value)?;
    bytes.push(b'\n');
    Ok(())
}

/// Where the journal's next event goes.
#[derive(Debug)]
enum Disk {
    /// No journal yet, or one in the earlier format: the first event is preceded by the whole
    /// state written afresh, atomically ([`Journal::snapshot`]).
    Rewrite,
    /// A journal in this format whose sound lines end at byte `len`; past it, a torn last line,
    /// cut off before anything is appended (else the next line would be glued to it).
    Lines { len: u64 },
    /// Open for appending.
    Open(std::fs::File),
}

/// The journal file, recording the import's events.
struct JournalFile {
    path: PathBuf,
    disk: Disk,
    /// The file hash the journal on disk holds last (its header's, or a later event's).
    recorded_sha256: String,
}

impl JournalFile {
    /// Appends `event` durably (written and synced before this returns: a batch must be on
    /// record as pending before it is sent, since a journal that lost that record to a power
    /// cut would let the next run send the batch again under new pseudonyms, a second copy of
    /// each patient), then applies it to `journal`. `journal` must be the state the file
    /// holds (its `file_sha256` aside): the first event of a run may write it afresh, so the
    /// import changes it by recording events only.
    fn record(&mut self, journal: &mut Journal, event: Event) -> Result<()> {
        let mut file = match std::mem::replace(&mut self.disk, Disk::Rewrite) {
            Disk::Open(file) => file,
            Disk::Lines { len } => {
                let file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
                if file.metadata()?.len() > len {
                    file.set_len(len)?;
                    file.sync_all()?;
                }
                file
            }
            Disk::Rewrite => {
                crate::config::write_private_atomic(&self.path, &journal.snapshot()?)?;
                #[cfg(unix)]
                if self.path.parent().is_some_and(|p| p.as_os_str().is_empty()) {
                    // `write_private_atomic` syncs the folder it names; a bare file name's
                    // folder is the current one.
                    std::fs::File::open(".")?.sync_all()?;
                }
                self.recorded_sha256.clone_from(&journal.file_sha256);
                std::fs::OpenOptions::new().append(true).open(&self.path)?
            }
        };
        let mut bytes = Vec::new();
        if self.recorded_sha256 != journal.file_sha256 {
            push_line(&mut bytes, &Event::FileSha256(journal.file_sha256.clone()))?;
        }
        push_line(&mut bytes, &event)?;
        file.write_all(&bytes)?;
        file.sync_data()?;
        self.disk = Disk::Open(file);
        self.recorded_sha256.clone_from(&journal.file_sha256);
        journal.apply(event);
        Ok(())
    }
}

/// The error for line `line` of the journal at `path`.
fn unreadable(path: &Path, line: u64, why: impl std::fmt::Display) -> Error {
    Error::usage(format!(
        "{}: line {line}: not an import journal record ({why}); refusing to guess what was imported",
        path.display()
    ))
}

/// Reads the journal at `path`: its state, and where appending resumes.
///
/// A last line that is incomplete (no `\n`) or does not parse is ignored: it can only be one
/// torn by a crash while it was appended, and nothing acted on it, since the import goes on
/// only once an append is written and synced ([`JournalFile::record`]). A torn `pending`
/// means its batch was never sent; a torn `done` leaves its `pending` line in force, which
/// the next run settles by looking the batch's pseudonyms up (`recover_pending`); a torn
/// `cleared` leaves a refused batch pending, which the server does not hold, so the look-up
/// drops it. A bad line anywhere else cannot come from a crash: it is an error, not a guess.
/// The header is never torn: it is written with the file, atomically.
fn replay(path: &Path) -> Result<Option<(Journal, Disk)>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let mut len = reader.read_until(b'\n', &mut line)? as u64;
    let header = match serde_json::from_slice::<Header>(&line) {
        Ok(header) => header,
        Err(header_error) => {
            // The earlier format: one object (pretty-printed, so its first line is `{`).
            reader.read_to_end(&mut line)?;
            return match serde_json::from_slice::<Journal>(&line) {
                Ok(journal) => Ok(Some((journal, Disk::Rewrite))),
                Err(_) => Err(unreadable(path, 1, header_error)),
            };
        }
    };
    if header.journal != JOURNAL_NAME {
        return Err(unreadable(path, 1, "not a palreg-import header"));
    }
    if header.version != JOURNAL_VERSION {
        return Err(unreadable(
            path,
            1,
            format!(
                "version {}, this palreg-client reads version {JOURNAL_VERSION}",
                header.version
            ),
        ));
    }
    if !line.ends_with(b"\n") {
        return Err(unreadable(path, 1, "the header has no line end"));
    }
    let mut journal = Journal {
        file_sha256: header.file_sha256,
        server: header.server,
        institution_id: header.institution_id,
        ..Journal::default()
    };
    let mut number = 1;
    // A bad line, forgiven if it turns out to be the last.
    let mut torn: Option<(u64, String)> = None;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if let Some((number, why)) = torn.take() {
            return Err(unreadable(path, number, why));
        }
        number += 1;
        let event = match line.strip_suffix(b"\n") {
            None => Err("no line end".to_string()),
            Some(text) => serde_json::from_slice::<Event>(text)
                .map_err(|e| e.to_string())
                .and_then(|event| match event.fault() {
                    Some(fault) => Err(fault.to_string()),
                    None => Ok(event),
                }),
        };
        match event {
            Ok(event) => {
                journal.apply(event);
                len += read as u64;
            }
            Err(why) => torn = Some((number, why)),
        }
    }
    Ok(Some((journal, Disk::Lines { len })))
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
    let (mut journal, disk) = match replay(&journal_file)? {
        Some((j, _))
            if j.institution_id != clinic.institution_id || j.server != clinic.api.base() =>
        {
            return Err(Error::usage(format!(
                "{} belongs to an import into another server or institution; move it away to start afresh",
                journal_file.display()
            )));
        }
        Some(read) => read,
        None => (
            Journal {
                server: clinic.api.base().to_string(),
                institution_id: clinic.institution_id,
                ..Journal::default()
            },
            Disk::Rewrite,
        ),
    };
    let mut log = JournalFile {
        path: journal_file,
        disk,
        recorded_sha256: journal.file_sha256.clone(),
    };
    journal.file_sha256 = file_sha256;
    report.recovered = recover_pending(clinic, &mut journal, &mut log)?;

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
        let sent = send_batch(clinic, batch, &mut journal, &mut log, &mut report)?;
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
    log: &mut JournalFile,
    report: &mut Report,
) -> Result<usize> {
    let Batch {
        mut bodies,
        mut entries,
    } = batch;
    while !bodies.is_empty() {
        log.record(journal, Event::Pending(std::mem::take(&mut entries)))?;
        match clinic.api.import(&bodies) {
            Ok(ids) => {
                let entries: Vec<JournalEntry> = journal
                    .pending
                    .iter()
                    .zip(ids)
                    .map(|(e, id)| JournalEntry {
                        id: Some(id),
                        ..e.clone()
                    })
                    .collect();
                let n = entries.len();
                log.record(journal, Event::Done(entries))?;
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
                entries = journal.pending.clone();
                let refused = entries.remove(i);
                bodies.remove(i);
                report.errors.push(LineError {
                    line: refused.line,
                    column: "-".into(),
                    reason: format!("refused by the server ({code}): {reason}"),
                });
                log.record(journal, Event::Cleared(true))?;
            }
            // A 4xx is the server's refusal: the transaction did not commit.
            Err(e @ Error::Api { status, .. }) if (400..500).contains(&status) => {
                log.record(journal, Event::Cleared(true))?;
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
fn recover_pending(clinic: &Clinic, journal: &mut Journal, log: &mut JournalFile) -> Result<usize> {
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
    let settled: Vec<JournalEntry> = journal
        .pending
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            found.get(&i).map(|id| JournalEntry {
                id: Some(*id),
                ..e.clone()
            })
        })
        .collect();
    let recovered = settled.len();
    let event = if settled.is_empty() {
        Event::Cleared(true)
    } else {
        Event::Done(settled)
    };
    log.record(journal, event)?;
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: u64, id: Option<i64>) -> JournalEntry {
        JournalEntry {
            line,
            row_sha256: format!("row{line}"),
            pseudonym: format!("p{line}"),
            id,
        }
    }

    fn fresh(path: &Path) -> (Journal, JournalFile) {
        let journal = Journal {
            file_sha256: "f1".into(),
            server: "https://palreg.test".into(),
            institution_id: 7,
            ..Journal::default()
        };
        let log = JournalFile {
            path: path.to_path_buf(),
            disk: Disk::Rewrite,
            recorded_sha256: String::new(),
        };
        (journal, log)
    }

    #[test]
    fn replaying_the_recorded_events_gives_the_state_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv.palreg-import.json");
        let (mut journal, mut log) = fresh(&path);
        let events = [
            Event::Pending(vec![entry(2, None), entry(3, None)]),
            Event::Done(vec![entry(2, Some(20)), entry(3, Some(30))]),
            Event::Pending(vec![entry(4, None), entry(5, None)]),
            Event::Cleared(true),
            Event::Pending(vec![entry(5, None)]),
            Event::Done(vec![]),
            Event::Pending(vec![entry(6, None)]),
        ];
        let mut before = Vec::new();
        for (i, event) in events.into_iter().enumerate() {
            if i == 4 {
                journal.file_sha256 = "f2".into();
            }
            log.record(&mut journal, event).unwrap();
            assert_eq!(Journal::read(&path).unwrap().as_ref(), Some(&journal));
            let now = std::fs::read(&path).unwrap();
            assert!(now.starts_with(&before), "event {i} rewrote the journal");
            before = now;
        }
        assert_eq!(journal.done.len(), 2);
        assert_eq!(journal.pending, vec![entry(6, None)]);
        assert_eq!(journal.file_sha256, "f2");
        let text = String::from_utf8(before).unwrap();
        let kinds: Vec<String> = text
            .lines()
            .skip(1)
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object().unwrap().keys().cloned().collect()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "pending",
                "done",
                "pending",
                "cleared",
                "file_sha256",
                "pending",
                "done",
                "pending"
            ]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// A journal in this format: its header and `events`, each a line of text as given.
    fn written(path: &Path, events: &[&str]) -> Journal {
        let (journal, _) = fresh(path);
        let mut text = String::from_utf8(journal.snapshot().unwrap()).unwrap();
        for e in events {
            text.push_str(e);
        }
        std::fs::write(path, text).unwrap();
        journal
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_off_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv.palreg-import.json");
        let pending = r#"{"pending":[{"line":2,"row_sha256":"row2","pseudonym":"p2"}]}"#;
        let done = r#"{"done":[{"line":2,"row_sha256":"row2","pseudonym":"p2","id":20}]}"#;
        // Torn mid-line, torn just before its line end, and garbage ending a line.
        for tail in [&done[..20], done, "\0\0\0\n"] {
            let mut journal = written(&path, &[pending, "\n", tail]);
            journal.pending = vec![entry(2, None)];
            assert_eq!(
                Journal::read(&path).unwrap(),
                Some(journal.clone()),
                "{tail}"
            );

            // The next append goes after the last sound line, not after the fragment.
            let (mut read, disk) = replay(&path).unwrap().unwrap();
            let mut log = JournalFile {
                path: path.clone(),
                disk,
                recorded_sha256: read.file_sha256.clone(),
            };
            log.record(&mut read, Event::Done(vec![entry(2, Some(20))]))
                .unwrap();
            assert_eq!(Journal::read(&path).unwrap(), Some(read.clone()));
            assert_eq!(read.done, vec![entry(2, Some(20))]);
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.lines().count(), 3, "{text}");
            assert!(text.ends_with(&format!("{pending}\n{done}\n")), "{text}");
        }
    }

    #[test]
    fn a_bad_line_before_the_last_is_refused_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.csv.palreg-import.json");
        let pending = r#"{"pending":[{"line":2,"row_sha256":"row2","pseudonym":"p2"}]}"#;
        let no_id = r#"{"done":[{"line":2,"row_sha256":"row2","pseudonym":"p2"}]}"#;
        for bad in [
            "{\"pend",
            "",
            no_id,
            r#"{"cleared":false}"#,
            r#"{"other":1}"#,
        ] {
            written(
                &path,
                &[pending, "\n", bad, "\n", r#"{"cleared":true}"#, "\n"],
            );
            let error = Journal::read(&path).unwrap_err().to_string();
            assert!(
                error.contains(&path.display().to_string()) && error.contains("line 3"),
                "{bad}: {error}"
            );
        }
        std::fs::write(&path, "{\"journal\":\"palreg-import\",\"version\":3}\n").unwrap();
        let error = Journal::read(&path).unwrap_err().to_string();
        assert!(error.contains("line 1"), "{error}");
    }

    #[test]
    fn a_journal_in_the_earlier_format_is_read_then_rewritten_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.csv.palreg-import.json");
        let (mut old, mut log) = fresh(&path);
        old.done = vec![entry(2, Some(20)), entry(3, Some(30))];
        old.pending = vec![entry(4, None)];
        for bytes in [
            serde_json::to_vec_pretty(&old).unwrap(),
            serde_json::to_vec(&old).unwrap(),
        ] {
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(Journal::read(&path).unwrap(), Some(old.clone()));
        }
        let (mut journal, disk) = replay(&path).unwrap().unwrap();
        assert!(matches!(disk, Disk::Rewrite));
        log.disk = disk;
        log.record(&mut journal, Event::Done(vec![entry(4, Some(40))]))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "header, done, pending, done: {text}");
        assert!(lines[0].contains(r#""journal":"palreg-import","version":2"#));
        assert_eq!(Journal::read(&path).unwrap(), Some(journal.clone()));
        assert_eq!(journal.done.len(), 3);
        assert!(journal.pending.is_empty());
    }

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
