//! HTTP handlers, one file per resource. Handlers extract, parse, run the query through
//! [`db`] or [`audited`] off the async workers, and map to wire types.

pub mod admin_audit;
pub mod admin_roles;
pub mod admin_users;
pub mod auth;
pub mod health;
pub mod keys;
pub mod me;
pub mod observations;
pub mod patients;
pub mod prescriptions;
pub mod refs;
pub mod reports;
pub mod totp;

use actix_web::{HttpMessage, web};

use crate::auth::{Caller, Permission, Principal};
pub use crate::db::Lane;
use crate::db::models::audit::{self, NewEntry};
use crate::db::{self, DbConn};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Runs a read on a pooled connection, off the async workers.
pub async fn db<T, F>(state: &web::Data<AppState>, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> ApiResult<T> + Send + 'static,
{
    read_on(state.pool.clone(), f).await
}

/// Runs a report's reads on a connection of the reports' own pool, off the async workers, in
/// one read-only snapshot: a report's tables are counted from the same state of the register
/// (a patient registered while it runs is in all of them or in none), so that its totals and
/// its breakdowns agree and the small-cell suppression reasons over numbers that add up.
pub async fn report_db<T, F>(state: &web::Data<AppState>, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> ApiResult<T> + Send + 'static,
{
    read_on(state.reports.clone(), |conn| db::in_snapshot(conn, f)).await
}

async fn read_on<T, F>(pool: db::Pool, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> ApiResult<T> + Send + 'static,
{
    web::block(move || {
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await?
}

/// Runs a change and appends its audit entry in one transaction. `change` may fill in the
/// entry (object id, details). When the change is refused (not found, conflict, bad input), the
/// refusal goes to the [`AuditQueue`](crate::audit_queue::AuditQueue), like a read's entry, and
/// the error is returned.
pub async fn audited<T, F>(state: &web::Data<AppState>, entry: NewEntry, change: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &mut NewEntry) -> ApiResult<T> + Send + 'static,
{
    audited_in(state, Lane::First, entry, change).await
}

/// [`audited`], in the lane given.
pub async fn audited_in<T, F>(
    state: &web::Data<AppState>,
    lane: Lane,
    entry: NewEntry,
    change: F,
) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &mut NewEntry) -> ApiResult<T> + Send + 'static,
{
    let state = state.clone();
    web::block(move || {
        // The reads answered before this change began take their places in the chain before it
        // (on SQLite they may still be in the audit spool).
        if let Err(err) = state.audit.flush() {
            tracing::warn!(error = ?err, "cannot fold the audit spool before a change");
        }
        let attempt = entry.clone();
        // The write turn is given back before a refusal is queued: the queue's leader takes
        // it itself.
        let result = in_write_transaction(&state, lane, |conn| {
            let place = audit::reserve(conn)?;
            let mut entry = entry;
            let value = change(conn, &mut entry)?;
            audit::complete(conn, place, entry)?;
            Ok(value)
        });
        if let Err(err) = &result {
            let refusal = NewEntry {
                outcome: err.code().to_string(),
                ..attempt
            };
            if let Err(audit_err) = state.audit.record(refusal) {
                tracing::error!(error = ?audit_err, "cannot audit a refused request");
            }
        }
        result
    })
    .await?
}

/// Runs a write that has no audit entry of its own (counting a sign-in attempt: the attempt's
/// own entry follows it) in one transaction, off the async workers.
pub async fn write<T, F>(state: &web::Data<AppState>, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> ApiResult<T> + Send + 'static,
{
    let state = state.clone();
    web::block(move || in_write_transaction(&state, Lane::First, f)).await?
}

/// Runs `f` in one transaction on the connection to write with (on SQLite after waiting for
/// this process's write turn, which is given back on return).
fn in_write_transaction<T>(
    state: &AppState,
    lane: Lane,
    f: impl FnOnce(&mut DbConn) -> ApiResult<T>,
) -> ApiResult<T> {
    use diesel::Connection;
    let mut conn = db::write_conn_in(&state.pool, state.write_gate.as_deref(), lane)
        .map_err(ApiError::internal)?;
    conn.transaction(f)
}

/// What an audited read is, for its entry in the audit log (the actor is the caller, once
/// authenticated).
pub struct AuditedRead {
    pub action: &'static str,
    pub object_type: &'static str,
    pub object_id: Option<String>,
}

impl AuditedRead {
    pub fn new(action: &'static str, object_type: &'static str, object_id: Option<String>) -> Self {
        Self {
            action,
            object_type,
            object_id,
        }
    }
}

/// Runs an audited read for a [`Caller`] not yet authenticated, in one blocking call and one read
/// transaction (the session, the permissions and the answer come from one snapshot; WAL readers
/// never wait for writers): authenticates the session (401), checks `permission` (403) and
/// `scope` (which may refuse, or pick what the read is limited to, such as the caller's
/// institution), makes the audit entry of `what`, and runs `read`, which may fill the entry
/// in. The connection then goes back to the pool, and the entry (with the refusal's code if
/// `read` refused) to the [`AuditQueue`](crate::audit_queue::AuditQueue), which commits it with
/// the other entries waiting (on SQLite, writes it to the audit spool). Nothing is answered before
/// its entry is committed or spooled: if the append fails, the request fails.
///
/// Refusals before the read are not entries of the read, as with a [`Principal`] extractor:
/// 403s are audited as `access.denied` by the middleware, which finds the principal in the
/// request.
pub async fn read_audited_as<S, T, C, F>(
    state: &web::Data<AppState>,
    caller: Caller,
    permission: Permission,
    scope: C,
    what: AuditedRead,
    read: F,
) -> ApiResult<T>
where
    S: Send + 'static,
    T: Send + 'static,
    C: FnOnce(&Principal) -> ApiResult<S> + Send + 'static,
    F: FnOnce(&mut DbConn, S, &mut NewEntry) -> ApiResult<T> + Send + 'static,
{
    let Caller {
        credentials,
        request,
    } = caller;
    let state = state.clone();
    let (principal, result) = web::block(move || match state.pool.get() {
        Ok(conn) => read_in_transaction(&state, conn, credentials, permission, scope, what, read),
        Err(err) => (None, Err(err.into())),
    })
    .await?;
    keep_principal(&request, principal);
    result
}

/// [`read_audited_as`] for a read of one statement that also reads the auth epoch
/// ([`crate::db::models::sessions::auth_epoch`]) and returns it with its answer: a patient by
/// id, the register's most frequent read. When the session is remembered
/// ([`crate::session_cache::SessionCache::remembered`]), `read` runs at once under the
/// remembered principal, outside a transaction, and its answer counts only if the epoch its
/// statement read is the one the session was remembered under. The epoch only ever moves on,
/// so nothing the session check depends on changed between that lookup and the read: the
/// answer is the one the full check and the read in one snapshot give. That spares the
/// transaction's `BEGIN` and `COMMIT` and the epoch's own statement, a sixth of the read's time
/// in the database on SQLite (bench/README.md, twenty-fifth session), and three of four round
/// trips on PostgreSQL. Otherwise (a session not remembered, an epoch moved on, or any refusal,
/// which the full check then gives or corrects) the read runs again [`read_audited_as`]'s way,
/// and the epoch it returns is not needed.
pub async fn read_one_audited_as<S, T, C, F>(
    state: &web::Data<AppState>,
    caller: Caller,
    permission: Permission,
    scope: C,
    what: AuditedRead,
    read: F,
) -> ApiResult<T>
where
    S: Send + 'static,
    T: Send + 'static,
    C: Fn(&Principal) -> ApiResult<S> + Send + 'static,
    F: Fn(&mut DbConn, S, &mut NewEntry) -> ApiResult<(T, Option<i64>)> + Send + 'static,
{
    let Caller {
        credentials,
        request,
    } = caller;
    let state = state.clone();
    let (principal, result) = web::block(move || {
        let mut conn = match state.pool.get() {
            Ok(conn) => conn,
            Err(err) => return (None, Err(err.into())),
        };
        if let Some((epoch, principal)) = credentials.remembered() {
            let mut entry = principal.audit(what.action, what.object_type, what.object_id.clone());
            let attempt = principal
                .require(permission)
                .and_then(|()| scope(&principal))
                .and_then(|scope| read(&mut conn, scope, &mut entry));
            if let Ok((answer, seen)) = attempt
                && seen == Some(epoch)
            {
                drop(conn);
                let result = state.audit.record(entry).map(|()| answer);
                return (Some(principal), result);
            }
        }
        let (principal, result) =
            read_in_transaction(&state, conn, credentials, permission, scope, what, read);
        (principal, result.map(|(answer, _)| answer))
    })
    .await?;
    keep_principal(&request, principal);
    result
}

/// The principal, kept for the audit of refused requests (see `startup::audit_refusals`).
fn keep_principal(request: &actix_web::HttpRequest, principal: Option<Principal>) {
    if let Some(principal) = principal {
        request.extensions_mut().insert(principal);
    }
}

/// [`read_audited_as`]'s way, blocking: authentication, checks and the read in one read
/// transaction, then (the connection back in the pool) the entry to the audit queue. Returns the
/// principal if authenticated.
fn read_in_transaction<S, T>(
    state: &AppState,
    mut conn: db::PooledConn,
    credentials: crate::auth::Credentials,
    permission: Permission,
    scope: impl FnOnce(&Principal) -> ApiResult<S>,
    what: AuditedRead,
    read: impl FnOnce(&mut DbConn, S, &mut NewEntry) -> ApiResult<T>,
) -> (Option<Principal>, ApiResult<T>) {
    use diesel::Connection;
    let mut principal = None;
    let mut audit_entry = None;
    let result = conn.transaction::<T, ApiError, _>(|conn| {
        let caller = principal.insert(credentials.authenticate(conn)?);
        caller.require(permission)?;
        let scope = scope(caller)?;
        let entry = audit_entry.insert(caller.audit(what.action, what.object_type, what.object_id));
        read(conn, scope, entry)
    });
    drop(conn);
    // Only a read that was let in has an entry (refusals before it: see above).
    let result = match audit_entry {
        Some(mut entry) => {
            if let Err(err) = &result {
                entry.outcome = err.code().to_string();
            }
            state.audit.record(entry).and(result)
        }
        None => result,
    };
    (principal, result)
}

/// Appends an audit entry on its own (e.g. a refused sign-in).
pub async fn audit_only(state: &web::Data<AppState>, entry: NewEntry) -> ApiResult<()> {
    let state = state.clone();
    web::block(move || state.audit.record(entry)).await?
}
