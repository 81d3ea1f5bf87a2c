//! The append-only, hash-chained audit log.

use std::borrow::Cow;
use std::fmt::Write;

use chrono::{Datelike, NaiveDateTime, Timelike};
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::db::DbConn;
use crate::db::schema::{audit_head, audit_log};

/// The hash that precedes the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Read with diesel; written only by `head::Insert`, which binds every column.
#[derive(Queryable, Selectable, Debug, Clone, PartialEq)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
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
    pub prev_hash: String,
    pub hash: String,
    /// The institution the entry was made in (the acting account's at the time); `None` for
    /// region-wide accounts, the command line, unknown logins and entries older than this
    /// column.
    pub institution_id: Option<i64>,
}

/// What is recorded, before it gets its place in the chain (and as the audit spool keeps it).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NewEntry {
    pub at: Option<NaiveDateTime>,
    pub actor_id: Option<i64>,
    pub actor_login: Option<String>,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub outcome: String,
    pub client_addr: Option<String>,
    pub details: Option<String>,
    pub institution_id: Option<i64>,
}

impl NewEntry {
    /// The entry's fields, borrowed.
    pub fn as_entry_ref(&self) -> EntryRef<'_> {
        fn text(t: &Option<String>) -> Option<Str<'_>> {
            t.as_deref().map(|t| Str(Cow::Borrowed(t)))
        }
        EntryRef {
            at: self.at,
            actor_id: self.actor_id,
            actor_login: text(&self.actor_login),
            action: Str(Cow::Borrowed(&self.action)),
            object_type: Str(Cow::Borrowed(&self.object_type)),
            object_id: text(&self.object_id),
            outcome: Str(Cow::Borrowed(&self.outcome)),
            client_addr: text(&self.client_addr),
            details: text(&self.details),
            institution_id: self.institution_id,
        }
    }
}

/// A [`NewEntry`] whose text is borrowed: from the entry, or from a line of the audit spool
/// (which has the same fields), so that folding the spool copies no text.
#[derive(Debug, serde::Deserialize)]
pub struct EntryRef<'a> {
    pub at: Option<NaiveDateTime>,
    pub actor_id: Option<i64>,
    #[serde(borrow)]
    pub actor_login: Option<Str<'a>>,
    #[serde(borrow)]
    pub action: Str<'a>,
    #[serde(borrow)]
    pub object_type: Str<'a>,
    #[serde(borrow)]
    pub object_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub outcome: Str<'a>,
    #[serde(borrow)]
    pub client_addr: Option<Str<'a>>,
    #[serde(borrow)]
    pub details: Option<Str<'a>>,
    pub institution_id: Option<i64>,
}

/// Text read from JSON: borrowed from the input unless it was written with escapes (serde's
/// own `Cow<str>` always copies, and `&str` refuses escaped text).
#[derive(Debug, PartialEq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// An entry's columns as hashed and inserted, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    pub seq: i64,
    pub at: &'a NaiveDateTime,
    pub actor_id: Option<i64>,
    pub actor_login: Option<&'a str>,
    pub action: &'a str,
    pub object_type: &'a str,
    pub object_id: Option<&'a str>,
    pub outcome: &'a str,
    pub client_addr: Option<&'a str>,
    pub details: Option<&'a str>,
    pub prev_hash: &'a str,
    /// Not hashed: the hash itself.
    pub hash: &'a str,
    pub institution_id: Option<i64>,
}

impl AuditRow {
    pub fn as_row_ref(&self) -> RowRef<'_> {
        RowRef {
            seq: self.seq,
            at: &self.at,
            actor_id: self.actor_id,
            actor_login: self.actor_login.as_deref(),
            action: &self.action,
            object_type: &self.object_type,
            object_id: self.object_id.as_deref(),
            outcome: &self.outcome,
            client_addr: self.client_addr.as_deref(),
            details: self.details.as_deref(),
            prev_hash: &self.prev_hash,
            hash: &self.hash,
            institution_id: self.institution_id,
        }
    }
}

