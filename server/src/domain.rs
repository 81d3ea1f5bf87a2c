//! Parsed inputs: every value that comes from a request becomes one of these before it is used.

use chrono::{Datelike, NaiveDate, NaiveDateTime};

use crate::error::ApiError;

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// A sign-in name: 3–64 characters of `a-z 0-9 . _ -`, stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login(String);

impl Login {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let value = raw.trim().to_lowercase();
        let ok_chars = value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if !(3..=64).contains(&value.len()) || !ok_chars {
            return Err(bad(
                "invalid_login",
                "a login has 3 to 64 characters: latin letters, digits, '.', '_' or '-'",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's displayed name: 1–200 characters, any script, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let value = collapse_spaces(raw);
        if value.is_empty() || value.chars().count() > 200 || value.chars().any(char::is_control) {
            return Err(bad(
                "invalid_full_name",
                "a full name has 1 to 200 characters and no control characters",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password that meets the policy.
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        crate::password::check_strength(raw).map_err(|m| bad("weak_password", m))?;
        Ok(Self(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// A reference-book or role code: 1–64 characters of letters, digits, `. _ -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let value = raw.trim();
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(bad(
                "invalid_code",
                "a code has 1 to 64 characters: latin letters, digits, '.', '_' or '-'",
            ));
        }
        Ok(Self(value.to_string()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A reference-book entry's name: 1–300 characters, any script.
pub fn parse_name(field: &'static str, raw: &str) -> Result<String, ApiError> {
    let value = collapse_spaces(raw);
    if value.is_empty() || value.chars().count() > 300 || value.chars().any(char::is_control) {
        return Err(bad(
            "invalid_name",
            format!("`{field}` must have 1 to 300 characters and no control characters"),
        ));
    }
    Ok(value)
}

fn collapse_spaces(raw: &str) -> String {
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The latest calendar date a clinician may write (a registration, an observation, a
/// prescription). The server's clock is UTC, but a clinician writes the date of the calendar
/// where it works: east of Greenwich (Russia spans UTC+2 to UTC+12) that is already the next day
/// for part of every day (from 21:00 UTC in Moscow). So "not in the future" means not after the
/// date somewhere on Earth now (the easternmost zone is UTC+14).
pub fn latest_calendar_date(now_utc: NaiveDateTime) -> NaiveDate {
    (now_utc + chrono::Duration::hours(14)).date()
}

/// The earliest year of a date the register takes (a period asked for, a prescription, an
/// observation): nothing in it is older than its oldest patient's birth year. chrono reads
/// dates thousands of years before Christ, which PostgreSQL cannot store or compare.
pub const EARLIEST_YEAR: i32 = 1900;

/// 400 `invalid_dates` for a date before [`EARLIEST_YEAR`].
pub fn check_date(field: &str, date: NaiveDate) -> Result<(), ApiError> {
    if date.year() < EARLIEST_YEAR {
        return Err(ApiError::bad_request(
            "invalid_dates",
            format!("{field}: the register's dates start in {EARLIEST_YEAR}"),
        ));
    }
    Ok(())
}

/// [`check_date`] for each date given among a request's optional ones.
pub fn check_dates(dates: &[(&str, Option<NaiveDate>)]) -> Result<(), ApiError> {
    for (field, date) in dates {
        if let Some(date) = date {
            check_date(field, *date)?;
        }
    }
    Ok(())
}

/// 400 `invalid_filter` for a text filter that no stored value can equal: longer than 200
/// characters, or holding a control character (PostgreSQL refuses a NUL in any text).
pub fn check_filter_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > 200 || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_filter",
            format!("{field}: at most 200 characters, no control characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_is_normalized_and_checked() {
        assert_eq!(
            Login::parse("  Dr.Ivanova ").unwrap().as_str(),
            "dr.ivanova"
        );
        assert!(Login::parse("ab").is_err());
        assert!(Login::parse("иванова").is_err());
        assert!(Login::parse("a b c").is_err());
    }

    #[test]
    fn full_name_accepts_cyrillic() {
        assert_eq!(
            FullName::parse(" Иванова   Мария ").unwrap().as_str(),
            "Иванова Мария"
        );
        assert!(FullName::parse("   ").is_err());
        assert!(FullName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn codes() {
        assert!(Code::parse("C50").is_ok());
        assert!(Code::parse("MOR-TAB-10").is_ok());
        assert!(Code::parse("").is_err());
        assert!(Code::parse("a b").is_err());
        assert_eq!(parse_name("name", " Морфин  ").unwrap(), "Морфин");
    }
}
