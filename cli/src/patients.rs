//! Patients as a clinician sees them: passports sealed and opened here, blind-index tokens
//! computed here, candidates of a search filtered here.

use client_crypto::{
    BlindIndexBits, BlindIndexField, InstitutionKey, Passport, Pseudonym, normalize,
};
use serde_json::{Value, json};

use crate::api::{NewPatient, PatientView, Record};
use crate::error::{Error, Result};
use crate::keys::Clinic;

/// The blind-index tokens stored with a passport (surname, date of birth, SNILS and policy
/// number when present), under the key passports are sealed under (an
/// error when the key chain does not vouch for the newest version held).
pub fn tokens(clinic: &Clinic, p: &Passport) -> Result<Vec<String>> {
    let indexes = clinic.key()?.passport_blind_indexes(p, clinic.bits)?;
    Ok(indexes.iter().map(|i| i.to_token()).collect())
}

/// The token of `value` for `field` at the field's length for the institution's `bits` (the
/// date of birth's is shorter: its year is in clear on the record, see
/// [`BlindIndexField::index_bits`]).
fn token(
    key: &InstitutionKey,
    field: BlindIndexField,
    value: &str,
    bits: BlindIndexBits,
) -> Result<String> {
    Ok(key
        .blind_index(field, value, field.index_bits(bits))?
        .to_token())
}

/// Seals a passport under a pseudonym; the result is safe to send.
pub fn seal(
    clinic: &Clinic,
    pseudonym: &Pseudonym,
    passport: &Passport,
    record: Record,
) -> Result<NewPatient> {
    passport.validate()?;
    Ok(NewPatient {
        pseudonym: pseudonym.as_str().to_string(),
        passport: clinic
            .key()?
            .seal_passport(passport, pseudonym, clinic.institution_id)?,
        blind_indexes: tokens(clinic, passport)?,
        record,
    })
}

/// Opens a patient's passport with the key version it is sealed under (during a rotation,
/// not every passport is under the newest one yet).
pub fn open(clinic: &Clinic, patient: &PatientView) -> Result<Passport> {
    let pseudonym = Pseudonym::parse(&patient.pseudonym)?;
    let version = u32::try_from(patient.passport_key_version).ok();
    let key = version
        .and_then(|v| clinic.key_of_version(v))
        .ok_or_else(|| {
            Error::usage(format!(
                "patient {} is sealed under institution key version {}, which you do not hold: \
                 ask a colleague who holds it to grant it to you",
                patient.id, patient.passport_key_version
            ))
        })?;
    key.open_passport(&patient.passport, &pseudonym, clinic.institution_id)
        .map_err(|e| {
            // A key that does not open what it should: say why it may not be the right one.
            match (&e, version.and_then(|v| clinic.held().distrust_of(v))) {
                (client_crypto::CryptoError::DecryptionFailed, Some(distrust)) => {
                    Error::usage(format!(
                        "patient {} does not open with the key you hold as institution key \
                         version {} ({}): {}. Tell your administrator.",
                        patient.id,
                        patient.passport_key_version,
                        distrust.reason.code(),
                        distrust.why()
                    ))
                }
                _ => e.into(),
            }
        })
}

/// Registers one patient; returns its id.
pub fn add(clinic: &Clinic, passport: &Passport, record: Record) -> Result<i64> {
    let body = seal(clinic, &Pseudonym::generate()?, passport, record)?;
    let created: PatientView = clinic
        .api
        .post("/api/v1/patients", &serde_json::to_value(&body)?)?;
    Ok(created.id)
}

/// A patient with its passport opened.
pub fn show(clinic: &Clinic, id: i64) -> Result<(PatientView, Passport)> {
    let patient = clinic.api.patient(id)?;
    let passport = open(clinic, &patient)?;
    Ok((patient, passport))
}

/// Saves an edit made on `version`; a newer stored version is reported as such (409).
pub fn edit(
    clinic: &Clinic,
    id: i64,
    version: i32,
    passport: Option<&Passport>,
    record: Record,
) -> Result<PatientView> {
    let mut body = json!({"version": version, "record": record});
    if let Some(p) = passport {
        let patient = clinic.api.patient(id)?;
        let pseudonym = Pseudonym::parse(&patient.pseudonym)?;
        body["passport"] = json!(clinic.key()?.seal_passport(
            p,
            &pseudonym,
            clinic.institution_id
        )?);
        body["blind_indexes"] = json!(tokens(clinic, p)?);
    }
    clinic
        .api
        .put(&format!("/api/v1/patients/{id}"), &body)
        .map_err(|e| match e {
            Error::Api { status: 409, code, message } if code == "stale_version" => Error::Usage(
                format!("not saved: someone else changed this patient meanwhile ({message}). Run `patient show {id}` and edit again."),
            ),
            other => other,
        })
}

/// The newest key versions a search sends tokens for: a query has at most four tokens per
/// version and the server takes at most 64. Passports are re-sealed under the newest version
/// by a rotation, so only the last few versions ever hold any.
const MAX_SEARCH_VERSIONS: usize = 16;

