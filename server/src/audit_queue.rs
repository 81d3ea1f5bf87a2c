//! Group commit of the audit entries that are not part of a change: reads, searches, refusals
//! outside a change, sign-in failures.
//!
//! Every such request used to open a write transaction of its own just to append one entry.
//! Here the entries that wait together are chained in one transaction and committed once; each
//! request waits until *its* entry is committed, so nothing is answered before its trace is
//! durable, while N concurrent reads cost one write transaction instead of N.
//!
//! There is no writer thread: the first request to find no commit under way becomes the leader.
//! It takes every entry waiting (its own among them), commits them on its own thread, and wakes
//! the others; an entry that arrives meanwhile waits for the next leader, which is the first of
//! the waiters to wake. A lone request so commits its own entry without handing it to another
//! thread and back (two context switches that cost more than the append). Nothing waits on
//! purpose to fill a batch.
//!
//! Changes still append their entry inside their own transaction ([`crate::routes::audited`]):
//! a change and its trace commit or roll back together.
//!
//! On SQLite the entries go to the [`Spool`] instead, a file folded into the log a few times a
//! second (see its module for why and what it keeps).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use diesel::Connection;

use crate::audit_spool::{Folding, Spool};
use crate::db::models::audit::{self, NewEntry};
use crate::db::{Pool, WriteGate, write_conn};
use crate::error::{ApiError, ApiResult};

/// The most entries one transaction takes; more wait for the next.
const MAX_BATCH: usize = 256;

/// Where a waiting request finds the outcome of the commit that held its entry.
type Outcome = Arc<OnceLock<Result<(), String>>>;

#[derive(Default)]
struct Waiting {
    entries: Vec<(NewEntry, Outcome)>,
    /// A leader is committing a batch.
    committing: bool,
}

/// Shared by every worker.
pub struct AuditQueue {
    pool: Pool,
    write_gate: Option<WriteGate>,
    waiting: Mutex<Waiting>,
    /// Signalled when a batch is committed (or failed).
    committed: Condvar,
    counters: Arc<Counters>,
    /// SQLite: where the entries go instead of a transaction each.
    spool: Option<Arc<Spool>>,
}

/// The transactions that appended entries, for [`AuditQueue::stats`].
#[derive(Default)]
pub struct Counters {
    batches: AtomicU64,
    entries: AtomicU64,
    commit_nanos: AtomicU64,
}