/// The chain hash of an entry: SHA-256 over the previous hash and the entry's fields, as a
/// JSON array (unambiguous, and stable across both backends since times are kept to the
/// microsecond). The institution is the array's eleventh element when the entry has one;
/// entries without one (all of those written before the column existed) keep the ten-element
/// form they were hashed with.
pub fn entry_hash(row: &RowRef<'_>) -> String {
    // The array written straight from the fields: the same bytes as building a
    // `serde_json::Value` and printing it (a unit test holds the two together), at a fraction
    // of the cost, since every audited request pays it.
    let mut canonical = Vec::with_capacity(256);
    let fields = (
        row.seq,
        canonical_time(row.at),
        row.actor_id,
        row.actor_login,
        row.action,
        row.object_type,
        row.object_id,
        row.outcome,
        row.client_addr,
        row.details,
    );
    // Writing plain values into a Vec cannot fail.
    let _ = match row.institution_id {
        None => serde_json::to_writer(&mut canonical, &fields),
        Some(institution) => {
            let (a, b, c, d, e, f, g, h, i, j) = fields;
            serde_json::to_writer(&mut canonical, &(a, b, c, d, e, f, g, h, i, j, institution))
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(row.prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(&canonical);
    hex::encode(hasher.finalize())
}

/// `at` as the chain hashes it: `%Y-%m-%dT%H:%M:%S%.6f`, written out by hand for the times
/// `now()` makes (chrono parses the format string again at every call).
fn canonical_time(at: &NaiveDateTime) -> String {
    match date_and_time(at, 'T') {
        Some(mut text) => {
            // Writing into a String cannot fail.
            let _ = write!(text, ".{:06}", at.nanosecond() / 1000);
            text
        }
        None => at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
    }
}

/// `at` as diesel writes a `Timestamp` into SQLite (chrono's `%F %T%.f`: no fraction, or 3, 6
/// or 9 digits, the fewest that keep it), written out by hand as [`canonical_time`] is.
fn sqlite_time(at: &NaiveDateTime) -> String {
    let Some(mut text) = date_and_time(at, ' ') else {
        return at.format("%F %T%.f").to_string();
    };
    let nanos = at.nanosecond();
    // Writing into a String cannot fail.
    let _ = if nanos == 0 {
        Ok(())
    } else if nanos.is_multiple_of(1_000_000) {
        write!(text, ".{:03}", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        write!(text, ".{:06}", nanos / 1_000)
    } else {
        write!(text, ".{nanos:09}")
    };
    text
}

/// `at` to the second, `YYYY-MM-DD{between}HH:MM:SS`, as chrono writes it; `None` where chrono
/// writes otherwise: outside four-digit years (with a sign), and in a leap second (as :60).
fn date_and_time(at: &NaiveDateTime, between: char) -> Option<String> {
    if !(0..=9999).contains(&at.year()) || at.nanosecond() >= 1_000_000_000 {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}{between}{:02}:{:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    ))
}

/// A place reserved at the head of the chain inside an open transaction.
#[derive(Debug)]
pub struct Reserved {
    seq: i64,
    prev_hash: String,
}

/// Takes the next place in the chain. Call it first in the transaction of the change it
/// records: the head update serializes concurrent appends (a row lock in PostgreSQL, and the
/// write lock taken up front in SQLite, so a later write never meets a stale snapshot).
pub fn reserve(conn: &mut DbConn) -> QueryResult<Reserved> {
    let (seq, prev_hash) = take_places(conn, 1)?;
    Ok(Reserved { seq, prev_hash })
}

/// Moves the head's sequence `count` places on; returns the first place taken and the hash
/// of the entry before it.
fn take_places(conn: &mut DbConn, count: i64) -> QueryResult<(i64, String)> {
    let (last, prev_hash): (i64, String) = head::MoveOn { count }.get_result(conn)?;
    Ok((last - count + 1, prev_hash))
}

/// The three statements that every audited request runs, written out so that diesel keeps
/// them prepared: it prepares any `diesel::update` anew each time (its SET clause may change
/// shape), and any insert of a row with a `None` in it (SQLite has no `DEFAULT` in `VALUES`,
/// so diesel leaves those columns out, and the statement's shape depends on the values).
mod head {
    use chrono::NaiveDateTime;
    use diesel::backend::Backend;
    use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
    use diesel::serialize::ToSql;
    use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
    use diesel::{QueryResult, RunQueryDsl};

    use super::RowRef;

    /// `seq` moves `count` on; returns the new `seq` and the hash of the last entry.
    #[derive(QueryId)]
    pub struct MoveOn {
        pub count: i64,
    }

    impl Query for MoveOn {
        type SqlType = (BigInt, Text);
    }

    impl<DB> QueryFragment<DB> for MoveOn
    where
        DB: Backend,
        i64: ToSql<BigInt, DB>,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
            out.push_sql("UPDATE audit_head SET seq = seq + ");
            out.push_bind_param::<BigInt, i64>(&self.count)?;
            out.push_sql(" WHERE id = 1 RETURNING seq, hash");
            Ok(())
        }
    }

    impl<Conn> RunQueryDsl<Conn> for MoveOn {}

    /// The head's hash becomes that of the last entry written.
    #[derive(QueryId)]
    pub struct SetHash {
        pub hash: String,
    }

    impl<DB> QueryFragment<DB> for SetHash
    where
        DB: Backend,
        String: ToSql<Text, DB>,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
            out.push_sql("UPDATE audit_head SET hash = ");
            out.push_bind_param::<Text, String>(&self.hash)?;
            out.push_sql(" WHERE id = 1");
            Ok(())
        }
    }

    impl<Conn> RunQueryDsl<Conn> for SetHash {}

    /// One entry, every column bound (a `None` as NULL).
    pub struct Insert<'a> {
        row: RowRef<'a>,
        at: Time<'a>,
    }

    impl<'a> Insert<'a> {
        pub fn new(row: RowRef<'a>) -> Self {
            Self {
                row,
                at: Time(row.at),
            }
        }
    }

    impl QueryId for Insert<'_> {
        type QueryId = Insert<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    /// A time bound as diesel binds a `Timestamp`: on SQLite the same text, written out without
    /// chrono's format parser (a fold of the audit spool binds one per entry).
    #[derive(Debug)]
    pub struct Time<'a>(pub &'a NaiveDateTime);

    impl ToSql<Timestamp, diesel::sqlite::Sqlite> for Time<'_> {
        fn to_sql<'b>(
            &'b self,
            out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
        ) -> diesel::serialize::Result {
            out.set_value(super::sqlite_time(self.0));
            Ok(diesel::serialize::IsNull::No)
        }
    }

    impl ToSql<Timestamp, diesel::pg::Pg> for Time<'_> {
        fn to_sql<'b>(
            &'b self,
            out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
        ) -> diesel::serialize::Result {
            ToSql::<Timestamp, diesel::pg::Pg>::to_sql(self.0, out)
        }
    }

    impl<DB> QueryFragment<DB> for Insert<'_>
    where
        DB: Backend,
        i64: ToSql<BigInt, DB>,
        for<'x> Time<'x>: ToSql<Timestamp, DB>,
        str: ToSql<Text, DB>,
        Option<i64>: ToSql<Nullable<BigInt>, DB>,
        for<'x> Option<&'x str>: ToSql<Nullable<Text>, DB>,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
            let row = &self.row;
            out.push_sql(
                "INSERT INTO audit_log (seq, at, actor_id, actor_login, action, object_type, \
                 object_id, outcome, client_addr, details, prev_hash, hash, institution_id) \
                 VALUES (",
            );
            out.push_bind_param::<BigInt, i64>(&row.seq)?;
            out.push_sql(", ");
            out.push_bind_param::<Timestamp, Time<'_>>(&self.at)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<BigInt>, Option<i64>>(&row.actor_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, Option<&str>>(&row.actor_login)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, str>(row.action)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, str>(row.object_type)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, Option<&str>>(&row.object_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, str>(row.outcome)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, Option<&str>>(&row.client_addr)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, Option<&str>>(&row.details)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, str>(row.prev_hash)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, str>(row.hash)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<BigInt>, Option<i64>>(&row.institution_id)?;
            out.push_sql(")");
            Ok(())
        }
    }

    impl<Conn> RunQueryDsl<Conn> for Insert<'_> {}
}

