//! What every handler shares.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::audit_queue::AuditQueue;

use crate::auth::TokenKeys;
use crate::config::Settings;
use crate::db::Pool;
use crate::ratelimit::RateLimiter;

pub struct AppState {
    pub pool: Pool,
    pub settings: Arc<Settings>,
    pub tokens: TokenKeys,
    pub login_limiter: RateLimiter,
    /// SQLite has one writer: audited transactions queue here, in process, instead of
    /// sleeping in SQLite's busy handler. `None` on PostgreSQL (the audit head's row lock
    /// orders writers across replicas).
    pub write_gate: Option<Arc<Mutex<()>>>,
    /// Appends the audit entries of reads and refusals, many to a transaction.
    pub audit: AuditQueue,
    /// Signs every report the server produces.
    pub report_key: palreg_reports::ReportSigningKey,
}

/// Waits for this process's turn to write on SQLite (`gate` is [`AppState::write_gate`]; `None`
/// on PostgreSQL: no wait).
pub fn take_turn(gate: Option<&Mutex<()>>) -> Option<MutexGuard<'_, ()>> {
    gate.map(|gate| gate.lock().unwrap_or_else(|e| e.into_inner()))
}
