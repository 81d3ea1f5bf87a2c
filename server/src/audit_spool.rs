//! The audit entries of reads on SQLite: written to a spool file before the answer, folded into
//! the hash-chained log every second or so.
//!
//! Each group commit of [`crate::audit_queue`] was a write transaction of its own: six pages of
//! the log, its indexes and its head, and a dozen `pwrite`s. On SQLite it also ends the page
//! cache of every reading connection, which starts its next transaction from an empty cache when
//! the file has changed since its last one. So every read of patient data paid for its entry
//! twice. Here a read's entry is one line appended to a file (one `write`), and a folder thread
//! moves the lines into the log in one transaction every so often (`PALREG_AUDIT_FOLD_MS`, a
//! second by default).
//!
//! Durability is the same as the log's own: the line is written before the answer leaves, and
//! survives the server's crash as a commit does (the database runs with `synchronous = NORMAL`,
//! whose WAL is not flushed to disk at each commit either). What changes is *when* an entry takes
//! its place in the chain: at the fold, up to the fold interval after the read (its time says
//! when the read was). A change folds the spool before its own transaction, so every entry of a
//! request answered before the change began comes before it in the chain; only requests that
//! overlapped may come in either order. The audit listing folds first, so an administrator never
//! misses an entry.
//!
//! The spool lives beside the database file (`palreg.db-audit/`), one file per *generation*
//! (`00000000000000000042.jsonl`, a JSON entry per line). A fold closes the generation being
//! written and folds it in one transaction that also records, in `settings`, the last generation
//! folded; the file is deleted after the commit. At start, before the server answers anything,
//! [`Spool::open`] folds every generation newer than the recorded one that a crash left behind
//! and deletes the older ones, so an entry is folded once, never twice, never lost. A line
//! torn by the crash (the last, without its newline) is the request that was never answered.
//!
//! PostgreSQL keeps the group commit: its replicas share no disk, and a commit there does not
//! empty anyone's cache.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::Connection;
use diesel::prelude::*;

use crate::audit_queue::Counters;
use crate::db::models::audit::{self, EntryRef, NewEntry};
use crate::db::{DbConn, Pool, WriteGate, write_conn};

/// Entries waiting at most (written but not yet folded, after failed folds too): past this,
/// reads are refused rather than kept in memory without end.
const MAX_WAITING: usize = 200_000;

/// Where `settings` keeps the last generation folded.
const FOLDED: &str = "audit_spool_folded";

/// One generation: its number, its lines (as in its file) and how many.
pub struct Generation {
    number: u64,
    lines: Vec<u8>,
    count: usize,
}

#[derive(Default)]
struct Writing {
    /// The generation being written.
    generation: u64,
    /// Its file, opened at its first entry.
    file: Option<File>,
    /// Its lines, as written to the file: kept as they are, not as entries, so that an entry
    /// is dropped by the request that made it and folded without copying its text.
    lines: Vec<u8>,
    count: usize,
    /// Closed generations not folded yet (a fold failed), oldest first.
    closed: VecDeque<Generation>,
}

impl Writing {
    fn waiting(&self) -> usize {
        self.count + self.closed.iter().map(|g| g.count).sum::<usize>()
    }

    /// Closes the generation being written (if it has entries): the next entry starts a file.
    fn close(&mut self) {
        if self.count > 0 {
            self.closed.push_back(Generation {
                number: self.generation,
                lines: std::mem::take(&mut self.lines),
                count: std::mem::take(&mut self.count),
            });
            self.file = None;
            self.generation += 1;
        }
    }
}

/// The spool of one SQLite database file.
pub struct Spool {
    dir: PathBuf,
    pool: Pool,
    write_gate: Option<WriteGate>,
    counters: Arc<Counters>,
    writing: Mutex<Writing>,
    /// One fold at a time (the folder's, the audit listing's, the last one at shutdown).
    folding: Mutex<()>,
}