/// Writes `entry` at place `seq` after `prev_hash`, at the time `at`, and returns its hash.
fn insert_chained(
    conn: &mut DbConn,
    seq: i64,
    prev_hash: &str,
    at: &NaiveDateTime,
    entry: &EntryRef<'_>,
) -> QueryResult<String> {
    fn text<'a>(t: &'a Option<Str<'_>>) -> Option<&'a str> {
        t.as_deref()
    }
    let mut row = RowRef {
        seq,
        at,
        actor_id: entry.actor_id,
        actor_login: text(&entry.actor_login),
        action: &entry.action,
        object_type: &entry.object_type,
        object_id: text(&entry.object_id),
        outcome: &entry.outcome,
        client_addr: text(&entry.client_addr),
        details: text(&entry.details),
        prev_hash,
        hash: "",
        institution_id: entry.institution_id,
    };
    let hash = entry_hash(&row);
    row.hash = &hash;
    // On the backend's own connection: a fold of the SQLite spool writes every read's entry
    // here, and through `DbConn` diesel would write the statement out twice each time.
    crate::per_backend!(conn, |c| head::Insert::new(row).execute(c))?;
    Ok(hash)
}

/// Moves the head's hash on to the last entry written.
fn set_head_hash(conn: &mut DbConn, hash: &str) -> QueryResult<()> {
    head::SetHash {
        hash: hash.to_string(),
    }
    .execute(conn)?;
    Ok(())
}

