//! Who a live session is, remembered between requests and trusted only while one number in the
//! database stays the same.
//!
//! Every authenticated request must see a logout, a password change, a de-registration or a
//! change of roles at once, on every replica (design.md, "Sessions"). Finding that out by
//! joining the session, the account, its roles and their permissions took a third of the
//! server's time in a read by id (bench/README.md, seventh session). Instead, triggers in the
//! database move `auth_epoch` on whenever any of those rows change, in the same transaction as
//! the change (migration `auth_epoch`). A request reads that one number first; what this cache
//! remembers of a session counts only if it was looked up under the same number. Any change, by
//! any replica, by the command line or by hand in SQL, so sends every request back to the full
//! lookup once. The session's expiry is checked here against the clock, as the query does.
//!
//! Reading the number *before* the lookup is what makes this safe: a lookup never sees an
//! older state than the number it is remembered under, so an entry can be too new (and is
//! looked up again) but never too old.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::db::DbConn;
use crate::db::models::sessions::{self, SessionUser};

/// Sessions remembered at most; when full, the cache starts over (a burst of sign-ins costs
/// one full lookup each, as without the cache).
const MAX_SESSIONS: usize = 10_000;

#[derive(Clone)]
struct Remembered {
    epoch: i64,
    user_id: i64,
    expires_at: NaiveDateTime,
    user: SessionUser,
}

/// What one server process remembers by a string key, shared by every worker: at most `max`
/// entries, and when full it starts over. The session cache and the memory of checked tokens
/// ([`crate::auth::TokenKeys`]) are two of these.
pub struct Memory<V> {
    entries: Mutex<HashMap<String, V>>,
    max: usize,
}

impl<V: Clone> Memory<V> {
    pub fn new(max: usize) -> Self {
        Self {
            entries: Mutex::default(),
            max,
        }
    }

    pub fn find(&self, key: &str) -> Option<V> {
        self.lock().get(key).cloned()
    }

    pub fn remember(&self, key: &str, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.max {
            entries.clear();
        }
        entries.insert(key.to_string(), value);
    }

    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, V>> {
        // The map holds no invariant a panic could break half way.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Shared by every worker of one server process.
pub struct SessionCache {
    sessions: Memory<Remembered>,
}

impl Default for SessionCache {
    fn default() -> Self {
        Self {
            sessions: Memory::new(MAX_SESSIONS),
        }
    }
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache").finish_non_exhaustive()
    }
}

impl SessionCache {
    /// The account of a live session, as [`sessions::live_principal`] answers it now: `None`
    /// when the session is revoked, expired, of another user, or the account is inactive.
    pub fn live(
        &self,
        conn: &mut DbConn,
        session_id: &str,
        user_id: i64,
        now: NaiveDateTime,
    ) -> QueryResult<Option<SessionUser>> {
        let epoch = sessions::auth_epoch(conn)?;
        if let Some((found_under, user)) = self.remembered(session_id, user_id, now)
            && found_under == epoch
        {
            return Ok(Some(user));
        }
        let Some((user, expires_at)) = sessions::live_principal(conn, session_id, user_id, now)?
        else {
            self.sessions.forget(session_id);
            return Ok(None);
        };
        self.sessions.remember(
            session_id,
            Remembered {
                epoch,
                user_id,
                expires_at,
                user: user.clone(),
            },
        );
        Ok(Some(user))
    }

    /// What [`Self::live`] last found of the session, and the epoch it was found under, if
    /// that is still this user's unexpired session; the database is not asked, so the epoch
    /// must be compared with one read in the same snapshot as whatever this lets in.
    pub fn remembered(
        &self,
        session_id: &str,
        user_id: i64,
        now: NaiveDateTime,
    ) -> Option<(i64, SessionUser)> {
        self.sessions
            .find(session_id)
            .filter(|r| r.user_id == user_id && r.expires_at > now)
            .map(|r| (r.epoch, r.user))
    }
}
