//! The patient passport: the identifying data of a patient, sealed under the institution key.
//!
//! See the crate documentation for the byte layout.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::aead::{self, NONCE_LEN, SealedInfo};
use crate::encoding::Binding;
use crate::padding::MAX_PASSPORT_PADDED;
use crate::random::random_array;
use crate::{CryptoError, Format, InstitutionKey, Pseudonym, ShapeError, normalize};

/// Domain-separation label at the start of a passport's associated data.
pub const PASSPORT_DOMAIN: &str = "palreg/passport/v1";
/// Version byte of passport envelopes.
pub const PASSPORT_ENVELOPE_VERSION: u8 = aead::SEALED_VERSION;
/// Largest padded passport (the largest size bucket), in bytes.
pub const MAX_PASSPORT_PADDED_LEN: usize = MAX_PASSPORT_PADDED;

/// Sex as recorded in the passport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Male.
    Male,
    /// Female.
    Female,
}

/// An identity document (e.g. a passport of the Russian Federation, a birth certificate).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
pub struct IdentityDocument {
    /// Kind of document, free text (e.g. "паспорт РФ").
    pub kind: String,
    /// Series, if the document has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// Number.
    pub number: String,
    /// Issuing authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<String>,
    /// Date of issue, ISO 8601 (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_on: Option<String>,
}

/// A person to contact about the patient (relative, guardian).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
pub struct ContactPerson {
    /// Full name.
    pub name: String,
    /// Relation to the patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// The identifying data of a patient. Serialized as JSON with these field names (optional
/// fields left out when absent) before padding and encryption.
///
/// Zeroized on drop; `Debug` prints no personal data.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Passport {
    /// Surname.
    pub surname: String,
    /// First name.
    pub first_name: String,
    /// Patronymic, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patronymic: Option<String>,
    /// Date of birth, ISO 8601 (`YYYY-MM-DD`).
    pub date_of_birth: String,
    /// Sex.
    #[zeroize(skip)]
    pub sex: Sex,
    /// Postal address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// SNILS (individual insurance account number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snils: Option<String>,
    /// Compulsory medical insurance policy number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_number: Option<String>,
    /// Identity document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_document: Option<IdentityDocument>,
    /// Contact person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_person: Option<ContactPerson>,
    /// Free-text notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl Passport {
    /// A passport with the required fields and nothing else.
    pub fn new(surname: &str, first_name: &str, date_of_birth: &str, sex: Sex) -> Self {
        Passport {
            surname: surname.to_owned(),
            first_name: first_name.to_owned(),
            patronymic: None,
            date_of_birth: date_of_birth.to_owned(),
            sex,
            address: None,
            phone: None,
            snils: None,
            policy_number: None,
            identity_document: None,
            contact_person: None,
            notes: None,
        }
    }

    /// Parses the passport's JSON form (as the WASM API receives it).
    pub fn from_json(json: &str) -> Result<Self, CryptoError> {
        serde_json::from_str(json).map_err(|_| CryptoError::InvalidPassport)
    }

    /// The passport's JSON form.
    pub fn to_json(&self) -> Result<String, CryptoError> {
        serde_json::to_string(self).map_err(|_| CryptoError::InvalidPassport)
    }

    /// Checks what sealing requires: a surname and a first name, and an ISO date of birth.
    pub fn validate(&self) -> Result<(), CryptoError> {
        if self.surname.trim().is_empty() {
            return Err(CryptoError::InvalidInput {
                field: "surname",
                reason: "empty",
            });
        }
        if self.first_name.trim().is_empty() {
            return Err(CryptoError::InvalidInput {
                field: "first_name",
                reason: "empty",
            });
        }
        if normalize::date(&self.date_of_birth)? != self.date_of_birth {
            return Err(CryptoError::InvalidInput {
                field: "date_of_birth",
                reason: "not an ISO 8601 date (YYYY-MM-DD)",
            });
        }
        Ok(())
    }
}

impl fmt::Debug for Passport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passport { <redacted> }")
    }
}

fn passport_aad(pseudonym: &Pseudonym, institution_id: i64, key_version: u32) -> Binding {
    let mut aad = Binding::new(PASSPORT_DOMAIN);
    aad.bytes(pseudonym.as_str().as_bytes())
        .i64(institution_id)
        .u32(key_version);
    aad
}

impl InstitutionKey {
    /// Seals a passport for the patient `pseudonym` of institution `institution_id`: JSON,
    /// padded to a size bucket, AES-256-GCM with a random nonce. Returns the envelope as
    /// base64url without padding.
    pub fn seal_passport(
        &self,
        passport: &Passport,
        pseudonym: &Pseudonym,
        institution_id: i64,
    ) -> Result<String, CryptoError> {
        self.seal_passport_with_nonce(passport, pseudonym, institution_id, &random_array()?)
    }