/// Writes the entry at its reserved place and moves the head's hash on.
pub fn complete(conn: &mut DbConn, place: Reserved, entry: NewEntry) -> QueryResult<AuditRow> {
    let at = entry.at.unwrap_or_else(super::now);
    let hash = insert_chained(
        conn,
        place.seq,
        &place.prev_hash,
        &at,
        &entry.as_entry_ref(),
    )?;
    set_head_hash(conn, &hash)?;
    Ok(AuditRow {
        seq: place.seq,
        at,
        actor_id: entry.actor_id,
        actor_login: entry.actor_login,
        action: entry.action,
        object_type: entry.object_type,
        object_id: entry.object_id,
        outcome: entry.outcome,
        client_addr: entry.client_addr,
        details: entry.details,
        prev_hash: place.prev_hash,
        hash,
        institution_id: entry.institution_id,
    })
}

/// Appends entries in order, chained, with one move of the head (inside a transaction).
pub fn append_many(conn: &mut DbConn, entries: &[EntryRef<'_>]) -> QueryResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let (first, mut prev_hash) = take_places(conn, entries.len() as i64)?;
    let now = super::now();
    for (seq, entry) in (first..).zip(entries) {
        prev_hash = insert_chained(
            conn,
            seq,
            &prev_hash,
            entry.at.as_ref().unwrap_or(&now),
            entry,
        )?;
    }
    set_head_hash(conn, &prev_hash)
}

/// Reserves and writes in one go (inside a transaction).
pub fn append(conn: &mut DbConn, entry: NewEntry) -> QueryResult<AuditRow> {
    let place = reserve(conn)?;
    complete(conn, place, entry)
}

/// Filters of the audit log listing.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub actor_login: Option<String>,
    pub action: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
    /// Keyset paging: only entries older than this sequence number.
    pub before_seq: Option<i64>,
    /// Only entries made in this institution: what an institution's administrator may see.
    /// An entry that names its institution counts by it; an older one, made before entries
    /// named it, counts when its account belongs to the institution now. Entries without an
    /// account or institution (sign-ins of unknown logins, the seeding) are not among them.
    pub institution: Option<i64>,
}

