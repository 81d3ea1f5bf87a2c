//! The sign-in rate limit's windows (`sign_in_windows`): the attempts of one client, counted
//! in the database so that every replica counts them together (see [`crate::ratelimit`]).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::sign_in_windows;

/// Counts one sign-in attempt of `client` at `now`, in windows of `window` that allow `limit`
/// attempts each: `Ok(())` when the attempt may go on, `Err(seconds)` until the window ends
/// once the limit is spent (a refused attempt counts too: it is one more try). Windows that
/// have ended, of any client, are deleted, so the table holds only the clients of the last
/// `window`.
///
/// On PostgreSQL replicas count at once, each in its own transaction. The statements take row
/// locks in an order that cannot deadlock: this client's row first (its ended window deleted,
/// then the count), then other clients' ended windows, skipping any another transaction holds.
/// A transaction so waits only for this client's row, before it holds any other.
pub fn count(
    conn: &mut DbConn,
    client: &str,
    now: NaiveDateTime,
    window: chrono::Duration,
    limit: u32,
) -> QueryResult<Result<(), u64>> {
    let ended = now - window;
    diesel::delete(
        sign_in_windows::table
            .filter(sign_in_windows::client_key.eq(client))
            .filter(sign_in_windows::started_at.le(ended)),
    )
    .execute(conn)?;
    // Two replicas counting the same client at once: the unique key makes one of them update
    // the row the other inserted.
    let (started_at, attempts): (NaiveDateTime, i32) = crate::per_backend!(conn, |c| {
        diesel::insert_into(sign_in_windows::table)
            .values((
                sign_in_windows::client_key.eq(client),
                sign_in_windows::started_at.eq(now),
                sign_in_windows::attempts.eq(1),
            ))
            .on_conflict(sign_in_windows::client_key)
            .do_update()
            .set(sign_in_windows::attempts.eq(sign_in_windows::attempts + 1))
            .returning((sign_in_windows::started_at, sign_in_windows::attempts))
            .get_result(c)
    })?;
    forget_ended(conn, client, ended)?;
    if u32::try_from(attempts).unwrap_or(u32::MAX) <= limit {
        return Ok(Ok(()));
    }
    let wait = (started_at + window - now).num_seconds().max(1);
    Ok(Err(u64::try_from(wait).unwrap_or(1)))
}

/// Deletes the windows of other clients than `client` that started at or before `ended`. On
/// PostgreSQL without waiting for a row another transaction holds (it is deleted by a later
/// attempt); SQLite's writers take turns anyway.
fn forget_ended(conn: &mut DbConn, client: &str, ended: NaiveDateTime) -> QueryResult<usize> {
    use diesel::sql_types::{Text, Timestamp};
    match conn {
        DbConn::Sqlite(c) => diesel::delete(
            sign_in_windows::table
                .filter(sign_in_windows::started_at.le(ended))
                .filter(sign_in_windows::client_key.ne(client)),
        )
        .execute(c),
        DbConn::Pg(c) => diesel::sql_query(
            "DELETE FROM sign_in_windows WHERE client_key IN (SELECT client_key \
             FROM sign_in_windows WHERE started_at <= $1 AND client_key <> $2 \
             FOR UPDATE SKIP LOCKED)",
        )
        .bind::<Timestamp, _>(ended)
        .bind::<Text, _>(client)
        .execute(c),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn a_window_allows_its_limit_then_ends() {
        let (_dir, mut conn) = crate::db::testing::migrated_sqlite("windows.db");
        let start = crate::db::models::now();
        let minute = Duration::minutes(1);
        let at = |secs| start + Duration::seconds(secs);
        for secs in 0..3 {
            assert_eq!(
                count(&mut conn, "203.0.113.7", at(secs), minute, 3),
                Ok(Ok(()))
            );
        }
        // The fourth in the window is refused until the window ends, and counted.
        assert_eq!(
            count(&mut conn, "203.0.113.7", at(20), minute, 3),
            Ok(Err(40))
        );
        assert_eq!(
            count(&mut conn, "203.0.113.7", at(59), minute, 3),
            Ok(Err(1))
        );
        // Another client has its own window.
        assert_eq!(
            count(&mut conn, "2001:db8::/64", at(30), minute, 3),
            Ok(Ok(()))
        );
        // A minute on, the first client's window has ended and is gone: a new one starts.
        assert_eq!(
            count(&mut conn, "203.0.113.7", at(60), minute, 3),
            Ok(Ok(()))
        );
        let windows: Vec<(String, i32)> = sign_in_windows::table
            .select((sign_in_windows::client_key, sign_in_windows::attempts))
            .order(sign_in_windows::client_key)
            .load(&mut conn)
            .unwrap();
        assert_eq!(
            windows,
            [("2001:db8::/64".into(), 1), ("203.0.113.7".into(), 1)]
        );
        // And once every window has ended, the table is empty after the next attempt's own.
        assert_eq!(
            count(&mut conn, "198.51.100.1", at(200), minute, 3),
            Ok(Ok(()))
        );
        let left: i64 = sign_in_windows::table
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(left, 1);
    }
}