impl Spool {
    /// The spool of the database at `database`: folds what an earlier run left in it, and is
    /// then ready to take entries.
    pub fn open(
        database: &Path,
        pool: Pool,
        write_gate: Option<WriteGate>,
        counters: Arc<Counters>,
    ) -> anyhow::Result<Self> {
        let dir = dir_of(database);
        crate::secrets::create_private_dir(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let spool = Self {
            dir,
            pool,
            write_gate,
            counters,
            writing: Mutex::default(),
            folding: Mutex::new(()),
        };
        let next = spool.recover()?;
        spool.lock().generation = next;
        Ok(spool)
    }

    /// Writes `entry` to the spool; when this returns, the entry is in the file.
    pub fn record(&self, mut entry: NewEntry) -> anyhow::Result<()> {
        // The time of the read, not of the fold.
        entry.at.get_or_insert_with(crate::db::models::now);
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        let mut writing = self.lock();
        if writing.waiting() >= MAX_WAITING {
            anyhow::bail!(
                "{} audit entries wait to be folded into the log (is the database writable?)",
                writing.waiting()
            );
        }
        if writing.file.is_none() {
            let path = self.file_of(writing.generation);
            writing.file = Some(crate::secrets::create_private_file(&path).map_err(|e| {
                anyhow::anyhow!("cannot create the audit spool {}: {e}", path.display())
            })?);
        }
        let written = writing
            .file
            .as_mut()
            .map_or(Ok(()), |file| file.write_all(&line));
        if let Err(err) = written {
            // Whatever part of the line reached the file is its torn end: the generation ends
            // there (a file of nothing but that is removed), and the next entry starts a new one.
            let path = self.file_of(writing.generation);
            if writing.count == 0 {
                let _ = std::fs::remove_file(&path);
                writing.file = None;
                writing.generation += 1;
            } else {
                writing.close();
            }
            anyhow::bail!("cannot write to the audit spool {}: {err}", path.display());
        }
        writing.lines.extend_from_slice(&line);
        writing.count += 1;
        Ok(())
    }

    /// Folds every entry written so far into the log (each generation in its own transaction,
    /// oldest first). Blocking: call it off the async workers.
    pub fn fold(&self) -> anyhow::Result<()> {
        let _one = self.folding.lock().unwrap_or_else(|e| e.into_inner());
        let mut closed = {
            let mut writing = self.lock();
            writing.close();
            std::mem::take(&mut writing.closed)
        };
        while let Some(generation) = closed.pop_front() {
            if let Err(err) = self.fold_generation(&generation) {
                // Kept, in order, for the next fold; the entries written meanwhile are newer.
                closed.push_front(generation);
                let mut writing = self.lock();
                closed.append(&mut writing.closed);
                writing.closed = closed;
                return Err(err);
            }
            let _ = std::fs::remove_file(self.file_of(generation.number));
        }
        Ok(())
    }

    fn fold_generation(&self, generation: &Generation) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = (|| {
            let (entries, _) = parse(&generation.lines);
            let mut conn = write_conn(&self.pool, self.write_gate.as_deref())?;
            fold_on(&mut conn, generation.number, &entries)?;
            anyhow::Ok(())
        })();
        self.counters.count(generation.count, started.elapsed());
        result
    }

    /// Folds the generations a crash left behind and deletes them all; returns the generation
    /// to write next.
    fn recover(&self) -> anyhow::Result<u64> {
        let mut conn = write_conn(&self.pool, self.write_gate.as_deref())?;
        recover_into(&mut conn, &self.dir)
    }

    /// The generations found in the folder, oldest first.
    #[cfg(test)]
    fn generations(&self) -> anyhow::Result<Vec<u64>> {
        generations_in(&self.dir)
    }

    fn file_of(&self, generation: u64) -> PathBuf {
        file_in(&self.dir, generation)
    }

    fn lock(&self) -> MutexGuard<'_, Writing> {
        self.writing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the thread that folds every `every`; it folds one last time when the returned
    /// handle is dropped.
    pub fn start_folding(self: &Arc<Self>, every: Duration) -> Folding {
        let (stop, stopped) = mpsc::channel::<()>();
        let spool = self.clone();
        let thread = std::thread::Builder::new()
            .name("palreg-audit-fold".into())
            .spawn(move || {
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(every),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    );
                    if let Err(err) = spool.fold() {
                        tracing::error!(error = %err, "cannot fold the audit spool into the log; retrying");
                    }
                    if last {
                        break;
                    }
                }
            })
            .ok();
        Folding {
            stop: Some(stop),
            thread,
        }
    }
}

/// The spool folder of the SQLite database at `database`: `<database>-audit`.
pub fn dir_of(database: &Path) -> PathBuf {
    let mut dir = database.as_os_str().to_owned();
    dir.push("-audit");
    PathBuf::from(dir)
}