/// Newest first, at most `limit` entries.
pub fn list(conn: &mut DbConn, filter: &AuditFilter, limit: i64) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_log::table.select(AuditRow::as_select()).into_boxed();
    if let Some(v) = &filter.actor_login {
        query = query.filter(audit_log::actor_login.eq(v.clone()));
    }
    if let Some(v) = &filter.action {
        query = query.filter(audit_log::action.eq(v.clone()));
    }
    if let Some(v) = &filter.object_type {
        query = query.filter(audit_log::object_type.eq(v.clone()));
    }
    if let Some(v) = &filter.object_id {
        query = query.filter(audit_log::object_id.eq(v.clone()));
    }
    if let Some(v) = &filter.outcome {
        query = query.filter(audit_log::outcome.eq(v.clone()));
    }
    if let Some(v) = filter.from {
        query = query.filter(audit_log::at.ge(v));
    }
    if let Some(v) = filter.to {
        query = query.filter(audit_log::at.lt(v));
    }
    if let Some(v) = filter.before_seq {
        query = query.filter(audit_log::seq.lt(v));
    }
    if let Some(institution) = filter.institution {
        use crate::db::schema::users;
        query = query.filter(
            audit_log::institution_id
                .eq(institution)
                .or(audit_log::institution_id.is_null().and(
                    audit_log::actor_id.eq_any(
                        users::table
                            .filter(users::institution_id.eq(institution))
                            .select(users::id.nullable()),
                    ),
                )),
        );
    }
    query.order(audit_log::seq.desc()).limit(limit).load(conn)
}

/// The head of the chain: the last entry's sequence number and hash.
pub fn head(conn: &mut DbConn) -> QueryResult<(i64, String)> {
    audit_head::table
        .find(1_i64)
        .select((audit_head::seq, audit_head::hash))
        .first(conn)
}

/// Why the chain is not intact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error(
        "entry {seq}: expected sequence number {expected} (an entry was deleted or renumbered)"
    )]
    Gap { seq: i64, expected: i64 },
    #[error("entry {seq}: its previous-hash does not match the entry before it")]
    BrokenLink { seq: i64 },
    #[error("entry {seq}: its contents do not match its hash (the entry was edited)")]
    Tampered { seq: i64 },
    #[error(
        "the chain ends at entry {last} but the head says {head} (entries were deleted at the end or the head was edited)"
    )]
    HeadMismatch { last: i64, head: i64 },
}

