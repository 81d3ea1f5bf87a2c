//! Group commit of the audit entries that are not part of a change: reads, searches, refusals
//! outside a change, sign-in failures.
//!
//! Every such request used to open a write transaction of its own just to append one entry.
//! Here one writer thread takes whatever entries are waiting, chains them in one transaction
//! and commits once; each request waits until *its* entry is committed, so nothing is answered
//! before its trace is durable (as before), while N concurrent reads cost one write transaction
//! instead of N. Nothing waits on purpose to fill a batch: a batch is whatever arrived while
//! the previous one was being committed, so a lone request pays one commit, as before.
//!
//! Changes still append their entry inside their own transaction ([`crate::routes::audited`]):
//! a change and its trace commit or roll back together.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use diesel::Connection;

use crate::db::Pool;
use crate::db::models::audit::{self, NewEntry};
use crate::error::{ApiError, ApiResult};
use crate::state::take_turn;

/// The most entries one transaction takes; more wait for the next.
const MAX_BATCH: usize = 256;

type Done = SyncSender<Result<(), String>>;

/// The sending side, shared by every worker. When it is dropped (the server stops), the writer
/// thread commits what it holds and ends.
pub struct AuditQueue {
    jobs: Sender<(NewEntry, Done)>,
}

impl AuditQueue {
    /// Starts the writer thread. `write_gate` is the SQLite writers' in-process turn (see
    /// [`crate::state::AppState::write_gate`]); the writer takes it for each batch.
    pub fn start(pool: Pool, write_gate: Option<Arc<Mutex<()>>>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("palreg-audit".into())
            .spawn(move || write_batches(&pool, write_gate.as_deref(), &queue))?;
        Ok(Self { jobs })
    }

    /// Appends `entry` and waits (blocking: call it off the async workers) until the
    /// transaction that holds it is committed.
    pub fn record(&self, entry: NewEntry) -> ApiResult<()> {
        let (done, committed) = mpsc::sync_channel(1);
        self.jobs
            .send((entry, done))
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("the audit writer has stopped")))?;
        match committed.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(ApiError::Internal(anyhow::anyhow!(
                "cannot append to the audit log: {err}"
            ))),
            Err(_) => Err(ApiError::Internal(anyhow::anyhow!(
                "the audit writer stopped before committing"
            ))),
        }
    }
}

fn write_batches(pool: &Pool, write_gate: Option<&Mutex<()>>, queue: &Receiver<(NewEntry, Done)>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (entries, waiting): (Vec<NewEntry>, Vec<Done>) = batch.into_iter().unzip();
        let outcome = commit(pool, write_gate, entries).map_err(|err| {
            tracing::error!(error = ?err, entries = waiting.len(), "audit batch failed");
            err.to_string()
        });
        for done in waiting {
            // A request that gave up waiting has dropped its receiver; nothing to tell it.
            let _ = done.send(outcome.clone());
        }
    }
}

fn commit(
    pool: &Pool,
    write_gate: Option<&Mutex<()>>,
    entries: Vec<NewEntry>,
) -> anyhow::Result<()> {
    let mut conn = pool.get()?;
    let _turn = take_turn(write_gate);
    conn.transaction::<_, diesel::result::Error, _>(|conn| audit::append_many(conn, entries))?;
    Ok(())
}
