//! The audit log (`administration`): filters and keyset paging, newest first. A region-wide
//! administrator reads the whole log; an institution's administrator reads what was done in its
//! institution, as it manages only that institution's accounts (another institution's staff,
//! their addresses and what they opened are not its business). Each entry names the
//! institution its account belonged to when it was made, so a colleague who moves on leaves
//! its past entries with the institution where it made them.

use actix_web::{get, web};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Permission, Principal};
use crate::db::models::audit::{self, AuditFilter};
use crate::error::{ApiResult, ErrorBody};
use crate::routes::audited;
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Login of the actor.
    pub actor: Option<String>,
    /// e.g. `auth.login`, `admin.user.create`.
    pub action: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// `ok` or an error code such as `invalid_credentials`.
    pub outcome: Option<String>,
    /// From this time (UTC, inclusive), `YYYY-MM-DDTHH:MM:SS`.
    pub from: Option<NaiveDateTime>,
    /// Until this time (UTC, exclusive).
    pub to: Option<NaiveDateTime>,
    /// Entries older than this sequence number (the `next_before` of the previous page).
    pub before: Option<i64>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub at: NaiveDateTime,
    pub actor_id: Option<i64>,
    pub actor_login: Option<String>,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub outcome: String,
    pub client_addr: Option<String>,
    pub details: Option<String>,
    /// The institution the entry was made in: the acting account's at the time (absent for
    /// region-wide accounts, the command line, unknown logins and entries older than this
    /// field).
    pub institution_id: Option<i64>,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntryView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Reads the audit log. Reading it is itself recorded.
///
/// An institution's administrator gets the entries made in its institution only (for entries
/// older than `institution_id`: those of the accounts it has now); a region-wide administrator
/// gets every entry.
#[utoipa::path(
    tag = "admin",
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/api/v1/admin/audit")]
pub async fn list_audit(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<AuditQuery>,
) -> ApiResult<web::Json<AuditPage>> {
    principal.require(Permission::Administration)?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    for (field, value) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("object_type", &q.object_type),
        ("object_id", &q.object_id),
        ("outcome", &q.outcome),
    ] {
        if let Some(value) = value {
            crate::domain::check_filter_text(field, value)?;
        }
    }
    crate::domain::check_dates(&[
        ("from", q.from.map(|at| at.date())),
        ("to", q.to.map(|at| at.date())),
    ])?;
    let filter = AuditFilter {
        actor_login: q.actor,
        action: q.action,
        object_type: q.object_type,
        object_id: q.object_id,
        outcome: q.outcome,
        from: q.from,
        to: q.to,
        before_seq: q.before,
        institution: principal.institution_id,
    };
    // The reads of the last moments are still in the spool (SQLite): the listing shows them.
    let flushing = state.clone();
    web::block(move || flushing.audit.flush()).await??;
    let entry = principal.audit("admin.audit.read", "audit_log", None);
    let rows = audited(&state, entry, move |conn, _| {
        Ok(audit::list(conn, &filter, limit)?)
    })
    .await?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let items = rows
        .into_iter()
        .map(|r| AuditEntryView {
            seq: r.seq,
            at: r.at,
            actor_id: r.actor_id,
            actor_login: r.actor_login,
            action: r.action,
            object_type: r.object_type,
            object_id: r.object_id,
            outcome: r.outcome,
            client_addr: r.client_addr,
            details: r.details,
            institution_id: r.institution_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
        })
        .collect();
    Ok(web::Json(AuditPage { items, next_before }))
}
