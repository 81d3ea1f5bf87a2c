//! Queries, one file per table (or per closely linked group of tables).

pub mod audit;
pub mod keys;
pub mod observations;
pub mod patients;
pub mod prescriptions;
pub mod rbac;
pub mod refs;
pub mod reports;
pub mod sessions;
pub mod sign_in;
pub mod totp;
pub mod users;

use chrono::{NaiveDateTime, SubsecRound, Utc};

/// The current UTC time at microsecond precision (what both backends store exactly).
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}