impl Counters {
    /// One transaction of `entries` entries that took `took`.
    pub fn count(&self, entries: usize, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.commit_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.entries.fetch_add(entries as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the group commit has done since the queue was made (see [`AuditQueue::stats`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AuditQueueStats {
    /// Transactions committed (or failed).
    pub batches: u64,
    /// Entries they held.
    pub entries: u64,
    /// Time the leaders spent in them, from waiting for the write turn to the end of `COMMIT`.
    pub commit_time: Duration,
}

impl std::ops::AddAssign for AuditQueueStats {
    fn add_assign(&mut self, other: Self) {
        self.batches += other.batches;
        self.entries += other.entries;
        self.commit_time += other.commit_time;
    }
}

impl AuditQueueStats {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            batches: self.batches.saturating_sub(earlier.batches),
            entries: self.entries.saturating_sub(earlier.entries),
            commit_time: self.commit_time.saturating_sub(earlier.commit_time),
        }
    }

    /// Entries per transaction: how much the group commit groups.
    pub fn entries_per_batch(&self) -> f64 {
        self.entries as f64 / self.batches.max(1) as f64
    }

    /// A transaction's mean time.
    pub fn mean_commit(&self) -> Duration {
        self.commit_time / u32::try_from(self.batches.max(1)).unwrap_or(u32::MAX)
    }
}

impl AuditQueue {
    /// A group commit into the log. `write_gate` is the SQLite writers' in-process turn
    /// ([`crate::db::write_gate`]); a leader takes it for its batch.
    pub fn new(pool: Pool, write_gate: Option<WriteGate>) -> Self {
        Self {
            pool,
            write_gate,
            waiting: Mutex::new(Waiting::default()),
            committed: Condvar::new(),
            counters: Arc::default(),
            spool: None,
        }
    }

    /// The queue of a database: on SQLite through the spool beside the file at `url` (which
    /// this folds first if an earlier run left entries in it), on PostgreSQL a group commit.
    pub fn open(
        url: &crate::db::DatabaseUrl,
        pool: Pool,
        write_gate: Option<WriteGate>,
    ) -> anyhow::Result<Self> {
        let mut queue = Self::new(pool, write_gate);
        if let crate::db::DatabaseUrl::Sqlite(path) = url {
            queue.spool = Some(Arc::new(Spool::open(
                path,
                queue.pool.clone(),
                queue.write_gate.clone(),
                queue.counters.clone(),
            )?));
        }
        Ok(queue)
    }

    /// Starts folding the spool (SQLite) every `every`; the handle folds what is left when
    /// dropped.
    pub fn start_folding(&self, every: Duration) -> Option<Folding> {
        self.spool.as_ref().map(|spool| spool.start_folding(every))
    }

    /// Brings the log up to date: folds the spool (a no-op on PostgreSQL, whose entries are
    /// committed before their requests are answered). Blocking.
    pub fn flush(&self) -> ApiResult<()> {
        match &self.spool {
            Some(spool) => spool.fold().map_err(ApiError::Internal),
            None => Ok(()),
        }
    }

    /// Counts since the queue was made; the bench reads them around a scenario to tell how
    /// large the batches were and how long each took.
    pub fn stats(&self) -> AuditQueueStats {
        let c = &self.counters;
        AuditQueueStats {
            batches: c.batches.load(Ordering::Relaxed),
            entries: c.entries.load(Ordering::Relaxed),
            commit_time: Duration::from_nanos(c.commit_nanos.load(Ordering::Relaxed)),
        }
    }

    /// Appends `entry` and waits (blocking: call it off the async workers) until the
    /// transaction that holds it is committed, or on SQLite until it is in the spool.
    pub fn record(&self, entry: NewEntry) -> ApiResult<()> {
        if let Some(spool) = &self.spool {
            return spool.record(entry).map_err(|err| {
                ApiError::Internal(anyhow::anyhow!("cannot append to the audit log: {err}"))
            });
        }
        let outcome = Outcome::default();
        let mut waiting = self.lock();
        waiting.entries.push((entry, outcome.clone()));
        loop {
            if let Some(result) = outcome.get() {
                return result.clone().map_err(|err| {
                    ApiError::Internal(anyhow::anyhow!("cannot append to the audit log: {err}"))
                });
            }
            if waiting.committing {
                waiting = self
                    .committed
                    .wait(waiting)
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Lead: take the batch, commit it without the lock, tell everyone.
            waiting.committing = true;
            let take = waiting.entries.len().min(MAX_BATCH);
            let (entries, outcomes): (Vec<NewEntry>, Vec<Outcome>) =
                waiting.entries.drain(..take).unzip();
            drop(waiting);
            let leading = Leading {
                queue: self,
                outcomes,
            };
            let result = self.commit(entries).map_err(|err| {
                tracing::error!(error = ?err, entries = leading.outcomes.len(), "audit batch failed");
                err.to_string()
            });
            leading.finish(result);
            waiting = self.lock();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends the batch in one transaction, counted in [`AuditQueue::stats`].
    fn commit(&self, entries: Vec<NewEntry>) -> anyhow::Result<()> {
        let started = Instant::now();
        let count = entries.len();
        let result = self.append(entries);
        self.counters.count(count, started.elapsed());
        result
    }

    fn append(&self, entries: Vec<NewEntry>) -> anyhow::Result<()> {
        let mut conn = write_conn(&self.pool, self.write_gate.as_deref())?;
        let entries: Vec<_> = entries.iter().map(NewEntry::as_entry_ref).collect();
        conn.transaction::<_, diesel::result::Error, _>(|conn| audit::append_many(conn, &entries))?;
        Ok(())
    }
}

/// A leader's batch. However the leader leaves (even by a panic), its batch gets an outcome and
/// the next leader may start: nobody waits for ever.
struct Leading<'a> {
    queue: &'a AuditQueue,
    outcomes: Vec<Outcome>,
}

impl Leading<'_> {
    fn finish(mut self, result: Result<(), String>) {
        for outcome in self.outcomes.drain(..) {
            let _ = outcome.set(result.clone());
        }
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        for outcome in self.outcomes.drain(..) {
            let _ = outcome.set(Err("the audit commit was interrupted".into()));
        }
        self.queue.lock().committing = false;
        self.queue.committed.notify_all();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn queue(dir: &std::path::Path) -> (AuditQueue, Pool) {
        let url = crate::db::DatabaseUrl::Sqlite(dir.join("audit.db"));
        let pool = crate::db::open(&url, 8, Default::default()).unwrap();
        (
            AuditQueue::new(pool.clone(), crate::db::write_gate(&url, 2).unwrap()),
            pool,
        )
    }

    /// A read's entry, told apart by `n` (its object id).
    pub(crate) fn entry(n: usize) -> NewEntry {
        NewEntry {
            action: "patients.read".into(),
            object_type: "patient".into(),
            object_id: Some(n.to_string()),
            outcome: "ok".into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_entry_of_concurrent_requests_is_committed_once_and_chained() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, pool) = queue(dir.path());
        let queue = Arc::new(queue);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        queue.record(entry(t * 1000 + i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut conn = pool.get().unwrap();
        assert_eq!(audit::verify(&mut conn).unwrap(), Ok(400));
        let listed = audit::list(&mut conn, &Default::default(), 1000).unwrap();
        let mut ids: Vec<String> = listed.into_iter().filter_map(|r| r.object_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 400, "each entry once");
        let waiting = queue.lock();
        assert!(waiting.entries.is_empty() && !waiting.committing);
        let stats = queue.stats();
        assert_eq!(stats.entries, 400);
        assert!((1..=400).contains(&stats.batches), "{stats:?}");
        assert!(stats.commit_time > Duration::ZERO);
        assert_eq!(stats.since(&stats), AuditQueueStats::default());
    }

    #[test]
    fn a_verification_beside_a_writer_reads_one_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, pool) = queue(dir.path());
        let queue = Arc::new(queue);
        for i in 0..5_100 {
            queue.record(entry(i)).unwrap();
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (queue, stop) = (queue.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 10_000;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    queue.record(entry(n)).unwrap();
                    n += 1;
                }
            })
        };
        // The chain is read in batches of 5 000 and then its head: entries appended in
        // between must not make an intact log look broken.
        let mut conn = pool.get().unwrap();
        for _ in 0..20 {
            let verified = crate::db::in_snapshot(&mut conn, audit::verify).unwrap();
            assert!(matches!(verified, Ok(n) if n >= 5_100), "{verified:?}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
    }

    #[test]
    fn a_failed_commit_fails_its_requests_and_the_next_leader_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, pool) = queue(dir.path());
        let mut conn = pool.get().unwrap();
        diesel::connection::SimpleConnection::batch_execute(
            &mut *conn,
            "ALTER TABLE audit_head RENAME TO audit_head_away",
        )
        .unwrap();
        assert!(matches!(queue.record(entry(1)), Err(ApiError::Internal(_))));
        diesel::connection::SimpleConnection::batch_execute(
            &mut *conn,
            "ALTER TABLE audit_head_away RENAME TO audit_head",
        )
        .unwrap();
        queue.record(entry(2)).unwrap();
        assert_eq!(audit::verify(&mut conn).unwrap(), Ok(1));
    }
}
