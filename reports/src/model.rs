//! The plain input structs the server fills from its aggregate queries.
//!
//! Nothing here knows a database row or an HTTP request: the server maps its own types onto
//! these, and every renderer in this crate reads only these.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use crate::ReportError;

/// Language of every label, heading and footnote of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    Ru,
}

/// What every report says about itself in its header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportMeta {
    pub title: String,
    /// Names of the institutions the report covers (one for a prescription report).
    pub institutions: Vec<String>,
    /// First day of the period, inclusive.
    pub period_from: NaiveDate,
    /// Last day of the period, inclusive.
    pub period_to: NaiveDate,
    /// When the report was produced, in UTC.
    pub generated_at: NaiveDateTime,
    /// Who asked for it (a user's display name or login).
    pub author: String,
    pub locale: Locale,
}

impl ReportMeta {
    pub(crate) fn check(&self) -> Result<(), ReportError> {
        if self.period_from > self.period_to {
            return Err(ReportError::InvalidInput(format!(
                "period starts ({}) after it ends ({})",
                self.period_from, self.period_to
            )));
        }
        Ok(())
    }
}

/// An exact, non-negative decimal quantity with at most three fractional digits.
///
/// Prescribed quantities are decimals ("2.5" ampoules, "0.125" g) and their totals must be
/// exact, so they are kept as an integer count of thousandths rather than as `f64`, where
/// `0.1 + 0.2 != 0.3`. On the wire (JSON) a quantity is a decimal string such as `"2.5"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(u64);

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);
    const SCALE: u64 = 1000;

    /// A quantity of `milli` thousandths of a unit.
    pub const fn from_milli(milli: u64) -> Self {
        Quantity(milli)
    }

    /// The quantity in thousandths of a unit.
    pub const fn milli(self) -> u64 {
        self.0
    }

    /// Parses `"12"`, `"2.5"`, `"0.125"` or `"2,5"` (decimal comma). Rejects signs, exponents,
    /// more than three fractional digits and values that do not fit.
    pub fn parse(text: &str) -> Result<Self, ReportError> {
        let bad = || ReportError::InvalidInput(format!("not a quantity: {text:?}"));
        let text = text.trim();
        let (int_part, frac_part) = match text.find(['.', ',']) {
            Some(i) => (&text[..i], &text[i + 1..]),
            None => (text, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
            return Err(bad());
        }
        if frac_part.len() > 3 || (text.len() > int_part.len() && frac_part.is_empty()) {
            return Err(bad());
        }
        let int: u64 = int_part.parse().map_err(|_| bad())?;
        let mut frac: u64 = 0;
        for (i, b) in frac_part.bytes().enumerate() {
            frac += u64::from(b - b'0') * 10u64.pow(2 - i as u32);
        }
        int.checked_mul(Self::SCALE)
            .and_then(|m| m.checked_add(frac))
            .map(Quantity)
            .ok_or_else(bad)
    }

    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_add(other.0).map(Quantity)
    }

    /// Formats with the locale's decimal separator and no trailing zeros.
    pub fn format(self, locale: Locale) -> String {
        let text = self.to_string();
        match locale {
            Locale::En => text,
            Locale::Ru => text.replace('.', ","),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let int = self.0 / Self::SCALE;
        let frac = self.0 % Self::SCALE;
        if frac == 0 {
            return write!(f, "{int}");
        }
        let digits = format!("{frac:03}");
        write!(f, "{int}.{}", digits.trim_end_matches('0'))
    }
}

impl FromStr for Quantity {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Quantity::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// One prescription, as listed in the prescription report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrescriptionRow {
    /// The prescription's number as the institution knows it.
    pub number: String,
    pub date: NaiveDate,
    /// The patient's full pseudonym; the report prints only its first 8 characters and "…".
    pub pseudonym: String,
    pub medicament: String,
    /// A controlled (narcotic or psychotropic) substance, totalled in its own section.
    pub controlled: bool,
    pub dose: String,
    pub route: String,
    pub frequency: String,
    pub quantity: Quantity,
    /// Unit of `quantity` ("ampoule", "mg", "tablet"…); totals are per medicament and unit.
    pub unit: String,
    pub prescriber: String,
    pub status: String,
}

/// Age bands of the summary report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AgeBand {
    #[serde(rename = "0-17")]
    Under18,
    #[serde(rename = "18-44")]
    From18To44,
    #[serde(rename = "45-64")]
    From45To64,
    #[serde(rename = "65-74")]
    From65To74,
    #[serde(rename = "75-84")]
    From75To84,
    #[serde(rename = "85+")]
    From85,
}

impl AgeBand {
    pub const ALL: [AgeBand; 6] = [
        AgeBand::Under18,
        AgeBand::From18To44,
        AgeBand::From45To64,
        AgeBand::From65To74,
        AgeBand::From75To84,
        AgeBand::From85,
    ];

