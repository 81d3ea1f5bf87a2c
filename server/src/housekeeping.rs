//! What the server deletes while it runs because it has outlived its use: sessions that
//! expired (or were ended) more than [`SESSIONS_KEPT`] ago. Deleted at start-up and then every
//! [`EVERY`], so a server that runs for months does not keep every sign-in it ever had.
//!
//! Each replica of a PostgreSQL deployment does it on its own; the deletes are idempotent.

use std::time::Duration;

use actix_web::web;
use chrono::NaiveDateTime;

use crate::db::models::{self, sessions};
use crate::db::{DbConn, write_conn};
use crate::state::AppState;

/// How often a running server tidies up.
pub const EVERY: Duration = Duration::from_secs(60 * 60);

/// How long a session row is kept past its expiry.
pub const SESSIONS_KEPT: chrono::Duration = chrono::Duration::days(1);

/// What one round deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tidied {
    pub sessions: usize,
}

/// One round at `now`, on the given connection (start-up, before the pool is shared).
pub fn tidy(conn: &mut DbConn, now: NaiveDateTime) -> diesel::QueryResult<Tidied> {
    Ok(Tidied {
        sessions: sessions::purge_expired(conn, now - SESSIONS_KEPT)?,
    })
}

/// One round at `now`, in this process's turn to write.
pub fn tidy_now(state: &AppState, now: NaiveDateTime) -> anyhow::Result<Tidied> {
    let mut conn = write_conn(&state.pool, state.write_gate.as_deref())?;
    Ok(tidy(&mut conn, now)?)
}

/// The periodic tidying up of a server; it stops when this is dropped.
pub struct Running(actix_web::rt::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Tidies up every [`EVERY`], first one period from now (start-up has just tidied), until the
/// returned handle is dropped. A failed round is logged and tried again at the next. Call
/// inside an actix system.
pub fn spawn(state: web::Data<AppState>) -> Running {
    Running(actix_web::rt::spawn(async move {
        let start = actix_web::rt::time::Instant::now() + EVERY;
        let mut every = actix_web::rt::time::interval_at(start, EVERY);
        loop {
            every.tick().await;
            let state = state.clone();
            match web::block(move || tidy_now(&state, models::now())).await {
                Ok(Ok(tidied)) if tidied != Tidied::default() => {
                    tracing::info!(sessions = tidied.sessions, "deleted expired sessions");
                }
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "tidying up failed"),
                Err(err) => tracing::warn!(error = %err, "tidying up failed"),
            }
        }
    }))
}
