//! Server-side sessions: every token names one; revoking it ends the token at once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{permissions, role_permissions, roles, sessions, user_roles, users};

pub fn create(
    conn: &mut DbConn,
    id: &str,
    user_id: i64,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(id),
            sessions::user_id.eq(user_id),
            sessions::created_at.eq(created_at),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)
}

/// The account of a live session and its permissions, in one query (every authenticated
/// request runs it): `None` when the session is revoked, expired, of another user, or the
/// account is inactive.
pub struct SessionUser {
    pub login: String,
    pub full_name: String,
    pub institution_id: Option<i64>,
    /// Sorted, without duplicates.
    pub permissions: Vec<String>,
}

pub fn live_principal(
    conn: &mut DbConn,
    session_id: &str,
    user_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Option<SessionUser>> {
    let rows: Vec<(String, String, Option<i64>, Option<String>)> = sessions::table
        .inner_join(users::table.left_join(user_roles::table.left_join(
            roles::table.left_join(role_permissions::table.left_join(permissions::table)),
        )))
        .filter(sessions::id.eq(session_id))
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(users::active.eq(true))
        .select((
            users::login,
            users::full_name,
            users::institution_id,
            permissions::name.nullable(),
        ))
        .load(conn)?;
    let mut rows = rows.into_iter();
    let Some((login, full_name, institution_id, first)) = rows.next() else {
        return Ok(None);
    };
    let mut names: Vec<String> = first.into_iter().chain(rows.filter_map(|r| r.3)).collect();
    names.sort_unstable();
    names.dedup();
    Ok(Some(SessionUser {
        login,
        full_name,
        institution_id,
        permissions: names,
    }))
}

pub fn revoke(conn: &mut DbConn, session_id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(sessions::table.find(session_id))
        .filter(sessions::revoked_at.is_null())
        .set(sessions::revoked_at.eq(now))
        .execute(conn)
}

/// Revokes every session of a user, optionally sparing one (the caller's own).
pub fn revoke_all_of(
    conn: &mut DbConn,
    user_id: i64,
    except: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let query = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .into_boxed();
    let query = match except {
        Some(keep) => query.filter(sessions::id.ne(keep.to_string())),
        None => query,
    };
    let ids: Vec<String> = query.select(sessions::id).load(conn)?;
    diesel::update(sessions::table.filter(sessions::id.eq_any(&ids)))
        .set(sessions::revoked_at.eq(now))
        .execute(conn)
}

/// Deletes sessions that expired before `before` (housekeeping).
pub fn purge_expired(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.lt(before))).execute(conn)
}
