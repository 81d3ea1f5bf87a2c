//! What every handler shares.

use std::sync::Arc;

use crate::audit_queue::AuditQueue;
use crate::auth::TokenKeys;
use crate::config::Settings;
use crate::db::{Pool, WriteGate};
use crate::ratelimit::RateLimiter;

pub struct AppState {
    pub pool: Pool,
    /// The reports' own connections ([`crate::db::open_reports`]).
    pub reports: Pool,
    pub settings: Arc<Settings>,
    pub tokens: TokenKeys,
    pub login_limiter: RateLimiter,
    /// SQLite has one writer: audited transactions queue here, in process, instead of
    /// sleeping in SQLite's busy handler, and write on its one connection
    /// ([`crate::db::write_gate`]). `None` on PostgreSQL (the audit head's row lock orders
    /// writers across replicas).
    pub write_gate: Option<WriteGate>,
    /// Appends the audit entries of reads and refusals, many to a transaction.
    pub audit: AuditQueue,
    /// Who the live sessions are, between requests ([`crate::session_cache`]).
    pub sessions: Arc<crate::session_cache::SessionCache>,
    /// Signs every report the server produces.
    pub report_key: palreg_reports::ReportSigningKey,
    /// Seals the second-factor secrets ([`crate::totp`]).
    pub totp_key: crate::totp::TotpKey,
}