/// Walks the whole chain in batches and reports the first bad entry.
pub fn verify(conn: &mut DbConn) -> QueryResult<Result<i64, ChainError>> {
    const BATCH: i64 = 5_000;
    let mut expected_seq = 1_i64;
    let mut prev_hash = GENESIS_HASH.to_string();
    loop {
        let rows: Vec<AuditRow> = audit_log::table
            .select(AuditRow::as_select())
            .filter(audit_log::seq.ge(expected_seq))
            .order(audit_log::seq.asc())
            .limit(BATCH)
            .load(conn)?;
        let done = rows.len() < BATCH as usize;
        for row in rows {
            if row.seq != expected_seq {
                return Ok(Err(ChainError::Gap {
                    seq: row.seq,
                    expected: expected_seq,
                }));
            }
            if row.prev_hash != prev_hash {
                return Ok(Err(ChainError::BrokenLink { seq: row.seq }));
            }
            if entry_hash(&row.as_row_ref()) != row.hash {
                return Ok(Err(ChainError::Tampered { seq: row.seq }));
            }
            prev_hash = row.hash;
            expected_seq += 1;
        }
        if done {
            break;
        }
    }
    let last = expected_seq - 1;
    let (head_seq, head_hash) = head(conn)?;
    if head_seq != last || head_hash != prev_hash {
        return Ok(Err(ChainError::HeadMismatch {
            last,
            head: head_seq,
        }));
    }
    Ok(Ok(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    /// The chain's hash as first written: a `serde_json::Value` printed, chrono's formatting.
    /// Entries already in a log were hashed this way, so `entry_hash` must keep its bytes.
    fn reference_hash(row: &AuditRow) -> String {
        hash_of(row, &reference_array(row))
    }

    fn reference_array(row: &AuditRow) -> serde_json::Value {
        serde_json::json!([
            row.seq,
            row.at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            row.actor_id,
            row.actor_login,
            row.action,
            row.object_type,
            row.object_id,
            row.outcome,
            row.client_addr,
            row.details,
        ])
    }

    fn hash_of(row: &AuditRow, canonical: &serde_json::Value) -> String {
        let mut hasher = Sha256::new();
        hasher.update(row.prev_hash.as_bytes());
        hasher.update(b"\n");
        hasher.update(canonical.to_string().as_bytes());
        hex::encode(hasher.finalize())
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_nano_opt(h, mi, s, nanos))
            .unwrap()
    }

    /// Times of every shape chrono writes differently: with and without a fraction of each
    /// length, years outside four digits, a leap second.
    fn times() -> [NaiveDateTime; 9] {
        [
            at(2026, 11, 29, 21, 5, 7, 123_456_000),
            at(2026, 1, 2, 3, 4, 5, 0),
            at(2026, 1, 2, 3, 4, 5, 120_000_000),
            at(2026, 1, 2, 3, 4, 5, 1),
            at(1999, 12, 31, 23, 59, 59, 999_999_999),
            at(5, 6, 7, 8, 9, 10, 1_000),
            at(10_000, 1, 1, 0, 0, 0, 0),
            at(-44, 3, 15, 12, 0, 0, 0),
            at(2016, 12, 31, 23, 59, 59, 1_500_000_000),
        ]
    }

    #[test]
    fn the_chain_hash_keeps_the_bytes_it_was_first_written_with() {
        let times = times();
        let texts = [
            None,
            Some(String::new()),
            Some("Иванова Мария Петровна".to_string()),
            Some("quote \" backslash \\ tab \t nl \n nul \u{0} del \u{7f}".to_string()),
            Some("{\"changed\":[\"status\"],\"emoji\":\"🩺\",\"sep\":\"\u{2028}\"}".to_string()),
        ];
        let mut checked = 0;
        for (i, at) in times.iter().enumerate() {
            for (j, text) in texts.iter().enumerate() {
                let row = AuditRow {
                    seq: [1, i64::MAX, -3][(i + j) % 3],
                    at: *at,
                    actor_id: [None, Some(7), Some(i64::MIN)][j % 3],
                    actor_login: text.clone(),
                    action: "patients.read".into(),
                    object_type: text.clone().unwrap_or_else(|| "patient".into()),
                    object_id: text.clone(),
                    outcome: "ok".into(),
                    client_addr: Some("203.0.113.9".into()),
                    details: text.clone(),
                    prev_hash: GENESIS_HASH.into(),
                    hash: String::new(),
                    institution_id: None,
                };
                assert_eq!(
                    entry_hash(&row.as_row_ref()),
                    reference_hash(&row),
                    "{row:?}"
                );
                // With an institution, the same array with one more element: it is hashed,
                // and no other entry's bytes are the same.
                let with = AuditRow {
                    institution_id: Some(i64::from(j as u8) - 1),
                    ..row.clone()
                };
                let mut reference = reference_array(&row);
                reference
                    .as_array_mut()
                    .unwrap()
                    .push(with.institution_id.into());
                assert_eq!(entry_hash(&with.as_row_ref()), hash_of(&row, &reference));
                assert_ne!(
                    entry_hash(&with.as_row_ref()),
                    entry_hash(&row.as_row_ref())
                );
                checked += 1;
            }
        }
        assert_eq!(checked, times.len() * texts.len());
    }

    #[test]
    fn a_time_is_written_into_sqlite_as_diesel_writes_it() {
        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        #[derive(QueryableByName)]
        struct Same {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            same: bool,
        }
        for at in times() {
            assert_eq!(sqlite_time(&at), at.format("%F %T%.f").to_string());
            // The text diesel itself binds is the same.
            let same = diesel::sql_query("SELECT ? = ? AS same")
                .bind::<diesel::sql_types::Timestamp, _>(at)
                .bind::<diesel::sql_types::Text, _>(sqlite_time(&at))
                .get_result::<Same>(&mut conn)
                .unwrap();
            assert!(same.same, "{at}");
        }
    }

    /// A log of the viewer's shape for the planner's statistics: reads of 5 000 patients and
    /// prescriptions by 40 accounts of 20 institutions, between sign-ins and searches that name
    /// no object.
    const LOG: &str = "
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
        INSERT INTO audit_log (seq, at, actor_id, actor_login, action, object_type, object_id,
            outcome, client_addr, details, prev_hash, hash, institution_id)
        SELECT i, datetime('2026-01-01', '+' || (i / 10) || ' minutes'), 1 + i % 40,
            'user' || (i % 40),
            CASE i % 5 WHEN 0 THEN 'auth.login' WHEN 1 THEN 'patients.search'
                WHEN 2 THEN 'prescriptions.read' ELSE 'patients.read' END,
            CASE i % 5 WHEN 0 THEN 'session' WHEN 1 THEN 'patient'
                WHEN 2 THEN 'prescription' ELSE 'patient' END,
            CASE WHEN i % 5 < 2 THEN NULL ELSE CAST(i % 5000 AS TEXT) END,
            'ok', '203.0.113.9', NULL, 'x', 'x', 1 + i % 20
        FROM n;
        ANALYZE;";

    /// The plan of the viewer's one statement for `filter`.
    fn plans_of(conn: &mut DbConn, filter: &AuditFilter) -> Vec<String> {
        let mut statements = crate::db::testing::plans_of(conn, |conn| {
            list(conn, filter, 100).unwrap();
        });
        assert_eq!(statements.len(), 1, "{statements:#?}");
        statements.remove(0).1
    }

    /// "Who opened this patient's record?" reads the entries of that object through an index
    /// (migration `audit_object`), for a region-wide and an institution's administrator alike,
    /// instead of the whole log backwards; the actor filter keeps its own index.
    #[test]
    fn the_viewer_finds_an_object_and_an_actor_by_index() {
        use diesel::connection::SimpleConnection;
        let (_dir, mut conn) = crate::db::testing::migrated_sqlite("audit.db");
        conn.batch_execute(LOG).unwrap();
        let object = |institution, object_type: Option<&str>| AuditFilter {
            object_type: object_type.map(str::to_string),
            object_id: Some("43".into()),
            institution,
            ..AuditFilter::default()
        };
        for filter in [
            object(None, Some("patient")),
            object(Some(4), Some("patient")),
            object(None, None),
            object(Some(4), None),
        ] {
            let plan = plans_of(&mut conn, &filter);
            assert!(
                plan.iter()
                    .any(|step| step.starts_with("SEARCH audit_log USING INDEX audit_log_object")),
                "{filter:?}: {plan:#?}"
            );
        }
        let by_actor = AuditFilter {
            actor_login: Some("user7".into()),
            ..AuditFilter::default()
        };
        let plan = plans_of(&mut conn, &by_actor);
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH audit_log USING INDEX audit_log_actor_login")),
            "{plan:#?}"
        );
        // And the answer is the object's entries, newest first.
        let rows = list(&mut conn, &object(None, Some("patient")), 500).unwrap();
        assert_eq!(
            rows.len(),
            10,
            "every tenth of 50 000 entries names an object"
        );
        assert!(
            rows.iter()
                .all(|r| r.object_type == "patient" && r.object_id.as_deref() == Some("43"))
        );
        assert!(rows.windows(2).all(|w| w[0].seq > w[1].seq));
    }
}