    /// The band of a person aged `years` full years.
    pub fn from_age(years: u32) -> Self {
        match years {
            0..=17 => AgeBand::Under18,
            18..=44 => AgeBand::From18To44,
            45..=64 => AgeBand::From45To64,
            65..=74 => AgeBand::From65To74,
            75..=84 => AgeBand::From75To84,
            _ => AgeBand::From85,
        }
    }

    /// The band's key as used in JSON and on the page ("18-44", "85+").
    pub fn key(self) -> &'static str {
        match self {
            AgeBand::Under18 => "0-17",
            AgeBand::From18To44 => "18-44",
            AgeBand::From45To64 => "45-64",
            AgeBand::From65To74 => "65-74",
            AgeBand::From75To84 => "75-84",
            AgeBand::From85 => "85+",
        }
    }
}

/// Sex as recorded in the medical record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Sex {
    #[serde(rename = "M")]
    Male,
    #[serde(rename = "F")]
    Female,
    #[serde(rename = "unknown")]
    Unknown,
}

impl Sex {
    pub const ALL: [Sex; 3] = [Sex::Male, Sex::Female, Sex::Unknown];

    pub fn key(self) -> &'static str {
        match self {
            Sex::Male => "M",
            Sex::Female => "F",
            Sex::Unknown => "unknown",
        }
    }
}

/// How much of one medicament an institution prescribed in the period, and to how many
/// patients. The patient count decides suppression of the quantity (see the crate README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MedicamentNeed {
    pub medicament: String,
    pub unit: String,
    pub controlled: bool,
    pub quantity: Quantity,
    /// Distinct patients the medicament was prescribed to.
    pub patients: u64,
}

/// Raw (unsuppressed) counts of one institution for the summary report.
///
/// The breakdowns (`icd10_blocks`, `age_sex`, `care_forms`) are partitions of the same
/// population, which the server chooses (e.g. patients on the register at some time in the
/// period); `needs` is not a partition, since a patient may have several needs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstitutionCounts {
    pub institution: String,
    pub on_register_at_start: u64,
    pub on_register_at_end: u64,
    pub newly_registered: u64,
    pub discharged: u64,
    pub deceased: u64,
    /// ICD-10 block ("C15-C26") → patients.
    pub icd10_blocks: BTreeMap<String, u64>,
    /// Age band → sex → patients.
    pub age_sex: BTreeMap<AgeBand, BTreeMap<Sex, u64>>,
    /// Care form → patients.
    pub care_forms: BTreeMap<String, u64>,
    /// Need → patients having it.
    pub needs: BTreeMap<String, u64>,
    pub medicaments: Vec<MedicamentNeed>,
}

/// Everything the summary report is computed from: one entry per institution.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SummaryInput {
    pub institutions: Vec<InstitutionCounts>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_parses_exact_decimals() {
        assert_eq!(Quantity::parse("12").unwrap().milli(), 12_000);
        assert_eq!(Quantity::parse("2.5").unwrap().milli(), 2_500);
        assert_eq!(Quantity::parse("2,5").unwrap().milli(), 2_500);
        assert_eq!(Quantity::parse("0.125").unwrap().milli(), 125);
        assert_eq!(Quantity::parse(" 7.05 ").unwrap().milli(), 7_050);
    }

    #[test]
    fn quantity_rejects_what_is_not_a_plain_decimal() {
        for bad in [
            "", "-1", "+1", "1e3", "1.2345", ".5", "5.", "1.2.3", "abc", "1 000",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Quantity::parse("99999999999999999999").is_err());
    }

    #[test]
    fn quantity_prints_without_trailing_zeros() {
        assert_eq!(Quantity::from_milli(2_500).to_string(), "2.5");
        assert_eq!(Quantity::from_milli(12_000).to_string(), "12");
        assert_eq!(Quantity::from_milli(125).to_string(), "0.125");
        assert_eq!(Quantity::from_milli(7_050).format(Locale::Ru), "7,05");
    }

    #[test]
    fn quantity_round_trips_through_json_as_a_string() {
        let q = Quantity::parse("10.75").unwrap();
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(json, "\"10.75\"");
        assert_eq!(serde_json::from_str::<Quantity>(&json).unwrap(), q);
        assert!(serde_json::from_str::<Quantity>("\"-3\"").is_err());
    }

    #[test]
    fn age_bands_cover_every_age() {
        assert_eq!(AgeBand::from_age(0), AgeBand::Under18);
        assert_eq!(AgeBand::from_age(17), AgeBand::Under18);
        assert_eq!(AgeBand::from_age(18), AgeBand::From18To44);
        assert_eq!(AgeBand::from_age(64), AgeBand::From45To64);
        assert_eq!(AgeBand::from_age(65), AgeBand::From65To74);
        assert_eq!(AgeBand::from_age(84), AgeBand::From75To84);
        assert_eq!(AgeBand::from_age(85), AgeBand::From85);
        assert_eq!(AgeBand::from_age(120), AgeBand::From85);
    }
}