    pub(crate) fn seal_passport_with_nonce(
        &self,
        passport: &Passport,
        pseudonym: &Pseudonym,
        institution_id: i64,
        nonce: &[u8; NONCE_LEN],
    ) -> Result<String, CryptoError> {
        passport.validate()?;
        let aad = passport_aad(pseudonym, institution_id, self.version());
        // Measured first, so the sealing buffer is allocated once at its final size.
        let mut counter = ByteCounter(0);
        serde_json::to_writer(&mut counter, passport).map_err(|_| CryptoError::InvalidPassport)?;
        aead::seal_with(
            self,
            counter.0,
            MAX_PASSPORT_PADDED,
            aad.as_slice(),
            nonce,
            |buf| serde_json::to_writer(buf, passport).map_err(|_| CryptoError::InvalidPassport),
        )
    }

    /// Opens a passport envelope. Fails unless the envelope was sealed under this key (and
    /// this key version) for exactly this pseudonym and institution, untampered.
    pub fn open_passport(
        &self,
        envelope: &str,
        pseudonym: &Pseudonym,
        institution_id: i64,
    ) -> Result<Passport, CryptoError> {
        self.open_passport_json_with(envelope, pseudonym, institution_id, |json| {
            serde_json::from_slice(json).map_err(|_| CryptoError::InvalidPassport)
        })
    }

    /// As [`InstitutionKey::open_passport`], but returns the passport's JSON text as it was
    /// sealed (authenticated, checked to be UTF-8, not parsed): for callers that parse it
    /// themselves — the WASM layer, whose caller runs `JSON.parse` — it saves building and
    /// dropping a typed passport on the hot path of listing patients.
    pub fn open_passport_json(
        &self,
        envelope: &str,
        pseudonym: &Pseudonym,
        institution_id: i64,
    ) -> Result<String, CryptoError> {
        self.open_passport_json_with(envelope, pseudonym, institution_id, json_text)
    }

    /// As [`InstitutionKey::open_passport_json`], but the passport's JSON bytes as they were
    /// sealed (authenticated, neither checked to be UTF-8 nor parsed: `read` does that, and
    /// returns [`CryptoError::InvalidPassport`] if they are not) are lent to `read`, and
    /// zeroized after it returns, instead of copied out.
    pub fn open_passport_json_with<T>(
        &self,
        envelope: &str,
        pseudonym: &Pseudonym,
        institution_id: i64,
        read: impl FnOnce(&[u8]) -> Result<T, CryptoError>,
    ) -> Result<T, CryptoError> {
        let mut sealed = aead::decode(envelope, Format::Passport, MAX_PASSPORT_PADDED)?;
        self.open_passport_bytes_with(&mut sealed, pseudonym, institution_id, read)
    }

    /// As [`InstitutionKey::open_passport_json_with`], for the envelope's bytes: its base64url
    /// already decoded by the caller (a browser decodes it natively straight from its string,
    /// which spares copying the text into WASM memory). They are decrypted in place, and hold
    /// no plaintext afterwards.
    pub fn open_passport_bytes_with<T>(
        &self,
        sealed: &mut [u8],
        pseudonym: &Pseudonym,
        institution_id: i64,
        read: impl FnOnce(&[u8]) -> Result<T, CryptoError>,
    ) -> Result<T, CryptoError> {
        let aad = passport_aad(pseudonym, institution_id, self.version());
        aead::open_in_place(
            self,
            sealed,
            Format::Passport,
            MAX_PASSPORT_PADDED,
            aad.as_slice(),
            read,
        )
    }
}

/// The passport's JSON bytes as text: [`CryptoError::InvalidPassport`] unless UTF-8.
fn json_text(payload: &[u8]) -> Result<String, CryptoError> {
    std::str::from_utf8(payload)
        .map(str::to_owned)
        .map_err(|_| CryptoError::InvalidPassport)
}