/// What to look for. Identifying values become blind-index tokens (never sent in clear);
/// `filters` are the server's ordinary record filters (diagnosis_id, status, ...).
#[derive(Default, Debug, Clone)]
pub struct Query {
    pub surname: Option<String>,
    pub date_of_birth: Option<String>,
    pub birth_year: Option<i32>,
    pub snils: Option<String>,
    pub policy: Option<String>,
    pub filters: serde_json::Map<String, Value>,
}

impl Query {
    /// The search request. Tokens are computed under every trusted key version held, since
    /// during a rotation a patient's stored tokens are those of its passport's version; the
    /// server matches any token of a field. Never under a version the key chain does not vouch
    /// for: whoever planted it could test guesses of the values against its tokens.
    fn request(&self, clinic: &Clinic) -> Result<Value> {
        let token_keys = clinic.token_keys();
        let identifying = [
            &self.surname,
            &self.date_of_birth,
            &self.snils,
            &self.policy,
        ]
        .iter()
        .any(|v| v.is_some());
        if identifying && token_keys.is_empty() {
            // No tokens at all would ask the server for every patient; refuse instead, naming
            // why no version held is trusted.
            return Err(match clinic.held().distrust() {
                Some(distrust) => Error::UntrustedKey(distrust),
                None => Error::usage("no trusted institution key version to search with"),
            });
        }
        let mut tokens = Vec::new();
        for key in token_keys.into_iter().rev().take(MAX_SEARCH_VERSIONS) {
            self.tokens_under(key, clinic.bits, &mut tokens)?;
        }
        let mut request = Value::Object(self.filters.clone());
        if let Some(y) = self.year()? {
            // The record's birth year is in clear: a server filter, never part of a token.
            request["birth_year"] = json!(y);
        }
        request["blind_indexes"] = json!(tokens);
        Ok(request)
    }

    fn tokens_under(
        &self,
        key: &InstitutionKey,
        bits: BlindIndexBits,
        tokens: &mut Vec<String>,
    ) -> Result<()> {
        for (field, value) in [
            (BlindIndexField::Surname, &self.surname),
            (BlindIndexField::DateOfBirth, &self.date_of_birth),
            (BlindIndexField::Snils, &self.snils),
            (BlindIndexField::PolicyNumber, &self.policy),
        ] {
            if let Some(v) = value {
                tokens.push(token(key, field, v, bits)?);
            }
        }
        Ok(())
    }

    /// The year of birth filter: `--birth-year`, or the year of the date of birth looked for
    /// (its token is short and matches every year's patients of that value; the year narrows
    /// it back). Both given must agree.
    fn year(&self) -> Result<Option<i32>> {
        let of_date = match &self.date_of_birth {
            Some(d) => {
                let date = normalize::normalize(BlindIndexField::DateOfBirth, d)?;
                date.get(..4).and_then(|y| y.parse::<i32>().ok())
            }
            None => None,
        };
        match (self.birth_year, of_date) {
            (Some(given), Some(of_date)) if given != of_date => Err(Error::usage(format!(
                "--birth-year {given} and the date of birth's year {of_date} disagree"
            ))),
            (given, of_date) => Ok(given.or(of_date)),
        }
    }

    /// Whether an opened passport truly matches (drops blind-index false positives).
    pub fn matches(&self, p: &Passport) -> bool {
        let same = |field, wanted: &Option<String>, got: Option<&str>| match wanted {
            None => true,
            Some(w) => match (normalize::normalize(field, w), got) {
                (Ok(w), Some(g)) => normalize::normalize(field, g).is_ok_and(|g| g == w),
                _ => false,
            },
        };
        same(BlindIndexField::Surname, &self.surname, Some(&p.surname))
            && same(
                BlindIndexField::DateOfBirth,
                &self.date_of_birth,
                Some(&p.date_of_birth),
            )
            && same(BlindIndexField::Snils, &self.snils, p.snils.as_deref())
            && same(
                BlindIndexField::PolicyNumber,
                &self.policy,
                p.policy_number.as_deref(),
            )
            && self
                .birth_year
                .is_none_or(|y| p.date_of_birth.get(..4) == Some(format!("{y:04}").as_str()))
    }
}

/// The outcome of a search: true matches, and how many candidates were false positives.
pub struct Found {
    pub matches: Vec<(PatientView, Passport)>,
    pub candidates: usize,
}

/// Runs a search to its last page, opening every candidate and keeping the true matches.
pub fn search(clinic: &Clinic, query: &Query) -> Result<Found> {
    let mut request = query.request(clinic)?;
    request["limit"] = json!(500);
    let mut found = Found {
        matches: Vec::new(),
        candidates: 0,
    };
    for_each_page(clinic, request, |patient| {
        found.candidates += 1;
        let passport = open(clinic, &patient)?;
        if query.matches(&passport) {
            found.matches.push((patient, passport));
        }
        Ok(())
    })?;
    Ok(found)
}

/// Pages through a search (keyset paging), calling `each` for every patient.
pub fn for_each_page(
    clinic: &Clinic,
    mut request: Value,
    mut each: impl FnMut(PatientView) -> Result<()>,
) -> Result<()> {
    loop {
        let page = clinic.api.search(&request)?;
        for patient in page.items {
            each(patient)?;
        }
        match page.next_after {
            Some(after) => request["after"] = json!(after),
            None => return Ok(()),
        }
    }
}
