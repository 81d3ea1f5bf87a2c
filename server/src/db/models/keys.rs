//! Users' public keys, institution key versions and the envelopes that grant them.
//! The server stores envelopes and cannot open them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{institution_keys, key_envelopes, users};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = institution_keys)]
pub struct KeyVersion {
    pub institution_id: i64,
    pub version: i32,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
    /// The link to the version before it (client-crypto `key_chain`); `None` for version 1 and
    /// for versions made before links were kept.
    pub link: Option<String>,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = key_envelopes)]
pub struct Envelope {
    pub id: i64,
    pub institution_id: i64,
    pub key_version: i32,
    pub recipient_id: i64,
    pub envelope: String,
    pub granted_by: i64,
    pub granted_at: NaiveDateTime,
}

/// A member of an institution as the keys page shows it.
#[derive(Queryable, Debug, Clone)]
pub struct Member {
    pub user_id: i64,
    pub login: String,
    pub full_name: String,
    pub public_key: Option<String>,
    pub fingerprint: Option<String>,
}

pub fn set_public_key(
    conn: &mut DbConn,
    user_id: i64,
    public_key: &str,
    fingerprint: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id))
        .set((
            users::public_key.eq(public_key),
            users::public_key_fingerprint.eq(fingerprint),
            users::public_key_at.eq(at),
        ))
        .execute(conn)
}

/// The user's public key, if it has one.
pub fn public_key_of(conn: &mut DbConn, user_id: i64) -> QueryResult<Option<String>> {
    users::table
        .find(user_id)
        .select(users::public_key)
        .first(conn)
}

/// Active members of an institution, by login.
pub fn members(conn: &mut DbConn, institution_id: i64) -> QueryResult<Vec<Member>> {
    users::table
        .filter(users::institution_id.eq(institution_id))
        .filter(users::active.eq(true))
        .select((
            users::id,
            users::login,
            users::full_name,
            users::public_key,
            users::public_key_fingerprint,
        ))
        .order(users::login.asc())
        .load(conn)
}

pub fn versions(conn: &mut DbConn, institution_id: i64) -> QueryResult<Vec<KeyVersion>> {
    institution_keys::table
        .filter(institution_keys::institution_id.eq(institution_id))
        .select(KeyVersion::as_select())
        .order(institution_keys::version.asc())
        .load(conn)
}

/// The newest key version of an institution (`None` before its first key).
pub fn current_version(conn: &mut DbConn, institution_id: i64) -> QueryResult<Option<i32>> {
    institution_keys::table
        .filter(institution_keys::institution_id.eq(institution_id))
        .select(diesel::dsl::max(institution_keys::version))
        .first(conn)
}

pub fn insert_version(
    conn: &mut DbConn,
    institution_id: i64,
    version: i32,
    created_by: i64,
    at: NaiveDateTime,
    link: Option<&str>,
) -> QueryResult<usize> {
    diesel::insert_into(institution_keys::table)
        .values((
            institution_keys::institution_id.eq(institution_id),
            institution_keys::version.eq(version),
            institution_keys::created_by.eq(created_by),
            institution_keys::created_at.eq(at),
            institution_keys::link.eq(link),
        ))
        .execute(conn)
}

