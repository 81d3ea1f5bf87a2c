//! Second-factor enrolments ([`crate::totp`]), their recovery codes, and the roles that require
//! one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::in_list::in_list;
use crate::db::schema::{roles, user_roles, user_totp, user_totp_recovery};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = user_totp)]
pub struct Enrolment {
    pub sealed_secret: String,
    /// `None` while the enrolment waits for its first code.
    pub confirmed_at: Option<NaiveDateTime>,
    /// The step of the last code accepted.
    pub last_step: i64,
}

impl Enrolment {
    pub fn confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }
}

pub fn find(conn: &mut DbConn, user_id: i64) -> QueryResult<Option<Enrolment>> {
    user_totp::table
        .find(user_id)
        .select(Enrolment::as_select())
        .first(conn)
        .optional()
}

/// Starts an enrolment over: any unconfirmed one is replaced. The caller has checked that the
/// user has no confirmed one.
pub fn start(
    conn: &mut DbConn,
    user_id: i64,
    sealed_secret: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::delete(user_totp::table.find(user_id))
        .filter(user_totp::confirmed_at.is_null())
        .execute(conn)?;
    diesel::insert_into(user_totp::table)
        .values((
            user_totp::user_id.eq(user_id),
            user_totp::sealed_secret.eq(sealed_secret),
            user_totp::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Confirms a waiting enrolment with the step of its first code; `false` if there was none.
pub fn confirm(
    conn: &mut DbConn,
    user_id: i64,
    step: i64,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(user_totp::table.find(user_id))
        .filter(user_totp::confirmed_at.is_null())
        .set((
            user_totp::confirmed_at.eq(now),
            user_totp::last_step.eq(step),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Records an accepted code's step; `false` when that step (or a later one) was already
/// used: the same code twice, or two sign-ins racing with one code.
pub fn use_step(conn: &mut DbConn, user_id: i64, step: i64) -> QueryResult<bool> {
    let changed = diesel::update(user_totp::table.find(user_id))
        .filter(user_totp::confirmed_at.is_not_null())
        .filter(user_totp::last_step.lt(step))
        .set(user_totp::last_step.eq(step))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Removes the user's second factor (confirmed or not) and its recovery codes; `true` if there
/// was one.
pub fn remove(conn: &mut DbConn, user_id: i64) -> QueryResult<bool> {
    // The foreign key would cascade; deleted here as well so that no code outlives its
    // enrolment on a connection that does not enforce foreign keys.
    diesel::delete(user_totp_recovery::table.filter(user_totp_recovery::user_id.eq(user_id)))
        .execute(conn)?;
    Ok(diesel::delete(user_totp::table.find(user_id)).execute(conn)? == 1)
}

/// Replaces the user's recovery codes by the ones of these hashes (of a confirmed enrolment:
/// the codes go with it, see the migration `totp_recovery`).
pub fn replace_recovery_codes(
    conn: &mut DbConn,
    user_id: i64,
    hashes: &[String],
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::delete(user_totp_recovery::table.filter(user_totp_recovery::user_id.eq(user_id)))
        .execute(conn)?;
    // Ten rows, one statement each (in the caller's transaction).
    for hash in hashes {
        diesel::insert_into(user_totp_recovery::table)
            .values((
                user_totp_recovery::user_id.eq(user_id),
                user_totp_recovery::code_hash.eq(hash),
                user_totp_recovery::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Whether the user has an unused recovery code of this hash.
pub fn has_recovery_code(conn: &mut DbConn, user_id: i64, hash: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        user_totp_recovery::table.find((user_id, hash)),
    ))
    .get_result(conn)
}

/// Uses up a recovery code; `false` when there was none of this hash (any more: two sign-ins
/// racing with one code).
pub fn use_recovery_code(conn: &mut DbConn, user_id: i64, hash: &str) -> QueryResult<bool> {
    Ok(diesel::delete(user_totp_recovery::table.find((user_id, hash))).execute(conn)? == 1)
}

/// How many recovery codes the user has left.
pub fn recovery_codes_left(conn: &mut DbConn, user_id: i64) -> QueryResult<i64> {
    user_totp_recovery::table
        .filter(user_totp_recovery::user_id.eq(user_id))
        .count()
        .get_result(conn)
}

/// Whether any of the user's roles requires a second factor.
pub fn required_for(conn: &mut DbConn, user_id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        user_roles::table
            .inner_join(roles::table)
            .filter(user_roles::user_id.eq(user_id))
            .filter(roles::require_totp.eq(true)),
    ))
    .get_result(conn)
}

/// The users among `ids` with a confirmed second factor.
pub fn enrolled_among(conn: &mut DbConn, ids: &[i64]) -> QueryResult<Vec<i64>> {
    user_totp::table
        .filter(in_list(user_totp::user_id, ids.to_vec()))
        .filter(user_totp::confirmed_at.is_not_null())
        .select(user_totp::user_id)
        .load(conn)
}
