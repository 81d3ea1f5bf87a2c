//! Server-side sessions: every token names one; revoking it ends the token at once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{
    auth_epoch, permissions, role_permissions, roles, sessions, user_roles, user_totp, users,
};

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

/// The account of a live session and its permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub login: String,
    pub full_name: String,
    pub institution_id: Option<i64>,
    /// Sorted, without duplicates.
    pub permissions: Vec<String>,
    pub second_factor: SecondFactor,
}

/// Whether the caller has a second factor, and whether one of its roles requires it.
// (The session check reads both; the API answers them as `TotpStatus`, with the recovery codes
// left counted apart: see crate::routes::totp.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecondFactor {
    /// A confirmed authenticator: signing in asks for its code.
    pub enabled: bool,
    /// A role of the account requires a second factor (it cannot be removed then).
    pub required: bool,
}

impl SecondFactor {
    /// A role requires a second factor the account has not confirmed yet: until it does, the
    /// session may do nothing that needs a permission.
    pub fn enrolment_required(self) -> bool {
        self.required && !self.enabled
    }
}

/// The account of a live session, its permissions and when the session expires, in one query:
/// `None` when the session is revoked, expired, of another user, or the account is inactive.
/// [`crate::session_cache::SessionCache`] runs it when it does not know the session, or when
/// [`auth_epoch`] has moved on since it last did.
pub fn live_principal(
    conn: &mut DbConn,
    session_id: &str,
    user_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Option<(SessionUser, NaiveDateTime)>> {
    type Row = (
        String,
        String,
        Option<i64>,
        NaiveDateTime,
        Option<String>,
        Option<bool>,
        Option<NaiveDateTime>,
    );
    let rows: Vec<Row> = sessions::table
        .inner_join(
            users::table
                .left_join(user_roles::table.left_join(
                    roles::table.left_join(role_permissions::table.left_join(permissions::table)),
                ))
                .left_join(user_totp::table),
        )
        .filter(sessions::id.eq(session_id))
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(users::active.eq(true))
        .select((
            users::login,
            users::full_name,
            users::institution_id,
            sessions::expires_at,
            permissions::name.nullable(),
            roles::require_totp.nullable(),
            user_totp::confirmed_at.nullable(),
        ))
        .load(conn)?;
    let required = rows.iter().any(|r| r.5 == Some(true));
    let mut rows = rows.into_iter();
    let Some((login, full_name, institution_id, expires_at, first, _, confirmed)) = rows.next()
    else {
        return Ok(None);
    };
    let mut names: Vec<String> = first.into_iter().chain(rows.filter_map(|r| r.4)).collect();
    names.sort_unstable();
    names.dedup();
    let user = SessionUser {
        login,
        full_name,
        institution_id,
        permissions: names,
        second_factor: SecondFactor {
            enabled: confirmed.is_some(),
            required,
        },
    };
    Ok(Some((user, expires_at)))
}

/// The number that the database's triggers move on whenever a session, an account, its roles
/// or a role's permissions change (migration `auth_epoch`). Read it before anything it guards.
/// Every authenticated request reads it, so on the backend's own connection (see
/// [`super::patients::find_shown`]).
pub fn auth_epoch(conn: &mut DbConn) -> QueryResult<i64> {
    crate::per_backend!(conn, |c| auth_epoch::table
        .select(auth_epoch::value)
        .get_result(c))
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

/// Revokes every live session (after a restore, which would bring back sessions that were
/// ended since the backup).
pub fn revoke_all(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(sessions::table.filter(sessions::revoked_at.is_null()))
        .set(sessions::revoked_at.eq(now))
        .execute(conn)
}

/// Deletes sessions that expired before `before` (housekeeping).
pub fn purge_expired(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.lt(before))).execute(conn)
}