fn file_in(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:020}.jsonl"))
}

/// The generations found in a spool folder (none if there is no folder), oldest first.
fn generations_in(dir: &Path) -> anyhow::Result<Vec<u64>> {
    let items = match std::fs::read_dir(dir) {
        Ok(items) => items,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => anyhow::bail!("cannot read {}: {err}", dir.display()),
    };
    let mut found = Vec::new();
    for item in items {
        let name = item?.file_name();
        let generation = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(generation) = generation {
            found.push(generation);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Appends one generation's entries to the log on `conn` and records it folded, in one
/// transaction.
fn fold_on(conn: &mut DbConn, generation: u64, entries: &[EntryRef<'_>]) -> QueryResult<()> {
    conn.transaction(|conn| {
        audit::append_many(conn, entries)?;
        set_folded(conn, generation)
    })
}

/// Folds into the log on `conn` the generations in the spool folder `dir` that it has not
/// folded yet (a crash left them), oldest first, then deletes every generation file; returns
/// the generation to write next. Only while no server writes to the spool: at the start of
/// one, and by `palreg restore` before it sets the database aside.
pub fn recover_into(conn: &mut DbConn, dir: &Path) -> anyhow::Result<u64> {
    let folded = folded(conn)?;
    let mut last = folded;
    for generation in generations_in(dir)? {
        last = last.max(generation);
        let path = file_in(dir, generation);
        if generation > folded {
            let lines = read_generation(&path)?;
            let (entries, torn) = parse(&lines);
            if torn > 0 {
                tracing::warn!(path = %path.display(), torn, "an audit spool ended in a torn line (a request the crash cut short); the line is skipped");
            }
            tracing::info!(
                generation,
                entries = entries.len(),
                "folding the audit spool an earlier run left"
            );
            fold_on(conn, generation, &entries)?;
        }
        std::fs::remove_file(&path)
            .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", path.display()))?;
    }
    Ok(last + 1)
}

/// Folds into `copy`, a copy of a database made while a server may be running on it, the
/// generations of that database's spool (`spooled`, from [`read_spool`]) that the copy has not
/// folded: the reads answered before the copy was made are in it, as in the live log after its
/// next fold. The spool is read *before* the copy is made, so that a generation folded and
/// deleted by the server between the two is in the copy already; the spool is left as it is.
/// Returns the entries folded.
pub fn fold_into_copy(copy: &mut DbConn, spooled: Vec<Generation>) -> anyhow::Result<usize> {
    let folded = folded(copy)?;
    let mut count = 0;
    for generation in spooled.iter().filter(|g| g.number > folded) {
        let (entries, _) = parse(&generation.lines);
        fold_on(copy, generation.number, &entries)?;
        count += entries.len();
    }
    Ok(count)
}

/// Every entry in the spool of the database at `database`, by generation, oldest first, read
/// while a server may be writing to it and folding it: a generation deleted meanwhile is
/// skipped (it is in the log), and so is a line being written (the request is not answered
/// yet).
pub fn read_spool(database: &Path) -> anyhow::Result<Vec<Generation>> {
    let dir = dir_of(database);
    let mut spooled = Vec::new();
    for generation in generations_in(&dir)? {
        match read_generation(&file_in(&dir, generation)) {
            Ok(lines) => spooled.push(Generation {
                number: generation,
                count: lines.iter().filter(|b| **b == b'\n').count(),
                lines,
            }),
            Err(err)
                if err
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(spooled)
}

/// The lines of a spool file.
fn read_generation(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The entries of a spool's lines, borrowing their text, and how many lines could not be read
/// (a torn last line).
fn parse(lines: &[u8]) -> (Vec<EntryRef<'_>>, usize) {
    let mut entries = Vec::new();
    let mut torn = 0;
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<EntryRef>(line) {
            Ok(entry) => entries.push(entry),
            Err(_) => torn += 1,
        }
    }
    (entries, torn)
}

/// The last generation folded (0: none).
fn folded(conn: &mut DbConn) -> QueryResult<u64> {
    use crate::db::schema::settings;
    let value: Option<String> = settings::table
        .find(FOLDED)
        .select(settings::value)
        .first(conn)
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn set_folded(conn: &mut DbConn, generation: u64) -> QueryResult<()> {
    use diesel::sql_types::Text;
    diesel::sql_query(
        "INSERT INTO settings (name, value) VALUES (?, ?) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind::<Text, _>(FOLDED)
    .bind::<Text, _>(generation.to_string())
    .execute(conn)?;
    Ok(())
}

/// The folder thread; dropping it folds what is left and waits for the thread.
pub struct Folding {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Folding {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit_queue::tests::entry;

    struct Db {
        _dir: tempfile::TempDir,
        path: PathBuf,
        pool: Pool,
        gate: Option<WriteGate>,
    }

    fn db() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("palreg.db");
        let url = crate::db::DatabaseUrl::Sqlite(path.clone());
        let pool = crate::db::open(&url, 4, Default::default()).unwrap();
        let gate = crate::db::write_gate(&url, 2).unwrap();
        Db {
            _dir: dir,
            path,
            pool,
            gate,
        }
    }

    fn spool(db: &Db) -> Spool {
        Spool::open(&db.path, db.pool.clone(), db.gate.clone(), Arc::default()).unwrap()
    }

    /// The object ids in the log, in chain order, after checking the chain.
    fn logged(db: &Db) -> Vec<String> {
        let mut conn = db.pool.get().unwrap();
        let listed = audit::list(&mut conn, &Default::default(), 10_000).unwrap();
        assert_eq!(audit::verify(&mut conn).unwrap(), Ok(listed.len() as i64));
        listed
            .into_iter()
            .rev()
            .filter_map(|r| r.object_id)
            .collect()
    }

    fn files(spool: &Spool) -> Vec<u64> {
        spool.generations().unwrap()
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|n| n.to_string()).collect()
    }

    #[test]
    fn entries_are_in_the_file_at_once_and_in_the_chain_after_a_fold() {
        let db = db();
        let spool = spool(&db);
        let before = crate::db::models::now();
        for n in 0..3 {
            spool.record(entry(n)).unwrap();
        }
        assert!(logged(&db).is_empty());
        let generation = files(&spool);
        assert_eq!(generation.len(), 1);
        let lines = read_generation(&spool.file_of(generation[0])).unwrap();
        let (written, torn) = parse(&lines);
        assert_eq!((written.len(), torn), (3, 0));
        assert!(written.iter().all(|e| e.at.is_some_and(|at| at >= before)));
        spool.fold().unwrap();
        assert_eq!(logged(&db), ids(0..3));
        assert!(
            files(&spool).is_empty(),
            "a folded generation's file is removed"
        );
        // The time is the record's, not the fold's.
        let mut conn = db.pool.get().unwrap();
        let rows = audit::list(&mut conn, &Default::default(), 10).unwrap();
        assert!(
            rows.iter()
                .all(|r| Some(r.at) == written[0].at || r.at >= before)
        );
        spool.record(entry(3)).unwrap();
        spool.fold().unwrap();
        spool.fold().unwrap();
        assert_eq!(logged(&db), ids(0..4));
    }

    #[test]
    fn a_folded_entry_is_the_entry_recorded_to_the_last_character() {
        let db = db();
        let spool = spool(&db);
        let full = NewEntry {
            at: Some(crate::db::models::now()),
            actor_id: Some(7),
            actor_login: Some("врач-Иванова".into()),
            action: "patients.update".into(),
            object_type: "patient".into(),
            object_id: Some("42".into()),
            outcome: "ok".into(),
            client_addr: Some("203.0.113.9".into()),
            details: Some(
                "{\"changed\":[\"status\"],\"note\":\"quote \\\" tab \t nl \n 🩺\"}".into(),
            ),
            institution_id: Some(3),
        };
        let bare = entry(1);
        spool.record(full.clone()).unwrap();
        spool.record(bare.clone()).unwrap();
        // The text is borrowed from the line where it has no escapes, copied where it has.
        let lines = read_generation(&spool.file_of(files(&spool)[0])).unwrap();
        let (parsed, torn) = parse(&lines);
        assert_eq!(torn, 0);
        assert!(matches!(
            parsed[0].actor_login.as_ref().unwrap().0,
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(
            parsed[0].details.as_ref().unwrap().0,
            std::borrow::Cow::Owned(_)
        ));
        spool.fold().unwrap();
        let mut conn = db.pool.get().unwrap();
        let mut rows = audit::list(&mut conn, &Default::default(), 10).unwrap();
        rows.reverse();
        assert_eq!(rows.len(), 2);
        for (row, recorded) in rows.iter().zip([&full, &bare]) {
            let as_logged = NewEntry {
                at: Some(row.at),
                actor_id: row.actor_id,
                actor_login: row.actor_login.clone(),
                action: row.action.clone(),
                object_type: row.object_type.clone(),
                object_id: row.object_id.clone(),
                outcome: row.outcome.clone(),
                client_addr: row.client_addr.clone(),
                details: row.details.clone(),
                institution_id: row.institution_id,
            };
            let recorded = NewEntry {
                at: recorded.at.or(Some(row.at)),
                ..(*recorded).clone()
            };
            assert_eq!(format!("{as_logged:?}"), format!("{recorded:?}"));
        }
        assert_eq!(audit::verify(&mut conn).unwrap(), Ok(2));
    }

    #[test]
    fn a_crash_leaves_entries_that_the_next_start_folds_once() {
        let db = db();
        let first = spool(&db);
        first.record(entry(0)).unwrap();
        first.fold().unwrap();
        for n in 1..4 {
            first.record(entry(n)).unwrap();
        }
        let left = files(&first);
        assert_eq!(left.len(), 1);
        // The crash cut the last request short, half way through its line.
        let path = first.file_of(left[0]);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(br#"{"at":"2026-12-01T00:00:00","action":"patients.re"#)
            .unwrap();
        drop(first);

        let second = spool(&db);
        assert_eq!(
            logged(&db),
            ids(0..4),
            "each entry once, the torn line skipped"
        );
        assert!(files(&second).is_empty());
        second.record(entry(4)).unwrap();
        assert!(
            files(&second)[0] > left[0],
            "generations go on from the last"
        );
        second.fold().unwrap();
        assert_eq!(logged(&db), ids(0..5));
    }

    #[test]
    fn a_generation_folded_before_a_crash_is_not_folded_again() {
        let db = db();
        let first = spool(&db);
        first.record(entry(0)).unwrap();
        let generation = files(&first)[0];
        let kept = std::fs::read(first.file_of(generation)).unwrap();
        first.fold().unwrap();
        // The crash came between the commit and the removal of the file.
        std::fs::write(first.file_of(generation), kept).unwrap();
        drop(first);
        let second = spool(&db);
        assert_eq!(logged(&db), ids(0..1));
        assert!(files(&second).is_empty(), "the folded file is removed");
    }

    #[test]
    fn a_failed_fold_keeps_its_entries_for_the_next_in_order() {
        let db = db();
        let spool = spool(&db);
        spool.record(entry(0)).unwrap();
        let mut conn = db.pool.get().unwrap();
        let rename = |from: &str, to: &str| {
            diesel::connection::SimpleConnection::batch_execute(
                &mut *db.pool.get().unwrap(),
                &format!("ALTER TABLE {from} RENAME TO {to}"),
            )
            .unwrap()
        };
        rename("audit_head", "audit_head_away");
        assert!(spool.fold().is_err());
        spool.record(entry(1)).unwrap();
        assert!(spool.fold().is_err());
        assert_eq!(files(&spool).len(), 2, "both generations kept on disk");
        rename("audit_head_away", "audit_head");
        spool.record(entry(2)).unwrap();
        spool.fold().unwrap();
        assert_eq!(logged(&db), ids(0..3));
        assert!(files(&spool).is_empty());
        assert_eq!(folded(&mut conn).unwrap(), spool.lock().generation - 1);
    }

    #[test]
    fn the_folder_folds_on_its_own_and_once_more_when_stopped() {
        let db = db();
        let spool = Arc::new(spool(&db));
        let folding = spool.start_folding(Duration::from_millis(20));
        spool.record(entry(0)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while logged(&db).is_empty() {
            assert!(Instant::now() < deadline, "not folded within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        spool.record(entry(1)).unwrap();
        drop(folding);
        assert_eq!(logged(&db), ids(0..2));
        assert!(files(&spool).is_empty());
    }

    #[test]
    fn concurrent_records_and_folds_keep_every_entry_once() {
        let db = db();
        let spool = Arc::new(spool(&db));
        let folding = spool.start_folding(Duration::from_millis(20));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let spool = spool.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        spool.record(entry(t * 1000 + i)).unwrap();
                        if i % 25 == 0 {
                            spool.fold().unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(folding);
        let mut all = logged(&db);
        assert_eq!(all.len(), 400);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 400, "each entry once");
    }
}