/// Counts the bytes a serializer writes.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks a passport envelope's structure without a key (see [`crate::shape`]).
pub(crate) fn check(envelope: &str) -> Result<SealedInfo, ShapeError> {
    aead::parse_sealed(envelope, Format::Passport, MAX_PASSPORT_PADDED).map(|(info, _)| info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn sample() -> Passport {
        let mut p = Passport::new("Иванова", "Мария", "1950-02-01", Sex::Female);
        p.patronymic = Some("Петровна".into());
        p.snils = Some("112-233-445 95".into());
        p
    }

    fn key(version: u32) -> InstitutionKey {
        InstitutionKey::from_bytes(version, Zeroizing::new([7; 32]))
    }

    fn pseudonym() -> Pseudonym {
        Pseudonym::parse("0123456789ABCDEF").unwrap()
    }

    #[test]
    fn round_trip() {
        let k = key(3);
        let env = k.seal_passport(&sample(), &pseudonym(), 7).unwrap();
        assert_eq!(
            check(&env).unwrap(),
            SealedInfo {
                key_version: 3,
                padded_len: 512
            }
        );
        assert_eq!(k.open_passport(&env, &pseudonym(), 7).unwrap(), sample());
        let json = k.open_passport_json(&env, &pseudonym(), 7).unwrap();
        assert_eq!(Passport::from_json(&json).unwrap(), sample());
    }

    #[test]
    fn decoded_bytes_open_in_place_and_keep_no_plaintext() {
        let k = key(3);
        let env = k.seal_passport(&sample(), &pseudonym(), 7).unwrap();
        let decoded = crate::encoding::b64_decode(&env, Format::Passport, 1 << 20).unwrap();
        let mut sealed = decoded.clone();
        let json = k
            .open_passport_bytes_with(&mut sealed, &pseudonym(), 7, json_text)
            .unwrap();
        assert_eq!(json, k.open_passport_json(&env, &pseudonym(), 7).unwrap());
        assert_eq!(Passport::from_json(&json).unwrap(), sample());
        // The header and tag are left; the plaintext between them is zeros.
        let body = &sealed[aead::SEALED_HEADER_LEN..sealed.len() - aead::TAG_LEN];
        assert_eq!(
            sealed[..aead::SEALED_HEADER_LEN],
            decoded[..aead::SEALED_HEADER_LEN]
        );
        assert!(body.iter().all(|&b| b == 0));
        // Bound values, tampering and shape are checked as for the text form.
        let other = Pseudonym::parse("0123456789ABCDEG").unwrap();
        let mut again = decoded.clone();
        assert_eq!(
            k.open_passport_bytes_with(&mut again, &other, 7, json_text),
            Err(CryptoError::DecryptionFailed)
        );
        assert_eq!(
            again, decoded,
            "a failed open leaves the bytes as they were"
        );
        for i in 0..decoded.len() {
            let mut t = decoded.clone();
            t[i] ^= 0x01;
            assert!(
                k.open_passport_bytes_with(&mut t, &pseudonym(), 7, json_text)
                    .is_err(),
                "byte {i}"
            );
        }
        let mut short = decoded[..decoded.len() - 1].to_vec();
        assert_eq!(
            k.open_passport_bytes_with(&mut short, &pseudonym(), 7, json_text),
            Err(CryptoError::Shape(ShapeError::InvalidLength(
                Format::Passport
            )))
        );
        let mut other_version = decoded.clone();
        assert!(matches!(
            key(4).open_passport_bytes_with(&mut other_version, &pseudonym(), 7, json_text),
            Err(CryptoError::KeyVersionMismatch {
                expected: 4,
                found: 3
            })
        ));
    }

    #[test]
    fn every_flipped_byte_fails() {
        let k = key(3);
        let env = k.seal_passport(&sample(), &pseudonym(), 7).unwrap();
        let bytes = crate::encoding::b64_decode(&env, Format::Passport, 1 << 20).unwrap();
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            let tampered = crate::encoding::b64_encode(&t);
            assert!(
                k.open_passport(&tampered, &pseudonym(), 7).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn bound_values_are_checked() {
        let k = key(3);
        let env = k.seal_passport(&sample(), &pseudonym(), 7).unwrap();
        let other = Pseudonym::parse("0123456789ABCDEG").unwrap();
        assert_eq!(
            k.open_passport(&env, &other, 7),
            Err(CryptoError::DecryptionFailed)
        );
        assert_eq!(
            k.open_passport(&env, &pseudonym(), 8),
            Err(CryptoError::DecryptionFailed)
        );
        assert_eq!(
            key(4).open_passport(&env, &pseudonym(), 7),
            Err(CryptoError::KeyVersionMismatch {
                expected: 4,
                found: 3
            })
        );
    }

    #[test]
    fn invalid_passports_are_not_sealed() {
        let mut p = sample();
        p.date_of_birth = "01.02.1950".into();
        assert!(matches!(
            key(1).seal_passport(&p, &pseudonym(), 7),
            Err(CryptoError::InvalidInput {
                field: "date_of_birth",
                ..
            })
        ));
    }

    #[test]
    fn debug_is_redacted() {
        assert!(!format!("{:?}", sample()).contains("Иван"));
    }
}
