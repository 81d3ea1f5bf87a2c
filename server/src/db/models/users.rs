//! Users (accounts) and their roles.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::in_list::in_list;
use crate::db::schema::{roles, user_roles, users};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub login: String,
    pub full_name: String,
    pub password_hash: String,
    pub institution_id: Option<i64>,
    pub active: bool,
    pub failed_logins: i32,
    pub locked_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub login: &'a str,
    pub full_name: &'a str,
    pub password_hash: &'a str,
    pub institution_id: Option<i64>,
    pub active: bool,
    pub failed_logins: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub full_name: Option<String>,
    pub institution_id: Option<Option<i64>>,
    pub active: Option<bool>,
    pub password_hash: Option<String>,
    pub failed_logins: Option<i32>,
    pub locked_until: Option<Option<NaiveDateTime>>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<User> {
    users::table.find(id).select(User::as_select()).first(conn)
}

pub fn find_by_login(conn: &mut DbConn, login: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::login.eq(login))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

/// Users ordered by login, optionally of one institution and/or active only.
pub fn list(
    conn: &mut DbConn,
    institution: Option<i64>,
    active_only: bool,
) -> QueryResult<Vec<User>> {
    let mut query = users::table.select(User::as_select()).into_boxed();
    if let Some(inst) = institution {
        query = query.filter(users::institution_id.eq(inst));
    }
    if active_only {
        query = query.filter(users::active.eq(true));
    }
    query.order(users::login.asc()).load(conn)
}

pub fn insert(conn: &mut DbConn, new: &NewUser<'_>) -> QueryResult<i64> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(users::id)
        .get_result(conn)
}

pub fn update(conn: &mut DbConn, id: i64, changes: &UserChanges) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set(changes)
        .execute(conn)
}

/// Replaces a user's roles.
pub fn set_roles(conn: &mut DbConn, user_id: i64, role_ids: &[i64]) -> QueryResult<()> {
    diesel::delete(user_roles::table.filter(user_roles::user_id.eq(user_id))).execute(conn)?;
    for role_id in role_ids {
        diesel::insert_into(user_roles::table)
            .values((
                user_roles::user_id.eq(user_id),
                user_roles::role_id.eq(role_id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// `(user id, role name)` for the given users, ordered by role name.
pub fn role_names(conn: &mut DbConn, user_ids: &[i64]) -> QueryResult<Vec<(i64, String)>> {
    // One statement kept for any number of users (`GET /me` asks on every call).
    user_roles::table
        .inner_join(roles::table)
        .filter(in_list(user_roles::user_id, user_ids.to_vec()))
        .select((user_roles::user_id, roles::name))
        .order(roles::name.asc())
        .load(conn)
}

/// What counting an attempt on an account found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The account is locked until then: the attempt must not be checked.
    Locked(NaiveDateTime),
    /// Counted; `locks` when it is the one that locks the account (it is still checked: a
    /// right password or code clears the count and the lock).
    Counted { locks: bool },
}

/// Counts an attempt (a password or a code about to be checked) against the account *before*
/// it is checked, in one statement: concurrent guesses are counted one after another by the
/// database, so that once `threshold` are counted the rest find the account locked, however
/// many arrive at once. The count goes back to 0 on success ([`record_successful_login`],
/// [`clear_failures`]) and when it locks the account.
pub fn count_attempt(
    conn: &mut DbConn,
    user_id: i64,
    now: NaiveDateTime,
    threshold: u32,
    lock_until: NaiveDateTime,
) -> QueryResult<Attempt> {
    let counted: Option<i32> = diesel::update(
        users::table.find(user_id).filter(
            users::locked_until
                .is_null()
                .or(users::locked_until.le(now)),
        ),
    )
    .set(users::failed_logins.eq(users::failed_logins + 1))
    .returning(users::failed_logins)
    .get_result(conn)
    .optional()?;
    let Some(failures) = counted else {
        let until: Option<NaiveDateTime> = users::table
            .find(user_id)
            .select(users::locked_until)
            .first(conn)?;
        return Ok(Attempt::Locked(until.unwrap_or(now)));
    };
    let locks = u32::try_from(failures).unwrap_or(u32::MAX) >= threshold;
    if locks {
        update(
            conn,
            user_id,
            &UserChanges {
                failed_logins: Some(0),
                locked_until: Some(Some(lock_until)),
                ..Default::default()
            },
        )?;
    }
    Ok(Attempt::Counted { locks })
}

/// Forgets the attempts counted so far (a right password or code).
pub fn clear_failures(conn: &mut DbConn, user_id: i64) -> QueryResult<usize> {
    update(
        conn,
        user_id,
        &UserChanges {
            failed_logins: Some(0),
            ..Default::default()
        },
    )
}

pub fn record_successful_login(conn: &mut DbConn, user_id: i64) -> QueryResult<usize> {
    update(
        conn,
        user_id,
        &UserChanges {
            failed_logins: Some(0),
            locked_until: Some(None),
            ..Default::default()
        },
    )
}