/// Adds the link of a version that has none; false when it has one already (or no such
/// version): a link, once stored, is never replaced.
pub fn add_link(
    conn: &mut DbConn,
    institution_id: i64,
    version: i32,
    link: &str,
) -> QueryResult<bool> {
    let changed = diesel::update(
        institution_keys::table
            .filter(institution_keys::institution_id.eq(institution_id))
            .filter(institution_keys::version.eq(version))
            .filter(institution_keys::link.is_null()),
    )
    .set(institution_keys::link.eq(link))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Every envelope of an institution (to show who holds which version).
pub fn envelopes_of_institution(
    conn: &mut DbConn,
    institution_id: i64,
) -> QueryResult<Vec<(i64, i32)>> {
    key_envelopes::table
        .filter(key_envelopes::institution_id.eq(institution_id))
        .select((key_envelopes::recipient_id, key_envelopes::key_version))
        .load(conn)
}

/// The envelopes made for a user under its institution's keys (none for a region-wide user),
/// each with its version's link.
pub fn envelopes_for(
    conn: &mut DbConn,
    recipient_id: i64,
    institution_id: Option<i64>,
) -> QueryResult<Vec<(Envelope, Option<String>)>> {
    let Some(institution_id) = institution_id else {
        return Ok(Vec::new());
    };
    key_envelopes::table
        .inner_join(
            institution_keys::table.on(institution_keys::institution_id
                .eq(key_envelopes::institution_id)
                .and(institution_keys::version.eq(key_envelopes::key_version))),
        )
        .filter(key_envelopes::recipient_id.eq(recipient_id))
        .filter(key_envelopes::institution_id.eq(institution_id))
        .select((Envelope::as_select(), institution_keys::link))
        .order((
            key_envelopes::institution_id.asc(),
            key_envelopes::key_version.asc(),
        ))
        .load(conn)
}

pub fn holds(
    conn: &mut DbConn,
    user_id: i64,
    institution_id: i64,
    version: i32,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        key_envelopes::table
            .filter(key_envelopes::recipient_id.eq(user_id))
            .filter(key_envelopes::institution_id.eq(institution_id))
            .filter(key_envelopes::key_version.eq(version)),
    ))
    .get_result(conn)
}

/// Stores (or replaces) the envelope of a version for a recipient.
pub fn put_envelope(
    conn: &mut DbConn,
    institution_id: i64,
    version: i32,
    recipient_id: i64,
    envelope: &str,
    granted_by: i64,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::delete(
        key_envelopes::table
            .filter(key_envelopes::recipient_id.eq(recipient_id))
            .filter(key_envelopes::institution_id.eq(institution_id))
            .filter(key_envelopes::key_version.eq(version)),
    )
    .execute(conn)?;
    diesel::insert_into(key_envelopes::table)
        .values((
            key_envelopes::institution_id.eq(institution_id),
            key_envelopes::key_version.eq(version),
            key_envelopes::recipient_id.eq(recipient_id),
            key_envelopes::envelope.eq(envelope),
            key_envelopes::granted_by.eq(granted_by),
            key_envelopes::granted_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// What [`withdraw_newest`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Withdrawal {
    /// Withdrawn, with this many envelopes.
    Done { envelopes: usize },
    /// Not the newest version (the newest is given; `None`: the institution has none).
    NotNewest(Option<i32>),
    /// Passports or notes are sealed under it: withdrawing it would lose them.
    InUse { passports: i64, notes: i64 },
}

/// Withdraws the newest key version of an institution and its envelopes, when nothing is
/// sealed under it (the operator's remedy for a planted version; see `palreg keys withdraw`).
pub fn withdraw_newest(
    conn: &mut DbConn,
    institution_id: i64,
    version: i32,
) -> QueryResult<Withdrawal> {
    use crate::db::schema::{observations, patients};
    let newest = current_version(conn, institution_id)?;
    if newest != Some(version) {
        return Ok(Withdrawal::NotNewest(newest));
    }
    let passports: i64 = patients::table
        .filter(patients::institution_id.eq(institution_id))
        .filter(patients::passport_key_version.ge(version))
        .count()
        .get_result(conn)?;
    let notes: i64 = observations::table
        .filter(observations::institution_id.eq(institution_id))
        .filter(observations::note_key_version.ge(version))
        .count()
        .get_result(conn)?;
    if passports > 0 || notes > 0 {
        return Ok(Withdrawal::InUse { passports, notes });
    }
    let envelopes = diesel::delete(
        key_envelopes::table
            .filter(key_envelopes::institution_id.eq(institution_id))
            .filter(key_envelopes::key_version.eq(version)),
    )
    .execute(conn)?;
    diesel::delete(
        institution_keys::table
            .filter(institution_keys::institution_id.eq(institution_id))
            .filter(institution_keys::version.eq(version)),
    )
    .execute(conn)?;
    Ok(Withdrawal::Done { envelopes })
}

/// Deletes every envelope of a user (de-registration, or a new key pair).
pub fn delete_envelopes_of(conn: &mut DbConn, user_id: i64) -> QueryResult<usize> {
    diesel::delete(key_envelopes::table.filter(key_envelopes::recipient_id.eq(user_id)))
        .execute(conn)
}
